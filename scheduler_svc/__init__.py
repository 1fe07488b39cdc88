"""scheduler_svc: Job scheduling, execution by workers, and the admin view of jobs."""
