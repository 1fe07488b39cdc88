"""Session rooms: session_svc's events become SYSTEM messages in the session's
room. They are consumed through mesh.inbox: the processed event id is recorded in the
same transaction as the message, so a redelivered event posts nothing twice."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from google.protobuf.message import Message as ProtoMessage
from switchboard.events.v1 import session_events_pb2 as se

from chat_svc import events
from chat_svc.handlers import ChatHandlers, PostSystemMessage
from chat_svc.model import Room, RoomKind
from mesh.events import Event, unpack
from mesh.store import UnitOfWork

log = logging.getLogger(__name__)

PATTERNS = (
    "session.started.v1",
    "session.pause_warning.v1",
    "session.paused.v1",
    "session.resumed.v1",
    "session.ended.v1",
)


def _clock(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S UTC")


def _describe(event_type: str, data: ProtoMessage) -> str:
    if isinstance(data, se.SessionStarted):
        return "The session has started."
    if isinstance(data, se.SessionPauseWarning):
        return f"Paid time ends in {data.remaining_seconds} s: recharge to continue."
    if isinstance(data, se.SessionPaused):
        return f"The session is paused for recharge (expires at {_clock(data.expire_at.seconds)})."
    if isinstance(data, se.SessionResumed):
        return f"The session resumed: {data.added_seconds} s added."
    if isinstance(data, se.SessionEnded):
        reason = "expired" if data.reason == se.SESSION_END_REASON_EXPIRED else "ended"
        return f"The session has {reason}."
    return event_type


_TYPES: dict[str, type[ProtoMessage]] = {
    "session.started.v1": se.SessionStarted,
    "session.pause_warning.v1": se.SessionPauseWarning,
    "session.paused.v1": se.SessionPaused,
    "session.resumed.v1": se.SessionResumed,
    "session.ended.v1": se.SessionEnded,
}


class SessionEventHandler:
    """`handle(uow, event)` is the mesh.inbox effect: it runs on the consumer thread
    (blocking I/O is fine there) inside the inbox's transaction, which records the
    event id. Any error it raises, a DuplicateKeyError of a room or message
    included, rolls everything back: the bus retries the event, then parks it."""

    def __init__(self, handlers: ChatHandlers) -> None:
        self.handlers = handlers

    def handle(self, uow: UnitOfWork, event: Event) -> None:
        message_cls = _TYPES.get(event.type)
        if message_cls is None:
            return
        self._apply(uow, event, unpack(event, message_cls))

    def _apply(self, uow: UnitOfWork, event: Event, data: ProtoMessage) -> None:
        room = self._session_room(uow, data)
        if room is None:
            return
        body = _describe(event.type, data)
        self.handlers.post_system_message(PostSystemMessage(room.id, event.id, event.type, body), uow)

    def _session_room(self, uow: UnitOfWork, data: ProtoMessage) -> Room | None:
        """The session's room: by room_id (created with exactly that id if it does not
        exist yet: session_svc assigns it at start), else the one remembered for the
        session, else a new one for both participants (events without a room_id). An
        existing room that is not the two participants' own is refused: session_svc
        checks this at start; this is the defence in depth (a room whose members
        changed since, or an event from a misbehaving producer)."""
        session_id: str = getattr(data, "session_id", "")
        room_id: str = getattr(data, "room_id", "")
        customer, advisor = getattr(data, "customer_id", ""), getattr(data, "advisor_id", "")
        repo = self.handlers.repo
        room = repo.get_room(room_id, uow.session) if room_id else None
        if room is None and not room_id and session_id:
            known = repo.room_for_session(session_id, uow.session)
            room = repo.get_room(known, uow.session) if known else None
        if room is not None:
            if not _belongs_to(room, session_id, customer, advisor):
                log.warning(
                    "session event for a room that is not the session's; not posted",
                    extra={"session_id": session_id, "room_id": room.id},
                )
                return None
            return room
        if not session_id or not customer or not advisor:
            log.warning("session event without room or participants; ignored")
            return None
        now = time.time()
        room = Room(
            id=room_id or str(uuid.uuid4()),
            kind=RoomKind.SESSION,
            display_name=f"session {session_id}"[:100],
            owner_id=advisor,
            member_ids=[customer, advisor],
            session_id=session_id,
            create_time=now,
            update_time=now,
        )
        repo.insert_room(room, uow.session)
        repo.claim_session(session_id, room.id, uow.session)
        self.handlers.outbox.add(uow, events.room_created(room))
        return room


def _belongs_to(room: Room, session_id: str, customer: str, advisor: str) -> bool:
    """A room a session may post to: a DIRECT or SESSION room whose members are exactly
    the session's two participants, and a SESSION room only if it is this session's
    (or bound to none). Events that name no participants are judged by the binding."""
    if room.kind not in (RoomKind.DIRECT, RoomKind.SESSION):
        return False
    if room.kind == RoomKind.SESSION and room.session_id not in ("", session_id):
        return False
    if not customer or not advisor:
        return room.kind == RoomKind.SESSION and room.session_id == session_id
    return sorted(room.member_ids) == sorted({customer, advisor})
