"""registration_svc: Job submission and the users' read model of their jobs."""
