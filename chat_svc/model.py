"""The chat domain, pure Python without I/O: rooms, membership rules and who a
message is addressed to."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mesh.errors import FailedPrecondition, PermissionDenied


class RoomKind(enum.IntEnum):
    """Mirrors switchboard.chat.v1.RoomKind."""

    GROUP = 1
    DIRECT = 2
    SESSION = 3


class Channel(enum.IntEnum):
    """Mirrors switchboard.chat.v1.Channel."""

    CHAT = 1
    VOICE = 2
    TICKETS = 3


class AudienceKind(enum.IntEnum):
    """Mirrors switchboard.chat.v1.AudienceKind."""

    ROOM = 1
    MEMBERS = 2
    MEMBER = 3


class MessageKind(enum.IntEnum):
    """Mirrors switchboard.chat.v1.MessageKind."""

    USER = 1
    SYSTEM = 2


@dataclass
class Room:
    """A chat room and its members; the owner may add and remove members."""

    id: str
    kind: RoomKind
    display_name: str
    owner_id: str
    member_ids: list[str]
    session_id: str = ""
    last_sequence: int = 0
    create_time: float = 0.0
    update_time: float = 0.0

    def is_member(self, user_id: str) -> bool:
        return user_id in self.member_ids

    def require_reader(self, user_id: str, privileged: bool) -> None:
        """Members (and admins/services) may read a room; others are refused."""
        if not privileged and not self.is_member(user_id):
            raise PermissionDenied(f"{user_id} is not a member of room {self.id}")

    def require_member(self, user_id: str) -> None:
        """Sending and subscribing need real membership, whatever the role."""
        if not self.is_member(user_id):
            raise PermissionDenied(f"{user_id} is not a member of room {self.id}")

    def require_owner(self, user_id: str, privileged: bool) -> None:
        if not privileged and user_id != self.owner_id:
            raise PermissionDenied(f"only the owner of room {self.id} may change its members")

    def join(self, user_id: str) -> bool:
        """Self-service join: GROUP rooms only. Returns False when already a member."""
        if self.kind != RoomKind.GROUP:
            raise PermissionDenied(f"{self.kind.name} rooms cannot be joined, only added to")
        return self.add(user_id)

    def admit(self, user_id: str) -> bool:
        """The owner adds a member. A DIRECT room keeps its two members for good, and so
        does a SESSION room: it is the customer's paid conversation too, and its
        advisor (the owner) must not let a third party read it."""
        if self.kind in (RoomKind.DIRECT, RoomKind.SESSION) and not self.is_member(user_id):
            raise FailedPrecondition(f"room {self.id} is {self.kind.name}: its members are fixed")
        return self.add(user_id)

    def dismiss(self, user_id: str) -> bool:
        """The owner removes a member; nobody is removed from a SESSION room (members
        leave it themselves)."""
        if self.kind == RoomKind.SESSION and self.is_member(user_id):
            raise FailedPrecondition(f"room {self.id} is SESSION: its members are fixed")
        return self.remove(user_id)

    def add(self, user_id: str) -> bool:
        if self.is_member(user_id):
            return False
        self.member_ids.append(user_id)
        return True

    def remove(self, user_id: str) -> bool:
        if not self.is_member(user_id):
            return False
        self.member_ids.remove(user_id)
        return True


@dataclass
class Message:
    """One stored message of a room with its per-room sequence number."""

    id: str
    room_id: str
    sequence: int
    sender_id: str
    body: str
    channel: Channel = Channel.CHAT
    audience: AudienceKind = AudienceKind.ROOM
    recipient_ids: list[str] = field(default_factory=list)
    kind: MessageKind = MessageKind.USER
    client_message_id: str = ""
    create_time: float = 0.0
    system_event_type: str = ""


def addressed_to(audience: int, recipient_ids: list[str], sender_id: str, user_id: str) -> bool:
    """Whether `user_id` receives a message: everyone for ROOM only, else the
    listed recipients and the sender (an unset or unknown kind never broadcasts)."""
    if audience == AudienceKind.ROOM:
        return True
    return (bool(sender_id) and user_id == sender_id) or user_id in recipient_ids


def idempotency_key(sender_id: str, client_message_id: str) -> str:
    """Unique per room: a retried send finds the stored message by it."""
    return f"user/{sender_id}/{client_message_id}"


def system_key(event_id: str) -> str:
    """Idempotency of system messages: one per causing event."""
    return f"system/{event_id}"
