"""session_svc with two replicas: the lease holder runs the timers, a standby's
timers reach it at once, and a kill -9 of the holder loses no pause."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from pymongo import MongoClient
from switchboard.session.v1 import session_service_pb2 as pb
from switchboard.session.v1 import session_service_pb2_grpc

from mesh.client import bearer
from mesh.processes import wait_until
from tests.support.processes import ServiceProcess

FAST = {
    "TIMERS_FALLBACK_WAKEUP_S": "30",  # so only the wake-up signal can make a timer fire promptly
    "SESSION_WARNING_BEFORE_S": "0",
    "SESSION_RECHARGE_GRACE_S": "300",
    "TIMERS_LEASE_TTL_S": "5",
}


def _db(service_env: dict[str, str]) -> Any:
    return MongoClient(service_env["MONGO_URL"])[service_env["MONGO_DB"]]


def _holder_and_standby(db: Any, replicas: list[ServiceProcess]) -> tuple[ServiceProcess, ServiceProcess]:
    def holder_pid() -> str:
        lease = db.client[f"{db.name}_timers"].leases.find_one({"_id": "timers.session"})
        return "" if lease is None or lease["expires_at"] < time.time() else str(lease["owner"])

    assert wait_until(lambda: bool(holder_pid()), 10)
    owner = holder_pid()
    holder = next(r for r in replicas if r.process is not None and f":{r.process.pid}:" in owner)
    return holder, next(r for r in replicas if r is not holder)


def _start(target: str, token: str, seconds: int) -> pb.Session:
    stub = session_service_pb2_grpc.SessionServiceStub(grpc.insecure_channel(target))
    request = pb.StartSessionRequest(advisor_id="bob", prepaid_seconds=seconds, request_id=uuid.uuid4().hex)
    return stub.StartSession(request, metadata=bearer(token), timeout=30).session


def test_timer_scheduled_on_standby_fires_on_time_at_the_runner(
    start_service: Callable[..., ServiceProcess], service_env: dict[str, str], token: Callable[..., str]
) -> None:
    replicas = [start_service("session_svc", **FAST) for _ in range(2)]
    db = _db(service_env)
    _, standby = _holder_and_standby(db, replicas)
    session = _start(standby.target, token("alice", "customer"), 2)
    assert wait_until(lambda: db.sessions.find_one({"_id": session.id})["state"] == "PAUSED_FOR_RECHARGE", 10)
    document = db.sessions.find_one({"_id": session.id})
    # The runner slept with no job and its fallback wake-up is 30 s away: only the
    # wake-up signal makes it fire within seconds (lateness itself: bench/timers.py).
    assert document["update_time"] - document["paid_until"] < 5.0


@pytest.mark.slow
def test_every_due_session_pauses_once_after_holder_is_killed(
    start_service: Callable[..., ServiceProcess], service_env: dict[str, str], token: Callable[..., str]
) -> None:
    replicas = [start_service("session_svc", **FAST) for _ in range(2)]
    db = _db(service_env)
    alice = token("alice", "customer")
    with ThreadPoolExecutor(8) as pool:
        sessions = list(pool.map(lambda i: _start(replicas[i % 2].target, alice, 8), range(200)))
    first_deadline = min(s.paid_until.ToNanoseconds() for s in sessions) / 1e9
    time.sleep(max(0.0, first_deadline + 0.05 - time.time()))
    holder, standby = _holder_and_standby(db, replicas)
    holder.kill()  # mid-firing: some pauses done, some submitted, some not yet
    ids = [s.id for s in sessions]
    assert wait_until(
        lambda: db.sessions.count_documents({"_id": {"$in": ids}, "state": "PAUSED_FOR_RECHARGE"}) == 200,
        60,
        0.5,
    )
    assert db.sessions.count_documents({"_id": {"$in": ids}, "pause_count": 1}) == 200
    assert db.outbox.count_documents({"type": "session.paused.v1"}) == 200
    assert standby.serving()
