"""The jobs' durable timers (mesh.timers, as session_svc's): a job's run_at and the
delay before a retry. Stored timer jobs name the module-level `fire`, so they
unpickle in any replica; it hands the firing to this process's runner, whose
handler (`handlers.on_timer`) queues the job."""

from __future__ import annotations

from typing import Any

from mesh.timers import deliver

CALLBACK_REF = "scheduler_svc.timers:fire"
NAMESPACE = "jobs"


def fire(runner_id: str, key: str, token: str, payload: dict[str, Any]) -> None:
    deliver(runner_id, key, token, payload)
