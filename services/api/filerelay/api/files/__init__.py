"""The Files API for pull integrations (docs/architecture.md#pull-deliveries)."""
