"""In-process change notification for WatchSession: a turn that commits on this
replica wakes this replica's watchers at once (other replicas' changes and timer
firings on the runner are picked up by the watchers' short re-read interval)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict


class ChangeNotifier:
    """session id → the asyncio events of the streams watching it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)

    def notify(self, session_id: str) -> None:
        """Thread-safe: called from worker threads after a commit."""
        with self._lock:
            waiters = list(self._waiters.get(session_id, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(event.set)

    async def wait(self, session_id: str, timeout_s: float) -> None:
        """Return on the next local change of the session, or after `timeout_s`."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters[session_id].add(entry)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry[1].wait(), timeout_s)
        finally:
            with self._lock:
                waiters = self._waiters.get(session_id)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._waiters[session_id]
