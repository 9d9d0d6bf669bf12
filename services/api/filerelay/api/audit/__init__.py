"""The audit log over REST (admin, read-only)."""
