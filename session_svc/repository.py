"""MongoDB documents ↔ `Session`. Times are epoch-second floats (the embedded
nx-27017 cannot compare BSON dates, and we sort and page on create_time).

Every version of a session is also kept in `session_versions`, written in the same
transaction as the session itself, so WatchSession can deliver each change in order
(from any resume point) however quickly the changes follow each other."""

from __future__ import annotations

import dataclasses
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection

from mesh.paging import keyset_query, keyset_sort
from mesh.store import Document
from session_svc.model import Change, Session, State

COLLECTION = "sessions"
VERSIONS = "session_versions"  # _id "<session id>:<version>"; one row per version


def ensure_indexes(collection: Collection[Document]) -> None:
    collection.create_index([("customer_id", ASCENDING), ("start_request_id", ASCENDING)], unique=True)
    # Not (create_time, _id): nx-27017 rejects every insert once `_id` is in a compound index.
    collection.create_index([("create_time", DESCENDING)])
    collection.create_index([("customer_id", ASCENDING), ("create_time", DESCENDING)])
    collection.create_index([("advisor_id", ASCENDING), ("create_time", DESCENDING)])
    collection.create_index([("room_id", ASCENDING)])
    versions = collection.database[VERSIONS]
    versions.create_index([("session_id", ASCENDING), ("version", ASCENDING)], unique=True)


def to_document(session: Session) -> Document:
    fields = dataclasses.asdict(session)
    document: Document = {"_id": fields.pop("id"), **fields}  # nx-27017 wants _id first
    document["state"] = session.state.value
    document["last_change"] = session.last_change.value
    document["recharge_request_ids"] = list(session.recharge_request_ids)
    return document


def from_document(document: Document) -> Session:
    fields: dict[str, Any] = {k: v for k, v in document.items() if k != "_id"}
    fields["state"] = State(fields["state"])
    fields["last_change"] = Change(fields["last_change"])
    fields["recharge_request_ids"] = tuple(fields.get("recharge_request_ids", ()))
    known = {f.name for f in dataclasses.fields(Session)}
    return Session(id=str(document["_id"]), **{k: v for k, v in fields.items() if k in known})


class SessionRepository:
    """The `sessions` collection; `session=` is the unit of work's session when inside one."""

    def __init__(self, collection: Collection[Document]) -> None:
        self.collection = collection
        self.versions: Collection[Document] = collection.database[VERSIONS]

    def get(self, session_id: str, session: ClientSession | None = None) -> Session | None:
        document = self.collection.find_one({"_id": session_id}, session=session)
        return None if document is None else from_document(document)

    def get_many(self, session_ids: list[str], session: ClientSession | None = None) -> dict[str, Session]:
        documents = self.collection.find({"_id": {"$in": session_ids}}, session=session)
        return {str(document["_id"]): from_document(document) for document in documents}

    def by_start_request(self, customer_id: str, request_id: str) -> Session | None:
        document = self.collection.find_one({"customer_id": customer_id, "start_request_id": request_id})
        return None if document is None else from_document(document)

    def open_in_room(self, room_id: str, customer_id: str, request_id: str) -> bool:
        """Whether a session that has not ended or expired posts to `room_id`, other
        than the one started by (customer_id, request_id) (a retried start)."""
        query = {"room_id": {"$eq": room_id}, "state": {"$nin": [State.ENDED.value, State.EXPIRED.value]}}
        rows = self.collection.find(query, projection={"customer_id": 1, "start_request_id": 1})
        return any((row["customer_id"], row["start_request_id"]) != (customer_id, request_id) for row in rows)

    def add(self, new: Session, session: ClientSession) -> None:
        self.collection.insert_one(to_document(new), session=session)
        self._record([new], session)

    def add_many(self, new: list[Session], session: ClientSession) -> None:
        self.collection.insert_many([to_document(s) for s in new], session=session)
        self._record(new, session)

    def versions_after(self, session_id: str, after: int, upto: int) -> list[Session]:
        """The stored versions `after` < version <= `upto` of a session, oldest first."""
        # `$eq`: nx-27017 serves only an explicit equality from the index (ADR 0002).
        query = {"session_id": {"$eq": session_id}, "version": {"$gt": after, "$lte": upto}}
        rows = self.versions.find(query).sort("version", ASCENDING)
        return [from_document(row["session"]) for row in rows]

    def _record(self, sessions: list[Session], session: ClientSession) -> None:
        """Keep each new version (same transaction as the write of the session)."""
        rows = [
            {
                "_id": f"{s.id}:{s.version}",
                "session_id": s.id,
                "version": s.version,
                "session": to_document(s),
            }
            for s in sessions
        ]
        if rows:
            self.versions.insert_many(rows, session=session)

    def replace_if_version(self, new: Session, expected_version: int, session: ClientSession) -> bool:
        """Compare-and-set: write `new` only if the stored version is still `expected_version`."""
        document = to_document(new)
        document.pop("_id")
        found = self.collection.find_one_and_update(
            {"_id": new.id, "version": expected_version},
            {"$set": document},
            projection={"_id": 1},
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        if found is None:
            return False
        self._record([new], session)
        return True

    def replace_many_if_version(self, changes: list[tuple[Session, int]], session: ClientSession) -> bool:
        """Compare-and-set of several sessions in one write: `(new, expected_version)`
        each; False when any of them lost (the caller's transaction must then abort)."""
        updates = []
        for new, expected_version in changes:
            document = to_document(new)
            document.pop("_id")
            updates.append(UpdateOne({"_id": new.id, "version": expected_version}, {"$set": document}))
        result = self.collection.bulk_write(updates, session=session)
        if result.matched_count != len(changes):
            return False
        self._record([new for new, _ in changes], session)
        return True

    def page(self, filters: Document, after: tuple[float, str] | None, limit: int) -> list[Session]:
        """Newest first; `after` is the (create_time, id) of the previous page's last row."""
        query = keyset_query(filters, "create_time", after)
        cursor = self.collection.find(query).sort(keyset_sort("create_time"))
        return [from_document(d) for d in cursor.limit(limit)]
