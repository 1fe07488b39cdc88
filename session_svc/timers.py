"""The module-level function that stored timer jobs name ('session_svc.timers:fire'),
so they unpickle in any replica; it hands the firing to this process's runner."""

from __future__ import annotations

from typing import Any

from mesh.timers import deliver

CALLBACK_REF = "session_svc.timers:fire"
NAMESPACE = "session"


def fire(runner_id: str, key: str, token: str, payload: dict[str, Any]) -> None:
    deliver(runner_id, key, token, payload)
