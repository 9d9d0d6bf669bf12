"""Delivery: pure rules (roll-up, backoff, paths) and the service that runs an attempt."""
