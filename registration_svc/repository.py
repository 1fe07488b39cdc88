"""MongoDB documents of registration_svc's `jobs` collection ↔ model.Job. Times are
epoch-second floats (nx-27017 cannot compare BSON dates in queries)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from mesh.paging import keyset_query, keyset_sort
from mesh.store import Document
from registration_svc.model import Job, JobStatus, StatusChange

COLLECTION = "jobs"
CHANGES = "job_changes"  # every status change of our jobs, _id "<job id>:<sequence>" (WatchJob)


class JobRepository:
    """The users' jobs; `session` is the unit of work's session (None outside one)."""

    def __init__(self, db: Database[Document]) -> None:
        self.collection: Collection[Document] = db[COLLECTION]
        self.changes: Collection[Document] = db[CHANGES]

    def ensure_indexes(self) -> None:
        self.collection.create_index(
            [("owner_id", ASCENDING), ("idempotency_key", ASCENDING)], unique=True, name="owner_key"
        )
        # no "_id" in compound keys: nx-27017 then rejects every insert ("JSON path error near '_id'")
        self.collection.create_index(
            [("owner_id", ASCENDING), ("create_time", DESCENDING)], name="owner_newest"
        )
        self.changes.create_index([("job_id", ASCENDING), ("sequence", ASCENDING)], unique=True)

    def get(self, job_id: str, session: ClientSession | None = None) -> Job | None:
        document = self.collection.find_one({"_id": job_id}, session=session)
        return to_job(document) if document else None

    def by_key(self, owner_id: str, key: str, session: ClientSession | None = None) -> Job | None:
        document = self.collection.find_one({"owner_id": owner_id, "idempotency_key": key}, session=session)
        return to_job(document) if document else None

    def add(self, job: Job, session: ClientSession | None = None) -> None:
        self.collection.insert_one(to_document(job), session=session)

    def save(self, job: Job, session: ClientSession | None = None) -> None:
        self.collection.replace_one({"_id": job.id}, to_document(job), session=session)

    def add_many(self, jobs: list[Job], session: ClientSession | None = None) -> None:
        self.collection.insert_many([to_document(job) for job in jobs], session=session)

    def apply_change(
        self, job_id: str, change: StatusChange, now: float, session: ClientSession | None = None
    ) -> bool:
        """`apply_changes` for one job; False when nothing applied (stale, repeated,
        or not this service's job)."""
        return self.apply_changes({job_id: change}, now, session) > 0

    def apply_changes(
        self, changes: Mapping[str, StatusChange], now: float, session: ClientSession | None = None
    ) -> int:
        """Apply each job's status change unless it is stale (the job's sequence is
        not below the change's), as conditional updates in one bulk write without
        reading the jobs first. A non-terminal change has two, one per value of
        `cancel_requested` (it decides the status shown): at most one matches.
        Returns how many jobs changed."""
        updates = [update for job_id, change in changes.items() for update in _updates(job_id, change, now)]
        if not updates:
            return 0
        return self.collection.bulk_write(updates, session=session).matched_count

    def record_changes(
        self, changes: list[tuple[str, StatusChange]], now: float, session: ClientSession | None = None
    ) -> None:
        """Keep every status change of our jobs (not only the newest, which is all the
        read model applies), each once, so WatchJob can replay them in order."""
        rows = {f"{job_id}:{change.sequence}": (job_id, change) for job_id, change in changes}
        if not rows:
            return
        ours = {
            d["_id"]
            for d in self.collection.find(
                {"_id": {"$in": sorted({job_id for job_id, _ in rows.values()})}}, {"_id": 1}, session=session
            )
        }
        known = {
            d["_id"] for d in self.changes.find({"_id": {"$in": sorted(rows)}}, {"_id": 1}, session=session)
        }
        new = [
            {"_id": key, "job_id": job_id, "time": now, **_change_fields(change)}
            for key, (job_id, change) in rows.items()
            if job_id in ours and key not in known
        ]
        if new:
            self.changes.insert_many(new, session=session)

    def changes_after(self, job_id: str, after: int, upto: int) -> list[tuple[StatusChange, float]]:
        """The recorded changes `after` < sequence <= `upto` of a job, oldest first,
        with the time each was applied."""
        # `$eq`: nx-27017 serves only an explicit equality from the index (ADR 0002).
        query = {"job_id": {"$eq": job_id}, "sequence": {"$gt": after, "$lte": upto}}
        return [
            (_change_of(row), float(row["time"]))
            for row in self.changes.find(query).sort("sequence", ASCENDING)
        ]

    def list_for_owner(
        self,
        owner_id: str,
        status: JobStatus | None,
        limit: int,
        after: tuple[float, str] | None,
    ) -> list[Job]:
        """Newest first; `after` is the (create_time, id) of the previous page's last job."""
        query: dict[str, Any] = {"owner_id": owner_id}
        if status is not None:
            query["status"] = int(status)
        cursor = (
            self.collection.find(keyset_query(query, "create_time", after))
            .sort(keyset_sort("create_time"))
            .limit(limit)
        )
        return [to_job(document) for document in cursor]


def _updates(job_id: str, change: StatusChange, now: float) -> list[UpdateOne]:
    fields: dict[str, Any] = {
        "sequence": change.sequence,
        "progress": change.progress,
        "result": change.result,
        "error": change.error,
        "attempt": change.attempt,
        "update_time": now,
    }
    if change.max_attempts:
        fields["max_attempts"] = change.max_attempts
    query: dict[str, Any] = {"_id": job_id, "sequence": {"$lt": change.sequence}}
    if change.status.terminal:
        return [UpdateOne(query, {"$set": {**fields, "status": int(change.status)}})]
    return [
        UpdateOne(
            {**query, "cancel_requested": cancel_requested},
            {"$set": {**fields, "status": int(change.shown_status(cancel_requested))}},
        )
        for cancel_requested in (False, True)
    ]


def _change_fields(change: StatusChange) -> Document:
    return {
        "sequence": change.sequence,
        "status": int(change.status),
        "progress": change.progress,
        "result": change.result,
        "error": change.error,
        "attempt": change.attempt,
        "max_attempts": change.max_attempts,
    }


def _change_of(row: Document) -> StatusChange:
    return StatusChange(
        sequence=int(row["sequence"]),
        status=JobStatus(int(row["status"])),
        progress=float(row.get("progress", 0.0)),
        result=row.get("result"),
        error=row.get("error", ""),
        attempt=int(row.get("attempt", 0)),
        max_attempts=int(row.get("max_attempts", 0)),
    )


def to_document(job: Job) -> Document:
    return {
        "_id": job.id,
        "owner_id": job.owner_id,
        "definition": job.definition,
        "parameters": job.parameters,
        "idempotency_key": job.idempotency_key,
        "max_attempts": job.max_attempts,
        "create_time": job.create_time,
        "update_time": job.update_time,
        "run_at": job.run_at,
        "status": int(job.status),
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
        "attempt": job.attempt,
        "sequence": job.sequence,
        "cancel_requested": job.cancel_requested,
    }


def to_job(document: Document) -> Job:
    return Job(
        id=document["_id"],
        owner_id=document["owner_id"],
        definition=document["definition"],
        parameters=dict(document.get("parameters") or {}),
        idempotency_key=document["idempotency_key"],
        max_attempts=int(document.get("max_attempts", 1)),
        create_time=float(document["create_time"]),
        update_time=float(document["update_time"]),
        run_at=document.get("run_at"),
        status=JobStatus(int(document.get("status", JobStatus.REGISTERED))),
        progress=float(document.get("progress", 0.0)),
        result=document.get("result"),
        error=document.get("error", ""),
        attempt=int(document.get("attempt", 0)),
        sequence=int(document.get("sequence", 0)),
        cancel_requested=bool(document.get("cancel_requested", False)),
    )
