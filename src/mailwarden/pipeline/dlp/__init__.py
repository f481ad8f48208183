"""Data loss prevention: sensitive information types found in a message's extracted text."""

from mailwarden.pipeline.dlp.redact import redact
from mailwarden.pipeline.dlp.scanner import (
    CustomType,
    DlpMatch,
    DlpScanner,
    count_at_least,
    normalize,
    redact_values,
)
from mailwarden.pipeline.dlp.types import BUILTIN_NAMES, Confidence

__all__ = [
    "BUILTIN_NAMES",
    "Confidence",
    "CustomType",
    "DlpMatch",
    "DlpScanner",
    "count_at_least",
    "normalize",
    "redact",
    "redact_values",
]
