"""The Documents API (seed 003)."""
