"""How the provider's verdict compares with mailwarden's."""

from __future__ import annotations

import pytest

from mailwarden.model import Category
from mailwarden.model.provider import Agreement, ProviderCategory, agreement


@pytest.mark.parametrize(
    ("theirs", "ours", "expected"),
    [
        (ProviderCategory.CLEAN, Category.CLEAN, Agreement.AGREE),
        (ProviderCategory.SPAM, Category.HIGH_CONFIDENCE_SPAM, Agreement.AGREE),
        (ProviderCategory.PHISH, Category.HIGH_CONFIDENCE_PHISH, Agreement.AGREE),
        (ProviderCategory.CLEAN, Category.MALWARE, Agreement.PROVIDER_MISSED),
        (ProviderCategory.CLEAN, Category.PHISH, Agreement.PROVIDER_MISSED),
        (ProviderCategory.CLEAN, Category.SPAM, Agreement.PROVIDER_MISSED),
        (ProviderCategory.CLEAN, Category.BULK, Agreement.DIFFER),  # bulk is no miss
        (ProviderCategory.MALWARE, Category.CLEAN, Agreement.PROVIDER_ONLY),
        (ProviderCategory.BULK, Category.CLEAN, Agreement.DIFFER),
        (ProviderCategory.SPAM, Category.PHISH, Agreement.DIFFER),
        (ProviderCategory.UNKNOWN, Category.MALWARE, Agreement.UNKNOWN),
        (ProviderCategory.CLEAN, Category.INTERNAL, Agreement.UNKNOWN),
        (ProviderCategory.CLEAN, Category.SCAN_ERROR, Agreement.UNKNOWN),
        (ProviderCategory.CLEAN, Category.RULE, Agreement.UNKNOWN),
    ],
)
def test_agreement(theirs: ProviderCategory, ours: Category, expected: Agreement) -> None:
    assert agreement(theirs, ours) is expected
