"""Runs the embedded MongoDB-compatible server (nx-27017) for the local mesh and tests,
with two gaps of the emulator closed at its edge (docs/adr/0002):

1. Isolation. nx-27017 runs every session of a database on one SQLite connection, so a
   transaction is a savepoint that other sessions' commands land inside. Here a
   transaction owns its database from its first command to commit/abort; other
   sessions' commands on that database wait their turn (serialisable, like a real
   server's outcome, though without its concurrency). A holder that goes silent for
   `--stale-after` seconds (its client died) is aborted so the database is not stuck.
2. `readConcern` sent with the first command of a transaction is stored as a stray
   document by the insert path; it is dropped before the emulator sees it.

The services never know: they speak the plain MongoDB API, and `MONGO_URL` pointed at a
real replica set bypasses all of this. Run: `python -m mesh.embedded_mongo --data-dir D
--port P`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from nx_27017 import server as nx_server
from nx_27017.handler import NeoSQLiteHandler
from nx_27017.wire_protocol import _extract_session_id

log = logging.getLogger("mesh.embedded_mongo")
# What MongoDB answers a transaction that lost a conflict: drivers and Store.transaction retry it.
WRITE_CONFLICT = {
    "ok": 0,
    "code": 112,
    "codeName": "WriteConflict",
    "errmsg": "the database is busy with another transaction; retry",
    "errorLabels": ["TransientTransactionError"],
}
Message = dict[str, Any]
Handle = Callable[[NeoSQLiteHandler, Message], tuple[int, Any]]


@dataclass(frozen=True)
class CommandScope:
    """What the gate needs to know about one wire command."""

    session_id: str | None
    database: str
    in_transaction: bool
    ends_transaction: bool
    command: str = ""


def command_scope(msg: Message) -> CommandScope:
    bodies = [doc for kind, doc in msg.get("sections", ()) if kind == "body" and isinstance(doc, dict)]
    body: dict[str, Any] = bodies[0] if bodies else {}
    lsid = body.get("lsid")
    return CommandScope(
        session_id=_extract_session_id(lsid) if isinstance(lsid, dict) else None,
        database=str(body.get("$db", "test")),
        in_transaction=body.get("autocommit") is False,
        ends_transaction=any(k in body for k in ("commitTransaction", "abortTransaction", "endSessions")),
        command=next(iter(body), ""),
    )


def drop_read_concern(msg: Message) -> None:
    for _, doc in msg.get("sections", ()):
        if isinstance(doc, dict):
            doc.pop("readConcern", None)


class GateTimeout(Exception):
    """A transaction could not start within `start_timeout_s` (another one holds the database)."""


@dataclass
class _Owner:
    session_id: str | None
    last_seen: float
    transaction: bool  # held until commit/abort, not only for one command
    since: float = 0.0
    label: str = ""  # the command, or "tx:<first command>" (GateStats)
    collection: str = ""


class GateStats:
    """How long each kind of turn held a database and waited for it (`--stats-interval`):
    tells which writer makes the others wait. Keys: (database, label)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held: dict[tuple[str, str], list[float]] = {}  # count, seconds held, seconds waited

    def held_for(self, database: str, label: str, seconds: float) -> None:
        with self._lock:
            entry = self.held.setdefault((database, label), [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += seconds

    def waited_for(self, database: str, label: str, seconds: float) -> None:
        with self._lock:
            self.held.setdefault((database, label), [0, 0.0, 0.0])[2] += seconds

    def take(self) -> dict[tuple[str, str], list[float]]:
        with self._lock:
            taken, self.held = self.held, {}
            return taken

    def report(self, interval_s: float, top: int = 12) -> str:
        rows = sorted(self.take().items(), key=lambda item: -item[1][1])[:top]
        lines = [f"gate over {interval_s:.0f} s: database, turn, count, held ms (share), mean waited ms"]
        for (database, label), (count, held, waited) in rows:
            lines.append(
                f"  {database:<32} {label:<28} {int(count):>7} {held * 1000:>9.0f} "
                f"({held / interval_s:>4.0%}) {waited * 1000 / max(count, 1):>7.1f}"
            )
        return "\n".join(lines)


class TransactionGate:
    """A database has one owner at a time: an open transaction (from its first command
    to commit/abort) or a single command outside any transaction. Everybody else queues,
    first come first served, so a stream of transactions cannot starve a reader."""

    def __init__(
        self,
        stale_after_s: float,
        abort: Callable[[str], None],
        start_timeout_s: float = 3.0,
        stats: GateStats | None = None,
    ) -> None:
        self.stats = stats
        self._stale_after_s = stale_after_s
        self._abort = abort
        # Like MongoDB's lock-request timeout for transactions: a transaction that cannot
        # start soon fails with a transient error (clients retry it), instead of parking a
        # server thread for as long as the database stays busy.
        self._start_timeout_s = start_timeout_s
        self._owners: dict[str, _Owner] = {}
        self._queues: dict[str, deque[object]] = {}
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def turn(self, scope: CommandScope) -> Iterator[None]:
        if scope.ends_transaction:
            try:
                yield
            finally:
                self._release_session(scope.session_id)
            return
        self._acquire(scope)
        try:
            yield
        finally:
            if not scope.in_transaction:
                self._release_command(scope.database)

    def _acquire(self, scope: CommandScope) -> None:
        with self._changed:
            owner = self._owners.get(scope.database)
            if owner is not None and owner.transaction and owner.session_id == scope.session_id:
                owner.last_seen = time.monotonic()  # the transaction's own next command
                return
            ticket = object()
            queue = self._queues.setdefault(scope.database, deque())
            queue.append(ticket)
            waited_since = time.monotonic()
            try:
                while not (self._owners.get(scope.database) is None and queue[0] is ticket):
                    self._abort_if_stale(scope.database)
                    if scope.in_transaction and time.monotonic() - waited_since > self._start_timeout_s:
                        raise GateTimeout(scope.database)
                    self._changed.wait(0.05)
            finally:
                queue.remove(ticket)
                self._changed.notify_all()
            now = time.monotonic()
            if now - waited_since > 5:
                log.warning("waited %.1f s for database %s", now - waited_since, scope.database)
            label = f"tx:{scope.command}" if scope.in_transaction else scope.command
            self._owners[scope.database] = _Owner(scope.session_id, now, scope.in_transaction, now, label)
            if self.stats is not None:
                self.stats.waited_for(scope.database, label, now - waited_since)

    def _abort_if_stale(self, database: str) -> None:
        owner = self._owners.get(database)
        if owner is None or not owner.transaction or owner.session_id is None:
            return
        if time.monotonic() - owner.last_seen > self._stale_after_s:
            log.warning("aborting a transaction idle for %.0f s on %s", self._stale_after_s, database)
            owner.label += " (aborted: idle)"
            self._record(database, self._owners.pop(database))
            self._abort(owner.session_id)

    def _release_command(self, database: str) -> None:
        with self._changed:
            owner = self._owners.get(database)
            if owner is not None and not owner.transaction:
                del self._owners[database]
                self._record(database, owner)
            self._changed.notify_all()

    def _release_session(self, session_id: str | None) -> None:
        with self._changed:
            for database in [
                d for d, o in self._owners.items() if o.transaction and o.session_id == session_id
            ]:
                self._record(database, self._owners.pop(database))
            self._changed.notify_all()

    def _record(self, database: str, owner: _Owner) -> None:
        if self.stats is not None:
            self.stats.held_for(database, owner.label, time.monotonic() - owner.since)


def install_gate(
    handler: NeoSQLiteHandler, stale_after_s: float, stats: GateStats | None = None
) -> TransactionGate:
    """Wrap the emulator's command entry points (one instance, not the class)."""

    def abort(session_id: str) -> None:
        for session in handler._tx_sessions(session_id):
            with contextlib.suppress(Exception):
                session.abort_transaction()

    gate = TransactionGate(stale_after_s, abort, stats=stats)

    def gated(original: Callable[[Message], tuple[int, Any]]) -> Callable[[Message], tuple[int, Any]]:
        def run(msg: Message) -> tuple[int, Any]:
            scope = command_scope(msg)
            drop_read_concern(msg)
            try:
                with gate.turn(scope):
                    return original(msg)
            except GateTimeout:
                return msg.get("request_id", 0), WRITE_CONFLICT

        return run

    handler.handle_command = gated(handler.handle_command)  # type: ignore[method-assign]
    handler.handle_insert = gated(handler.handle_insert)  # type: ignore[method-assign]
    handler.handle_query = gated(handler.handle_query)  # type: ignore[method-assign]
    return gate


async def serve(host: str, port: int, handler: NeoSQLiteHandler, threads: int) -> None:
    # Waiting commands hold a thread each: enough threads that a transaction's own
    # next command always finds one.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(threads, "nx"))
    await nx_server.run_server(host, port, handler)


def _report(stats: GateStats, interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        log.warning("%s", stats.report(interval_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="one SQLite file per database here")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017)
    parser.add_argument("--stale-after", type=float, default=5.0, help="seconds")
    parser.add_argument("--threads", type=int, default=256)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--stats-interval",
        type=float,
        default=float(os.environ.get("EMBEDDED_MONGO_STATS_INTERVAL_S", "0")),
        help="log which turns held each database every N seconds (0: off)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.makedirs(args.data_dir, exist_ok=True)
    data_dir = os.path.abspath(args.data_dir)
    handler = NeoSQLiteHandler(data_dir, journal_mode="WAL", data_dir=data_dir)
    stats = GateStats() if args.stats_interval > 0 else None
    install_gate(handler, args.stale_after, stats)
    if stats is not None:
        threading.Thread(target=_report, args=(stats, args.stats_interval), daemon=True).start()
    log.warning("embedded MongoDB listening on %s:%d, data in %s", args.host, args.port, data_dir)
    asyncio.run(serve(args.host, args.port, handler, args.threads))


if __name__ == "__main__":
    main()
