"""Service layer of chat_svc: one small function per command, each running in a
unit of work that also writes the command's domain event to the outbox. Fan-out
after commit goes through the `Posted` callback."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pymongo.errors import DuplicateKeyError

from chat_svc import events
from chat_svc.model import (
    AudienceKind,
    Channel,
    Message,
    MessageKind,
    Room,
    RoomKind,
    idempotency_key,
    system_key,
)
from chat_svc.repository import ChatRepository
from mesh.auth import Principal
from mesh.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound, OutOfRange, Unavailable
from mesh.events import Event
from mesh.outbox import Outbox
from mesh.store import Store, UnitOfWork

Posted = Callable[[Message, Event], None]  # after commit: the message and its ChatMessagePosted
MembershipEvent = Callable[[Room, float], Event]
T = TypeVar("T")


@dataclass(frozen=True)
class CreateRoom:
    """Create a room owned by the caller (idempotent on request_id)."""

    kind: RoomKind
    display_name: str
    member_ids: list[str]
    request_id: str
    session_id: str = ""


@dataclass(frozen=True)
class SendMessage:
    """Post a message (idempotent on room, sender, client_message_id)."""

    room_id: str
    client_message_id: str
    body: str
    channel: Channel
    audience: AudienceKind
    recipient_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ListMessages:
    """A page of a room's history below `before` (0: from the newest), on
    `channels` (empty: every channel). `before_field` names the request field
    `before` came from, for the error when it lies past the room's end."""

    room_id: str
    before: int
    limit: int
    channels: frozenset[Channel] = frozenset()
    before_field: str = "before_sequence"


@dataclass(frozen=True)
class PostSystemMessage:
    """A message from the system into a room, once per causing event; on
    `channel`, to `audience` (the room unless narrowed)."""

    room_id: str
    event_id: str
    event_type: str
    body: str
    channel: Channel = Channel.CHAT
    audience: AudienceKind = AudienceKind.ROOM
    recipient_ids: list[str] = field(default_factory=list)


class ChatHandlers:
    """The commands and queries of chat_svc over one store."""

    def __init__(self, store: Store, outbox: Outbox, on_posted: Posted) -> None:
        self.store = store
        self.outbox = outbox
        self.repo = ChatRepository(store.db)
        self.on_posted = on_posted

    def transaction(self, work: Callable[[UnitOfWork], T]) -> T:
        return self.store.transaction(work)

    # rooms -----------------------------------------------------------------------

    def load_room(self, room_id: str, uow: UnitOfWork | None = None) -> Room:
        room = self.repo.get_room(room_id, uow.session if uow else None)
        if room is None:
            raise NotFound(f"room {room_id} not found")
        return room

    def create_room(self, command: CreateRoom, caller: Principal) -> Room:
        key = f"{caller.user_id}/{command.request_id}"
        members = [caller.user_id, *(m for m in dict.fromkeys(command.member_ids) if m != caller.user_id)]
        if command.kind == RoomKind.DIRECT and len(members) != 2:
            raise InvalidArgument(
                [FieldViolation("member_ids", "a DIRECT room needs exactly one other user")]
            )
        now = time.time()
        room = Room(
            id=str(uuid.uuid4()),
            kind=command.kind,
            display_name=command.display_name,
            owner_id=caller.user_id,
            member_ids=members,
            session_id=command.session_id,
            create_time=now,
            update_time=now,
        )

        def work(uow: UnitOfWork) -> Room:
            self.repo.remember_request(key, room.id, uow.session)  # a repeat fails here
            self.repo.insert_room(room, uow.session)
            if command.session_id:
                self.repo.remember_session(command.session_id, room.id, uow.session)
            self.outbox.add(uow, events.room_created(room))
            return room

        try:
            return self.transaction(work)
        except DuplicateKeyError:
            existing = self.repo.room_for_request(key)
            if existing is None:  # the session already has a room
                raise AlreadyExists(f"session {command.session_id} already has a room") from None
            return self.load_room(existing)

    def get_room(self, room_id: str, caller: Principal) -> Room:
        room = self.load_room(room_id)
        room.require_reader(caller.user_id, caller.is_privileged)
        return room

    def list_rooms(self, caller: Principal, kind: int, offset: int, limit: int) -> list[Room]:
        return self.repo.rooms_of(caller.user_id, kind, offset, limit)

    def _change_members(self, room_id: str, change: Callable[[Room], bool], event: MembershipEvent) -> Room:
        """Apply `change`; when it changed the members, save them and emit `event`."""

        def work(uow: UnitOfWork) -> Room:
            now = time.time()
            room = self.repo.touch_room(room_id, now, uow.session)
            if room is None:
                raise NotFound(f"room {room_id} not found")
            if not change(room):
                # roll the lock's touch back: a no-op (a non-member leaving) must not
                # move update_time, which orders every member's room list
                raise _Unchanged
            self.repo.save_members(room, uow.session)
            self.outbox.add(uow, event(room, now))
            return room

        try:
            return self.transaction(work)
        except _Unchanged:
            return self.load_room(room_id)

    def join_room(self, room_id: str, caller: Principal) -> Room:
        return self._change_members(
            room_id,
            lambda room: room.join(caller.user_id),
            lambda room, now: events.member_joined(room.id, caller.user_id, "", now),
        )

    def leave_room(self, room_id: str, caller: Principal) -> None:
        self._change_members(
            room_id,
            lambda room: room.remove(caller.user_id),
            lambda room, now: events.member_left(room.id, caller.user_id, "", now),
        )

    def add_member(self, room_id: str, user_id: str, caller: Principal, max_members: int) -> Room:
        def change(room: Room) -> bool:
            room.require_owner(caller.user_id, caller.is_privileged)
            if not room.is_member(user_id) and len(room.member_ids) >= max_members:
                raise InvalidArgument([FieldViolation("user_id", f"room is full ({max_members} members)")])
            return room.admit(user_id)

        return self._change_members(
            room_id,
            change,
            lambda room, now: events.member_joined(room.id, user_id, _actor(caller, user_id), now),
        )

    def remove_member(self, room_id: str, user_id: str, caller: Principal) -> Room:
        def change(room: Room) -> bool:
            room.require_owner(caller.user_id, caller.is_privileged)
            return room.dismiss(user_id)

        return self._change_members(
            room_id,
            change,
            lambda room, now: events.member_left(room.id, user_id, _actor(caller, user_id), now),
        )

    # messages ----------------------------------------------------------------------

    def send_message(self, command: SendMessage, caller: Principal) -> Message:
        idem = idempotency_key(caller.user_id, command.client_message_id)
        message = Message(
            id=str(uuid.uuid4()),
            room_id=command.room_id,
            sequence=0,
            sender_id=caller.user_id,
            body=command.body,
            channel=command.channel,
            audience=command.audience,
            recipient_ids=list(dict.fromkeys(command.recipient_ids)),
            kind=MessageKind.USER,
            client_message_id=command.client_message_id,
        )

        def may_send(room: Room) -> None:
            room.require_member(caller.user_id)
            outsiders = [r for r in message.recipient_ids if not room.is_member(r)]
            if outsiders:
                raise InvalidArgument(
                    [
                        FieldViolation(
                            "audience.recipient_ids", f"not members of the room: {', '.join(outsiders)}"
                        )
                    ]
                )

        # one transaction and no reads before it: every store command is a turn at the
        # embedded server's per-database gate. A retried send fails on the unique idem
        # index (rolling back its sequence) and answers with the stored message.
        try:
            stored, event = self.transaction(lambda uow: self._store_message(uow, message, idem, may_send))
        except DuplicateKeyError:
            return self._stored_or_raise(command.room_id, idem)
        self.on_posted(stored, event)
        return stored

    def _stored_or_raise(self, room_id: str, idem: str) -> Message:
        existing = self.repo.find_by_idem(room_id, idem)
        if existing is None:
            raise Unavailable("message not stored, retry with the same client_message_id")
        return existing

    def post_system_message(self, command: PostSystemMessage, uow: UnitOfWork) -> Message:
        """Inside the caller's unit of work (the inbox records the event in it too)."""
        message = Message(
            id=str(uuid.uuid4()),
            room_id=command.room_id,
            sequence=0,
            sender_id="",
            body=command.body,
            channel=command.channel,
            audience=command.audience,
            recipient_ids=list(command.recipient_ids),
            kind=MessageKind.SYSTEM,
            system_event_type=command.event_type,
        )
        stored, event = self._store_message(uow, message, system_key(command.event_id))
        uow.after_commit(lambda: self.on_posted(stored, event))
        return stored

    def _store_message(
        self,
        uow: UnitOfWork,
        message: Message,
        idem: str,
        may_send: Callable[[Room], None] = lambda room: None,
    ) -> tuple[Message, Event]:
        """Take the next sequence, check the room allows the message (raising rolls
        the sequence back), insert the message and its ChatMessagePosted outbox row;
        a user's message also gets its channel's work item (one insert for both)."""
        now = time.time()
        room = self.repo.take_sequence(message.room_id, now, uow.session)
        if room is None:
            raise NotFound(f"room {message.room_id} not found")
        may_send(room)
        stored = replace(message, sequence=room.last_sequence, create_time=now)
        self.repo.insert_message(stored, idem, uow.session)
        event = events.message_posted(stored)
        if stored.kind == MessageKind.USER:
            self.outbox.add_many(uow, [event, events.channel_work(stored)])
        else:  # the system's own messages (session notices, ticket answers) are no inbound work
            self.outbox.add(uow, event)
        return stored, event

    def list_messages(self, query: ListMessages, caller: Principal) -> list[Message]:
        room = self.load_room(query.room_id)
        room.require_reader(caller.user_id, caller.is_privileged)
        if query.before > room.last_sequence + 1:  # a page past the end would look like an empty room
            raise OutOfRange(
                [
                    FieldViolation(
                        query.before_field,
                        f"room {room.id} ends at sequence {room.last_sequence}: at most "
                        f"{room.last_sequence + 1}",
                    )
                ]
            )
        return self.repo.messages_before(
            query.room_id, query.before, caller.user_id, query.limit, query.channels
        )


class _Unchanged(Exception):
    """A membership change that changed nothing: its unit of work is rolled back."""


def _actor(caller: Principal, user_id: str) -> str:
    """Who changed a membership: empty when users change their own."""
    return "" if caller.user_id == user_id else caller.user_id
