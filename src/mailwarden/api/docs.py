"""The API's interactive documentation (Swagger UI at /api/v1/docs, ReDoc at /api/v1/redoc) served from
assets packaged with the product (fastapi-offline's copies of the Swagger UI and ReDoc bundles): a
mailwarden with no internet access, or a browser that may not reach a CDN, still shows them."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles


def install_docs(app: FastAPI, prefix: str) -> None:
    """Swagger UI at `{prefix}/docs`, ReDoc at `{prefix}/redoc`, their assets under `{prefix}/docs-assets`."""
    assets = f"{prefix}/docs-assets"
    static = files("fastapi_offline") / "static"
    app.mount(assets, StaticFiles(directory=str(static)), name="docs-assets")
    openapi = app.openapi_url or f"{prefix}/openapi.json"

    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
        )

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi,
            title=f"{app.title} API",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route(f"{prefix}/docs", swagger, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{prefix}/redoc", redoc, methods=["GET"], include_in_schema=False)
