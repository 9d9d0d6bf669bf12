"""The delivery workers (Celery, one queue per destination kind) and the sweeper."""
