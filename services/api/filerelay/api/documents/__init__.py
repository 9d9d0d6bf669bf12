"""The Documents API (README.md#rest-api)."""
