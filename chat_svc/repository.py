"""MongoDB documents of chat_svc ↔ the domain model. Times are epoch seconds
(floats) because the embedded MongoDB cannot compare BSON datetimes."""

from __future__ import annotations

import contextlib
from typing import Any

import pymongo
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import CollectionInvalid

from chat_svc.model import AudienceKind, Channel, Message, MessageKind, Room, RoomKind

Document = dict[str, Any]

ROOMS = "rooms"
MESSAGES = "messages"
ROOM_REQUESTS = "room_requests"  # _id "<owner>/<request_id>" → room_id: CreateRoom idempotency
SESSION_ROOMS = "session_rooms"  # _id session_id → room_id
CONNECTIONS = "connections"  # presence: one document per open stream
PRESENCE = "presence"  # _id user_id → the presence state last announced
CHANNEL_WORK = "channel_work"  # _id message_id → which channel worker handled it, when (routing record)
COUNTERS = "counters"  # _id counter name → its last value (ticket numbers)


def ensure_indexes(db: Database[Document]) -> None:
    """Idempotent; run at start-up. Collections first written inside a transaction
    are created here (nx-27017 mishandles one created in a transaction that aborts)."""
    existing = set(db.list_collection_names())
    for name in (ROOM_REQUESTS, SESSION_ROOMS, PRESENCE, CHANNEL_WORK, COUNTERS):
        if name not in existing:
            with contextlib.suppress(CollectionInvalid):  # another replica created it meanwhile
                db.create_collection(name)
    db[ROOMS].create_index([("member_ids", pymongo.ASCENDING), ("update_time", pymongo.DESCENDING)])
    db[MESSAGES].create_index([("room_id", pymongo.ASCENDING), ("sequence", pymongo.DESCENDING)], unique=True)
    db[MESSAGES].create_index([("room_id", pymongo.ASCENDING), ("idem", pymongo.ASCENDING)], unique=True)
    db[CONNECTIONS].create_index([("user_id", pymongo.ASCENDING), ("expires_at", pymongo.ASCENDING)])
    db[CONNECTIONS].create_index("expires_at")


def room_to_doc(room: Room) -> Document:
    return {
        "_id": room.id,
        "kind": int(room.kind),
        "display_name": room.display_name,
        "owner_id": room.owner_id,
        "member_ids": list(room.member_ids),
        "session_id": room.session_id,
        "last_sequence": room.last_sequence,
        "create_time": room.create_time,
        "update_time": room.update_time,
    }


def room_from_doc(doc: Document) -> Room:
    return Room(
        id=doc["_id"],
        kind=RoomKind(doc["kind"]),
        display_name=doc.get("display_name", ""),
        owner_id=doc.get("owner_id", ""),
        member_ids=list(doc.get("member_ids", [])),
        session_id=doc.get("session_id", ""),
        last_sequence=int(doc.get("last_sequence", 0)),
        create_time=float(doc.get("create_time", 0.0)),
        update_time=float(doc.get("update_time", 0.0)),
    )


def message_to_doc(message: Message, idem: str) -> Document:
    return {
        "_id": message.id,
        "room_id": message.room_id,
        "sequence": message.sequence,
        "idem": idem,
        "client_message_id": message.client_message_id,
        "sender_id": message.sender_id,
        "body": message.body,
        "channel": int(message.channel),
        "audience": int(message.audience),
        "recipient_ids": list(message.recipient_ids),
        "kind": int(message.kind),
        "create_time": message.create_time,
        "system_event_type": message.system_event_type,
    }


def message_from_doc(doc: Document) -> Message:
    return Message(
        id=doc["_id"],
        room_id=doc["room_id"],
        sequence=int(doc["sequence"]),
        sender_id=doc.get("sender_id", ""),
        body=doc.get("body", ""),
        channel=Channel(doc.get("channel", 1)),
        audience=AudienceKind(doc.get("audience", 1)),
        recipient_ids=list(doc.get("recipient_ids", [])),
        kind=MessageKind(doc.get("kind", 1)),
        client_message_id=doc.get("client_message_id", ""),
        create_time=float(doc.get("create_time", 0.0)),
        system_event_type=doc.get("system_event_type", ""),
    )


class ChatRepository:
    """Rooms and messages in one database; pass `session` inside a unit of work."""

    def __init__(self, db: Database[Document]) -> None:
        self.db = db

    def get_room(self, room_id: str, session: ClientSession | None = None) -> Room | None:
        doc = self.db[ROOMS].find_one({"_id": room_id}, session=session)
        return room_from_doc(doc) if doc else None

    def insert_room(self, room: Room, session: ClientSession | None = None) -> None:
        self.db[ROOMS].insert_one(room_to_doc(room), session=session)

    def save_members(self, room: Room, session: ClientSession | None = None) -> None:
        self.db[ROOMS].update_one(
            {"_id": room.id},
            {"$set": {"member_ids": room.member_ids, "update_time": room.update_time}},
            session=session,
        )

    def rooms_of(
        self, user_id: str, kind: int, offset: int, limit: int, session: ClientSession | None = None
    ) -> list[Room]:
        query: Document = {"member_ids": user_id}
        if kind:
            query["kind"] = kind
        cursor = (
            self.db[ROOMS]
            .find(query, session=session)
            .sort([("update_time", pymongo.DESCENDING), ("_id", pymongo.ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [room_from_doc(d) for d in cursor]

    def room_ids_of(self, user_id: str, session: ClientSession | None = None) -> list[str]:
        return [d["_id"] for d in self.db[ROOMS].find({"member_ids": user_id}, {"_id": 1}, session=session)]

    def room_ids_of_users(self, user_ids: set[str]) -> dict[str, list[str]]:
        """user → the rooms they are a member of, for many users in one query."""
        rooms: dict[str, list[str]] = {}
        for doc in self.db[ROOMS].find({"member_ids": {"$in": list(user_ids)}}, {"member_ids": 1}):
            for user_id in user_ids.intersection(doc.get("member_ids", ())):
                rooms.setdefault(user_id, []).append(doc["_id"])
        return rooms

    def rooms_by_ids(self, room_ids: list[str]) -> dict[str, Room]:
        """The rooms that exist among `room_ids`, by id, in one query."""
        return {d["_id"]: room_from_doc(d) for d in self.db[ROOMS].find({"_id": {"$in": room_ids}})}

    def last_sequences(self, room_ids: list[str]) -> dict[str, int]:
        docs = self.db[ROOMS].find({"_id": {"$in": room_ids}}, {"last_sequence": 1})
        return {d["_id"]: int(d.get("last_sequence", 0)) for d in docs}

    def take_sequence(self, room_id: str, now: float, session: ClientSession) -> Room | None:
        """Atomically take the room's next sequence number (a write conflict makes
        concurrent senders retry, so numbers follow commit order); the room after it.
        A write first also opens the transaction on the embedded MongoDB, which
        loses a transaction whose first operation is a read."""
        doc = self.db[ROOMS].find_one_and_update(
            {"_id": room_id},
            {"$inc": {"last_sequence": 1}, "$set": {"update_time": now}},
            return_document=pymongo.ReturnDocument.AFTER,
            session=session,
        )
        return room_from_doc(doc) if doc else None

    def touch_room(self, room_id: str, now: float, session: ClientSession) -> Room | None:
        """Lock the room for a membership change (a write, so concurrent changes
        conflict and retry instead of losing an update); the room, or None."""
        doc = self.db[ROOMS].find_one_and_update(
            {"_id": room_id},
            {"$set": {"update_time": now}},
            return_document=pymongo.ReturnDocument.AFTER,
            session=session,
        )
        return room_from_doc(doc) if doc else None

    def find_by_idem(self, room_id: str, idem: str, session: ClientSession | None = None) -> Message | None:
        doc = self.db[MESSAGES].find_one({"room_id": room_id, "idem": idem}, session=session)
        return message_from_doc(doc) if doc else None

    def insert_message(self, message: Message, idem: str, session: ClientSession | None = None) -> None:
        self.db[MESSAGES].insert_one(message_to_doc(message, idem), session=session)

    def messages_after(self, room_id: str, after: int, until: int | None, limit: int) -> list[Message]:
        """Ascending by sequence, after `after` and up to `until` (inclusive)."""
        bounds: Document = {"$gt": after}
        if until is not None:
            bounds["$lte"] = until
        cursor = (
            self.db[MESSAGES]
            .find({"room_id": room_id, "sequence": bounds})
            .sort("sequence", pymongo.ASCENDING)
            .limit(limit)
        )
        return [message_from_doc(d) for d in cursor]

    def messages_before(
        self, room_id: str, before: int, user_id: str, limit: int, channels: frozenset[Channel] = frozenset()
    ) -> list[Message]:
        """Descending by sequence, below `before` (0: from the newest), addressed to
        `user_id`, on `channels` (empty: every channel)."""
        query: Document = {
            "room_id": room_id,
            "$or": [{"audience": int(AudienceKind.ROOM)}, {"sender_id": user_id}, {"recipient_ids": user_id}],
        }
        if before > 0:
            query["sequence"] = {"$lt": before}
        if channels:
            query["channel"] = {"$in": sorted(int(c) for c in channels)}
        cursor = self.db[MESSAGES].find(query).sort("sequence", pymongo.DESCENDING).limit(limit)
        return [message_from_doc(d) for d in cursor]

    # channel work ------------------------------------------------------------------

    def record_channel_work(self, record: Document, session: ClientSession) -> None:
        """One routing record per message (`_id` its id): a second one raises DuplicateKeyError."""
        self.db[CHANNEL_WORK].insert_one(record, session=session)

    def next_number(self, counter: str, session: ClientSession) -> int:
        doc = self.db[COUNTERS].find_one_and_update(
            {"_id": counter},
            {"$inc": {"value": 1}},
            upsert=True,
            return_document=pymongo.ReturnDocument.AFTER,
            session=session,
        )
        assert doc is not None  # an upsert returning the document after it always finds one
        return int(doc["value"])

    # CreateRoom idempotency and session rooms -------------------------------------

    def room_for_request(self, key: str, session: ClientSession | None = None) -> str | None:
        doc = self.db[ROOM_REQUESTS].find_one({"_id": key}, session=session)
        return str(doc["room_id"]) if doc else None

    def remember_request(self, key: str, room_id: str, session: ClientSession | None = None) -> None:
        self.db[ROOM_REQUESTS].insert_one({"_id": key, "room_id": room_id}, session=session)

    def room_for_session(self, session_id: str, session: ClientSession | None = None) -> str | None:
        doc = self.db[SESSION_ROOMS].find_one({"_id": session_id}, session=session)
        return str(doc["room_id"]) if doc else None

    def remember_session(self, session_id: str, room_id: str, session: ClientSession | None = None) -> None:
        self.db[SESSION_ROOMS].insert_one({"_id": session_id, "room_id": room_id}, session=session)

    def claim_session(self, session_id: str, room_id: str, session: ClientSession | None = None) -> None:
        """The session's own room takes the session over from any room a user made
        naming it first (anybody may name a session id in CreateRoom)."""
        self.db[SESSION_ROOMS].replace_one(
            {"_id": session_id}, {"_id": session_id, "room_id": room_id}, upsert=True, session=session
        )
