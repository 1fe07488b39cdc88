"""chat_svc consumes session events through mesh.inbox: a DuplicateKeyError of the
effect itself (a clashing message or room) is a failure, never "already
processed": nothing is written, the event is retried and then dead-lettered,
where an operator sees it; once the clash is gone it is applied exactly once.
Rows of chat's former private inbox are adopted into retention at start-up."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from pymongo.errors import DuplicateKeyError
from switchboard.admin.v1 import event_admin_pb2 as apb
from switchboard.admin.v1 import event_admin_pb2_grpc
from switchboard.events.v1 import session_events_pb2 as se

from chat_svc.handlers import ChatHandlers
from chat_svc.model import Room, RoomKind, system_key
from chat_svc.repository import MESSAGES, ensure_indexes
from chat_svc.sessions import SessionEventHandler
from mesh.bus import Publisher
from mesh.client import bearer
from mesh.config import MeshConfig
from mesh.events import Event, new_event
from mesh.inbox import Inbox
from mesh.outbox import Outbox
from mesh.processes import wait_until
from mesh.store import Store
from tests.integration.test_chat_streams import start_chat
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess

ROOM = Room(
    id="room-s1",
    kind=RoomKind.SESSION,
    display_name="session s-1",
    owner_id="adam",
    member_ids=["cleo", "adam"],
    session_id="s-1",
)


def paused_event() -> Event:
    data = se.SessionPaused(
        session_id="s-1", customer_id="cleo", advisor_id="adam", room_id=ROOM.id, version=3
    )
    data.expire_at.FromSeconds(1_700_000_000)
    return new_event("session.paused.v1", "session_svc", "sessions/s-1", data)


def seed_room_with_clash(store: Store, event: Event) -> None:
    """The session's room, and a message already holding the idempotency key the
    event's SYSTEM message needs: posting it raises DuplicateKeyError."""
    ensure_indexes(store.db)
    handlers = ChatHandlers(store, Outbox(store, MeshConfig()), lambda message, posted: None)
    handlers.repo.insert_room(ROOM)
    handlers.repo.remember_session(ROOM.session_id, ROOM.id)
    store.db[MESSAGES].insert_one(
        {"_id": "clash", "room_id": ROOM.id, "sequence": 999, "idem": system_key(event.id)}
    )


def system_messages(store: Store) -> list[dict[str, object]]:
    return list(store.db[MESSAGES].find({"room_id": ROOM.id, "_id": {"$ne": "clash"}}))


@pytest.fixture
def chat_store(mongo: EmbeddedMongo, isolation: dict[str, str]) -> Iterator[Store]:
    store = Store(mongo.url, isolation["MONGO_DB"])
    yield store
    store.close()


def test_an_effects_duplicate_key_error_is_a_failure_not_a_processed_event(chat_store: Store) -> None:
    config = MeshConfig()
    outbox = Outbox(chat_store, config)
    outbox.ensure_indexes()
    sessions = SessionEventHandler(ChatHandlers(chat_store, outbox, lambda message, posted: None))
    inbox = Inbox(chat_store, config)
    event = paused_event()
    seed_room_with_clash(chat_store, event)

    with pytest.raises(DuplicateKeyError):
        inbox.handle(event, sessions.handle)
    [outcome] = inbox.handle_batch([event], sessions.handle)
    assert isinstance(outcome.error, DuplicateKeyError) and not outcome.applied

    assert not inbox.seen(event.id)
    assert system_messages(chat_store) == []
    room = chat_store.db["rooms"].find_one({"_id": ROOM.id})
    assert room is not None and room["last_sequence"] == 0  # the sequence taken was rolled back

    chat_store.db[MESSAGES].delete_one({"_id": "clash"})
    assert inbox.handle(event, sessions.handle) is True
    assert inbox.handle(event, sessions.handle) is False  # a redelivery now is a duplicate
    [posted] = system_messages(chat_store)
    assert posted["system_event_type"] == "session.paused.v1"


def test_a_session_event_that_clashes_is_dead_lettered_for_an_operator_not_dropped(
    start_service: Callable[..., ServiceProcess],
    mongo: EmbeddedMongo,
    isolation: dict[str, str],
    token: Callable[..., str],
    chat_store: Store,
) -> None:
    event = paused_event()
    seed_room_with_clash(chat_store, event)
    chat_store.db["inbox"].insert_one({"_id": "from-the-old-inbox", "processed_at": 1_600_000_000.0})
    chat = start_chat(start_service, BUS_MAX_ATTEMPTS="2", BUS_RETRY_DELAYS_MS="[100]")
    queue = f"{isolation['QUEUE_PREFIX']}chat.session-events"
    operator = bearer(token("ops", "operator"))
    publisher = Publisher(
        MeshConfig(rabbitmq_url=RABBITMQ_URL, events_exchange=isolation["EVENTS_EXCHANGE"]), "test"
    ).start()
    try:
        # the former private inbox's row is under retention (and 2020 is long past it)
        assert wait_until(
            lambda: chat_store.db["inbox"].find_one({"_id": "from-the-old-inbox"}) is None, 15, 0.1
        )
        assert publisher.wait_ready(10)
        with grpc.insecure_channel(chat.target) as channel:
            admin = event_admin_pb2_grpc.EventAdminServiceStub(channel)

            def parked() -> list[str]:
                listed = admin.ListDeadLetters(
                    apb.ListDeadLettersRequest(queue=queue), metadata=operator, timeout=10
                )
                return [letter.message_id for letter in listed.dead_letters]

            # bound once the consumer declared its queue: publish until it is parked
            def published_and_parked() -> bool:
                if not parked():
                    publisher.publish(event).result(10)
                return wait_until(lambda: parked() == [event.id], 3, 0.1)

            assert wait_until(published_and_parked, 30, 0.1)
            assert system_messages(chat_store) == []
            assert not Inbox(chat_store, MeshConfig()).seen(event.id)

            chat_store.db[MESSAGES].delete_one({"_id": "clash"})
            replay = apb.ReplayDeadLettersRequest(queue=queue, message_ids=[event.id])
            assert admin.ReplayDeadLetters(replay, metadata=operator, timeout=10).replayed_count == 1
            assert wait_until(lambda: len(system_messages(chat_store)) == 1, 15, 0.1)
    finally:
        publisher.close()
