"""Service layer of chat_svc: one small function per command, each running in a
unit of work. Fan-out after commit goes through the `Posted` callback."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pymongo.errors import DuplicateKeyError

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
from mesh.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound, Unavailable
from mesh.store import Store, UnitOfWork

Posted = Callable[[Message], None]
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
    channel: Channel = Channel.CHAT
    audience: AudienceKind = AudienceKind.ROOM
    recipient_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PostSystemMessage:
    """A message from the system into a room, once per causing event."""

    room_id: str
    event_id: str
    event_type: str
    body: str


class ChatHandlers:
    """The commands and queries of chat_svc over one store."""

    def __init__(self, store: Store, on_posted: Posted) -> None:
        self.store = store
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

    def _change_members(self, room_id: str, change: Callable[[Room], bool]) -> Room:
        def work(uow: UnitOfWork) -> Room:
            room = self.repo.touch_room(room_id, time.time(), uow.session)
            if room is None:
                raise NotFound(f"room {room_id} not found")
            if change(room):
                self.repo.save_members(room, uow.session)
            return room

        return self.transaction(work)

    def join_room(self, room_id: str, caller: Principal) -> Room:
        return self._change_members(room_id, lambda room: room.join(caller.user_id))

    def leave_room(self, room_id: str, caller: Principal) -> None:
        self._change_members(room_id, lambda room: room.remove(caller.user_id))

    def add_member(self, room_id: str, user_id: str, caller: Principal, max_members: int) -> Room:
        def change(room: Room) -> bool:
            room.require_owner(caller.user_id, caller.is_privileged)
            if not room.is_member(user_id) and len(room.member_ids) >= max_members:
                raise InvalidArgument([FieldViolation("user_id", f"room is full ({max_members} members)")])
            return room.add(user_id)

        return self._change_members(room_id, change)

    def remove_member(self, room_id: str, user_id: str, caller: Principal) -> Room:
        def change(room: Room) -> bool:
            room.require_owner(caller.user_id, caller.is_privileged)
            return room.remove(user_id)

        return self._change_members(room_id, change)

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

        room = self.load_room(command.room_id)
        room.require_member(caller.user_id)
        outsiders = [r for r in command.recipient_ids if not room.is_member(r)]
        if outsiders:
            raise InvalidArgument(
                [FieldViolation("audience.recipient_ids", f"not members of the room: {', '.join(outsiders)}")]
            )
        stored = self.repo.find_by_idem(room.id, idem)
        if stored is not None:
            return stored
        try:
            stored = self.transaction(lambda uow: self._store_message(uow, message, idem))
        except DuplicateKeyError:  # the same send committed concurrently
            return self._stored_or_raise(command.room_id, idem)
        self.on_posted(stored)
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
            kind=MessageKind.SYSTEM,
            system_event_type=command.event_type,
        )
        stored = self._store_message(uow, message, system_key(command.event_id))
        uow.after_commit(lambda: self.on_posted(stored))
        return stored

    def _store_message(
        self,
        uow: UnitOfWork,
        message: Message,
        idem: str,
    ) -> Message:
        """Take the next sequence and insert the message in the same transaction."""
        now = time.time()
        room = self.repo.take_sequence(message.room_id, now, uow.session)
        if room is None:
            raise NotFound(f"room {message.room_id} not found")
        stored = replace(message, sequence=room.last_sequence, create_time=now)
        self.repo.insert_message(stored, idem, uow.session)
        return stored

    def list_messages(self, room_id: str, before: int, limit: int, caller: Principal) -> list[Message]:
        room = self.load_room(room_id)
        room.require_reader(caller.user_id, caller.is_privileged)
        return self.repo.messages_before(room_id, before, caller.user_id, limit)
