"""session_svc against real processes, MongoDB and RabbitMQ: the server-owned clock."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from pymongo import MongoClient
from switchboard.session.v1 import session_service_pb2 as pb
from switchboard.session.v1 import session_service_pb2_grpc

from mesh.client import bearer
from mesh.processes import wait_until
from tests.support.processes import ServiceProcess

FAST = {"SESSION_WARNING_BEFORE_S": "1", "SESSION_RECHARGE_GRACE_S": "30", "TIMERS_LEASE_TTL_S": "5"}
PAUSED = pb.SESSION_STATE_PAUSED_FOR_RECHARGE


class Client:
    """A SessionService stub with a caller's token."""

    def __init__(self, target: str, token: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = session_service_pb2_grpc.SessionServiceStub(self.channel)
        self.metadata = bearer(token)

    def start(self, advisor: str = "bob", seconds: int = 3) -> pb.Session:
        request = pb.StartSessionRequest(
            advisor_id=advisor, prepaid_seconds=seconds, request_id=uuid.uuid4().hex
        )
        return self.stub.StartSession(request, metadata=self.metadata, timeout=10).session

    def get(self, session_id: str) -> pb.Session:
        return self.stub.GetSession(
            pb.GetSessionRequest(session_id=session_id), metadata=self.metadata, timeout=10
        ).session

    def recharge(self, session_id: str, seconds: int, request_id: str = "") -> pb.Session:
        request = pb.RechargeRequest(
            session_id=session_id, seconds=seconds, request_id=request_id or uuid.uuid4().hex
        )
        return self.stub.Recharge(request, metadata=self.metadata, timeout=30).session


@pytest.fixture
def session_svc(start_service: Callable[..., ServiceProcess]) -> ServiceProcess:
    return start_service("session_svc", **FAST)


@pytest.fixture
def alice(session_svc: ServiceProcess, token: Callable[..., str]) -> Client:
    return Client(session_svc.target, token("alice", "customer"))


def _sessions(service_env: dict[str, str]) -> Any:
    return MongoClient(service_env["MONGO_URL"])[service_env["MONGO_DB"]]


def test_timer_pauses_session_at_deadline_exactly_once(alice: Client, service_env: dict[str, str]) -> None:
    session = alice.start(seconds=2)
    deadline = session.paid_until.ToNanoseconds() / 1e9
    assert wait_until(lambda: alice.get(session.id).state == PAUSED, 10)
    db = _sessions(service_env)
    document = db.sessions.find_one({"_id": session.id})
    assert document["update_time"] >= deadline  # never before the paid time ends (lateness: bench/timers.py)
    assert document["pause_count"] == 1
    assert db.outbox.count_documents({"subject": f"sessions/{session.id}", "type": "session.paused.v1"}) == 1


def test_recharge_before_deadline_moves_the_pause(alice: Client) -> None:
    session = alice.start(seconds=2)
    recharged = alice.recharge(session.id, 3)
    assert recharged.paid_until.ToSeconds() == session.paid_until.ToSeconds() + 3
    time.sleep(2.5)  # past the original deadline: a moved timer must not pause it then
    assert alice.get(session.id).state == pb.SESSION_STATE_ACTIVE
    assert wait_until(lambda: alice.get(session.id).state == PAUSED, 8)


def test_recharge_after_pause_resumes_session(alice: Client) -> None:
    session = alice.start(seconds=1)
    assert wait_until(lambda: alice.get(session.id).state == PAUSED, 10)
    resumed = alice.recharge(session.id, 60)
    assert resumed.state == pb.SESSION_STATE_ACTIVE
    assert 58 <= resumed.remaining_seconds <= 60


def test_fifty_concurrent_recharges_are_all_counted(alice: Client) -> None:
    session = alice.start(seconds=600)
    errors: list[BaseException] = []

    def recharge() -> None:
        try:
            alice.recharge(session.id, 10)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=recharge) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    final = alice.get(session.id)
    assert final.paid_seconds_total == 600 + 50 * 10
    assert final.version == 1 + 50


def test_watch_session_shows_same_pause_to_both_participants(
    session_svc: ServiceProcess, token: Callable[..., str]
) -> None:
    alice = Client(session_svc.target, token("alice", "customer"))
    bob = Client(session_svc.target, token("bob", "advisor"))
    session = alice.start(advisor="bob", seconds=2)
    seen: dict[str, list[pb.WatchSessionResponse]] = {"alice": [], "bob": []}

    def watch(name: str, client: Client) -> None:
        stream = client.stub.WatchSession(
            pb.WatchSessionRequest(session_id=session.id), metadata=client.metadata, timeout=15
        )
        for update in stream:
            seen[name].append(update)
            if update.session.state == PAUSED:
                stream.cancel()
                return

    threads = [threading.Thread(target=watch, args=item) for item in (("alice", alice), ("bob", bob))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    for updates in seen.values():
        assert updates[0].kind == pb.SESSION_UPDATE_KIND_SNAPSHOT
        assert updates[-1].kind == pb.SESSION_UPDATE_KIND_STATE_CHANGED
    pause_a, pause_b = seen["alice"][-1], seen["bob"][-1]
    assert pause_a.session.version == pause_b.session.version
    assert abs(pause_a.server_time.ToNanoseconds() - pause_b.server_time.ToNanoseconds()) < 300_000_000
    assert any(u.kind == pb.SESSION_UPDATE_KIND_PAUSE_WARNING for u in seen["alice"])


def test_timers_fire_after_every_replica_restarts(
    start_service: Callable[..., ServiceProcess], token: Callable[..., str]
) -> None:
    first = start_service("session_svc", **FAST)
    alice = Client(first.target, token("alice", "customer"))
    session = alice.start(seconds=3)
    first.terminate()
    time.sleep(3.5)  # the deadline passes while no replica runs
    second = start_service("session_svc", **FAST)
    alice = Client(second.target, token("alice", "customer"))
    assert wait_until(lambda: alice.get(session.id).state == PAUSED, 10)
