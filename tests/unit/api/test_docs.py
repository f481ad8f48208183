"""The API documentation works without internet access: every script, stylesheet and icon the Swagger UI
and ReDoc pages load comes from mailwarden itself."""

from __future__ import annotations

import re

import pytest

from tests.unit.api.conftest import World


@pytest.mark.parametrize("page", ["/api/v1/docs", "/api/v1/redoc"])
def test_the_docs_pages_load_only_local_assets(world: World, page: str) -> None:
    html = world.client.get(page).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"url: ['\"]([^'\"]+)['\"]", html)
    assert assets, html
    assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        response = world.client.get(asset)
        assert response.status_code == 200 and response.content, asset
    assert "/api/v1/openapi.json" in html
