"""A paused session that is not recharged within the grace period expires, end to end:
real timers (APScheduler on the MongoDB job store, under the lease), the real store
and broker, chat_svc posting to the session's room. Observed through WatchSession
and in the room, exactly once."""

from __future__ import annotations

from collections.abc import Callable

from pymongo import MongoClient
from switchboard.session.v1 import session_service_pb2 as pb

from mesh.processes import wait_until
from tests.integration.sessions_mesh import (
    SessionUser,
    start_chat_for_sessions,
    start_sessions,
    system_messages,
)
from tests.support.processes import ServiceProcess

GRACE_S = 2


def test_paused_session_not_recharged_in_time_expires_once_in_watch_and_room(
    start_service: Callable[..., ServiceProcess],
    token: Callable[..., str],
    isolation: dict[str, str],
    service_env: dict[str, str],
) -> None:
    chat = start_chat_for_sessions(start_service, isolation)
    sessions = start_sessions(
        start_service, chat.target, SESSION_WARNING_BEFORE_S="1", SESSION_RECHARGE_GRACE_S=str(GRACE_S)
    )
    alice = SessionUser(sessions.target, token("alice", "customer"))
    try:
        session = alice.start(seconds=2)
        watch = alice.watch(session.id, timeout_s=60)
        assert watch.ended.wait(30), f"stream still open: {[u.session.state for u in watch.changes()]}"
        assert watch.error is None
        changes = watch.changes()
        assert [u.session.state for u in changes][-3:] == [
            pb.SESSION_STATE_ACTIVE,  # warned
            pb.SESSION_STATE_PAUSED_FOR_RECHARGE,
            pb.SESSION_STATE_EXPIRED,
        ]
        assert watch.versions() == list(range(1, len(changes) + 1))  # every version, in order
        paused, expired = changes[-2].session, changes[-1].session
        assert expired.end_time.ToMilliseconds() >= paused.expire_at.ToMilliseconds()
        assert paused.expire_at.ToMilliseconds() == paused.paid_until.ToMilliseconds() + GRACE_S * 1000
        assert alice.get(session.id).state == pb.SESSION_STATE_EXPIRED

        bob = token("bob", "advisor")
        ended = lambda: [m for m in system_messages(chat, bob, session.room_id) if "expired" in m.body]  # noqa: E731
        assert wait_until(lambda: len(ended()) == 1, 15)
        types = [m.system_event_type for m in system_messages(chat, bob, session.room_id)]
        assert types == [
            "session.started.v1",
            "session.pause_warning.v1",
            "session.paused.v1",
            "session.ended.v1",
        ]
        db = MongoClient(service_env["MONGO_URL"])[service_env["MONGO_DB"]]
        assert (
            db.outbox.count_documents({"subject": f"sessions/{session.id}", "type": "session.ended.v1"}) == 1
        )
    finally:
        alice.close()
