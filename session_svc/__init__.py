"""session_svc: Paid chat sessions with server-owned pause-for-recharge timers."""
