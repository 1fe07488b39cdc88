"""In-process change notification: the consumer thread calls `notify()` after an
inbox transaction commits; WatchStats streams on the event loop wake up."""

from __future__ import annotations

import asyncio
import threading


class ChangeNotifier:
    """Thread-safe fan-out of "figures changed" to asyncio waiters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def subscribe(self) -> asyncio.Event:
        """An event set on every change (call on the loop; `unsubscribe` when done)."""
        flag = asyncio.Event()
        with self._lock:
            self._waiters.add((asyncio.get_running_loop(), flag))
        return flag

    def unsubscribe(self, flag: asyncio.Event) -> None:
        with self._lock:
            self._waiters = {(loop, f) for loop, f in self._waiters if f is not flag}

    def notify(self) -> None:
        """Wake every subscriber; safe from any thread."""
        with self._lock:
            waiters = list(self._waiters)
        for loop, flag in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(flag.set)
