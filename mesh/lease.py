"""A named lease in MongoDB that at most one replica holds at a time.

Document: `{_id: name, owner, expires_at}` with `expires_at` in epoch seconds (a
float, because the embedded nx-27017 cannot compare BSON dates). Acquire and renew
are one conditional `find_one_and_update` (held by me, or expired); a rival
holder makes the upsert collide on `_id`, which means "not acquired".

`LeaseKeeper` runs the renew loop on a thread: renew every ttl/3 while held,
retry every `standby_poll_s` while not (or at the rival's expiry when that comes
sooner, so a takeover does not wait out a poll interval), and call `on_acquired` /
`on_lost` on changes. A renewal that fails or cannot finish within ttl/3 counts as lost at
once, so the old holder stops before a rival can acquire the expired lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

import pymongo
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from mesh.store import Document

log = logging.getLogger(__name__)

COLLECTION = "leases"
EXPIRY_MARGIN_S = 0.01  # a standby tries this long after the rival's expiry


def default_owner() -> str:
    """A unique owner id: host, pid and a random suffix (restarted pids never collide)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """One named lease; `try_acquire()` acquires or renews it for `ttl_s`."""

    def __init__(self, collection: Collection[Document], name: str, owner: str, ttl_s: float) -> None:
        self.collection = collection
        self.name = name
        self.owner = owner
        self.ttl_s = ttl_s
        # When the lease held by another owner expires (epoch s), as last seen by `try_acquire`.
        self.rival_expires_at: float | None = None

    def try_acquire(self) -> bool:
        """True when this owner holds the lease for the next `ttl_s` seconds."""
        now = time.time()
        self.rival_expires_at = None
        try:
            document = self.collection.find_one_and_update(
                {"_id": self.name, "$or": [{"owner": self.owner}, {"expires_at": {"$lt": now}}]},
                {"$set": {"owner": self.owner, "expires_at": now + self.ttl_s}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            document = None  # another owner holds an unexpired lease
        if document is not None and document.get("owner") == self.owner:
            return True
        # Not acquired: note until when the rival holds it.
        rival = self.collection.find_one({"_id": self.name}, {"owner": 1, "expires_at": 1})
        if rival is not None and rival.get("owner") != self.owner and rival.get("expires_at") is not None:
            self.rival_expires_at = float(rival["expires_at"])
        return False

    def release(self) -> None:
        """Give the lease up now so another replica takes over without waiting for expiry."""
        self.collection.update_one({"_id": self.name, "owner": self.owner}, {"$set": {"expires_at": 0.0}})

    def holder(self) -> str | None:
        """The current unexpired holder, if any (for status and tests)."""
        document = self.collection.find_one({"_id": self.name})
        if document is None or float(document.get("expires_at", 0)) < time.time():
            return None
        return str(document["owner"])


class LeaseKeeper:
    """Keeps trying to hold a lease on a background thread and reports changes."""

    def __init__(
        self,
        lease: Lease,
        on_acquired: Callable[[], None],
        on_lost: Callable[[], None],
        standby_poll_s: float,
    ) -> None:
        self.lease = lease
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._standby_poll_s = standby_poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False
        self._valid_until = 0.0  # monotonic: the lease surely is ours until then

    @property
    def valid(self) -> bool:
        """Held, and the last renewal is recent enough that no rival can hold it yet
        (a starved renew thread must not leave work running past the expiry)."""
        return self.held and time.monotonic() < self._valid_until

    @property
    def renew_interval_s(self) -> float:
        return self.lease.ttl_s / 3

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.lease.name}", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop renewing; give the lease up (unless `release` is False) after `on_lost`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.lease.ttl_s)
        if self.held:
            self._set_held(False)
        if release:
            try:
                self.lease.release()
            except PyMongoError:
                log.warning("could not release lease %s", self.lease.name, exc_info=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._set_held(self._attempt())
            self._stop.wait(self.renew_interval_s if self.held else self._standby_wait_s())

    def _standby_wait_s(self) -> float:
        """Until the next attempt: the poll interval, or just past the rival's expiry if sooner."""
        expires_at = self.lease.rival_expires_at
        if expires_at is None:
            return self._standby_poll_s
        return min(self._standby_poll_s, max(0.0, expires_at - time.time()) + EXPIRY_MARGIN_S)

    def _attempt(self) -> bool:
        # A renewal must finish well before the lease expires; otherwise we could
        # still be running while a rival acquires the expired lease.
        started = time.monotonic()
        try:
            with pymongo.timeout(self.renew_interval_s):
                acquired = self.lease.try_acquire()
            if acquired:
                self._valid_until = started + self.lease.ttl_s
            return acquired
        except PyMongoError as exc:
            log.warning("lease %s attempt failed: %s", self.lease.name, exc)
            return False

    def _set_held(self, held: bool) -> None:
        if held == self.held:
            return
        self.held = held
        log.info(
            "lease %s %s", self.lease.name, "acquired" if held else "lost", extra={"owner": self.lease.owner}
        )
        try:
            (self._on_acquired if held else self._on_lost)()
        except Exception:
            log.exception("lease %s callback failed", self.lease.name)
