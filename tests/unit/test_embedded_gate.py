"""The embedded server's per-database gate (mesh.embedded_mongo), without a server:
a transaction owns its database until it ends, and GateStats says who held it."""

from __future__ import annotations

import threading
import time

import pytest

from mesh.embedded_mongo import CommandScope, GateStats, GateTimeout, TransactionGate, command_scope


def scope(session: str, command: str, in_tx: bool = False, ends: bool = False) -> CommandScope:
    return CommandScope(session, "db", in_tx, ends, command)


def test_command_scope_names_the_command_and_the_transaction() -> None:
    body = {"update": "sessions", "lsid": {"id": b"x"}, "autocommit": False, "$db": "app"}
    found = command_scope({"sections": [("body", body)]})
    assert (found.command, found.database, found.in_transaction) == ("update", "app", True)


def test_a_transaction_owns_its_database_until_commit_and_stats_say_who_held_and_who_waited() -> None:
    stats = GateStats()
    gate = TransactionGate(stale_after_s=30, abort=lambda session: None, stats=stats)
    with gate.turn(scope("a", "insert", in_tx=True)):
        pass
    ran = threading.Event()

    def other() -> None:
        with gate.turn(scope("b", "find")):
            ran.set()

    waiter = threading.Thread(target=other)
    waiter.start()
    assert not ran.wait(0.2)  # the open transaction still owns the database
    time.sleep(0.05)
    with gate.turn(scope("a", "commitTransaction", ends=True)):
        pass
    assert ran.wait(5)
    waiter.join()
    held = stats.take()
    count, held_s, _ = held[("db", "tx:insert")]
    assert count == 1 and held_s >= 0.25
    count, _, waited_s = held[("db", "find")]
    assert count == 1 and waited_s >= 0.1
    assert stats.take() == {}  # taken: the next report starts afresh


def test_a_transaction_that_cannot_start_soon_gets_a_timeout() -> None:
    gate = TransactionGate(stale_after_s=30, abort=lambda session: None, start_timeout_s=0.2)
    with (
        gate.turn(scope("a", "insert", in_tx=True)),
        pytest.raises(GateTimeout),
        gate.turn(scope("b", "insert", in_tx=True)),
    ):
        pass


def test_the_report_lists_the_biggest_holder_first() -> None:
    stats = GateStats()
    stats.held_for("db", "update", 0.1)
    stats.held_for("db", "tx:insert", 2.0)
    stats.waited_for("db", "update", 0.3)
    lines = stats.report(10).splitlines()
    assert "tx:insert" in lines[1] and "update" in lines[2]
    assert "300.0" in lines[2]  # mean wait of the one update, ms
