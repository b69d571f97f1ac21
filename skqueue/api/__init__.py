"""The monitoring API: a Starlette app (JSON endpoints, Prometheus metrics, OpenAPI) with JWT auth."""
