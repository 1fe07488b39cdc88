"""activity_svc: Near-real-time daily activity statistics from domain events."""
