"""The REST API (FastAPI, OpenAPI 3) under /api/v1, and the accounts it signs people in with."""
