"""The Files API for pull integrations (seeds 000 and 004)."""
