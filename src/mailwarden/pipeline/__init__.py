"""The filter pipeline: stages, their declared order, and the engine that runs them."""

from mailwarden.pipeline.engine import Pipeline
from mailwarden.pipeline.stage import Inspection, ScanContext, Stage

__all__ = ["Inspection", "Pipeline", "ScanContext", "Stage"]
