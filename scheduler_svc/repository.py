"""MongoDB documents of scheduler_svc ↔ model.SchedulerJob, plus the workers'
heartbeats (a separate collection, so a heartbeat never conflicts with a job's
transaction). Times are epoch-second floats (nx-27017 cannot compare BSON dates)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.client_session import ClientSession
from pymongo.collection import Collection
from pymongo.database import Database

from mesh.paging import keyset_query, keyset_sort
from mesh.store import Document, UnitOfWork
from scheduler_svc.model import Attempt, JobStatus, SchedulerJob

JOBS = "jobs"
HEARTBEATS = "heartbeats"


class JobRepository:
    """The scheduler's jobs; `session` is the unit of work's session (None outside one)."""

    def __init__(self, db: Database[Document]) -> None:
        self.collection: Collection[Document] = db[JOBS]
        self.heartbeats: Collection[Document] = db[HEARTBEATS]

    def ensure_indexes(self) -> None:
        self.collection.create_index([("dispatch_at", ASCENDING)], name="due")
        # no "_id" in compound keys: nx-27017 then rejects every insert ("JSON path error near '_id'")
        self.collection.create_index([("create_time", DESCENDING)], name="newest")
        self.collection.create_index(
            [("status", ASCENDING), ("create_time", DESCENDING)], name="status_newest"
        )

    def get(self, job_id: str, session: ClientSession | None = None) -> SchedulerJob | None:
        document = self.collection.find_one({"_id": job_id}, session=session)
        return to_job(document) if document else None

    def add(self, job: SchedulerJob, session: ClientSession | None = None) -> None:
        self.collection.insert_one(to_document(job), session=session)

    def add_many(self, jobs: list[SchedulerJob], session: ClientSession | None = None) -> None:
        if jobs:
            self.collection.insert_many([to_document(job) for job in jobs], session=session)

    def save(self, job: SchedulerJob, session: ClientSession | None = None) -> None:
        self.collection.replace_one({"_id": job.id}, to_document(job), session=session)

    def replace_if_sequence(self, job: SchedulerJob, seen: int, uow: UnitOfWork | None = None) -> bool:
        """Save the job unless another change moved its sequence from `seen` (one
        single-document write: atomic on its own, or part of `uow`'s transaction)."""
        session = uow.session if uow is not None else None
        result = self.collection.replace_one(
            {"_id": job.id, "sequence": seen}, to_document(job), session=session
        )
        return result.matched_count == 1

    def overdue(self, cutoff: float, limit: int) -> list[SchedulerJob]:
        """QUEUED jobs whose work item was due by `cutoff` and is still not confirmed."""
        query = {"dispatch_at": {"$ne": None, "$lte": cutoff}, "status": int(JobStatus.QUEUED)}
        cursor = self.collection.find(query).sort("dispatch_at", ASCENDING).limit(limit)
        return [to_job(document) for document in cursor]

    def mark_dispatched(self, jobs: list[tuple[str, int]]) -> None:
        """Clear `dispatch_at` of each (job id, sequence) unless the job changed since
        its work item was published (one write for all)."""
        if jobs:
            self.collection.bulk_write(
                [
                    UpdateOne({"_id": job_id, "sequence": sequence}, {"$set": {"dispatch_at": None}})
                    for job_id, sequence in jobs
                ],
                ordered=False,
            )

    def cancel_requested(self, job_id: str) -> bool:
        document = self.collection.find_one({"_id": job_id}, {"cancel_requested": 1})
        return bool(document and document.get("cancel_requested"))

    def list(
        self, filters: dict[str, Any], limit: int, after: tuple[float, str] | None
    ) -> list[SchedulerJob]:
        """Newest first; `after` is the (create_time, id) of the previous page's last job."""
        cursor = (
            self.collection.find(keyset_query(filters, "create_time", after))
            .sort(keyset_sort("create_time"))
            .limit(limit)
        )
        return [to_job(document) for document in cursor]

    # heartbeats ---------------------------------------------------------------

    def beat(self, job_id: str, attempt: int, worker_id: str, now: float) -> None:
        self.heartbeats.replace_one(
            {"_id": job_id},
            {"_id": job_id, "attempt": attempt, "worker_id": worker_id, "at": now},
            upsert=True,
        )

    def last_beat(self, job_id: str) -> Document | None:
        return self.heartbeats.find_one({"_id": job_id})


def to_document(job: SchedulerJob) -> Document:
    document = dataclasses.asdict(job)
    document["_id"] = document.pop("id")
    document["status"] = int(job.status)
    return document


def to_job(document: Document) -> SchedulerJob:
    values = {k: v for k, v in document.items() if k in _FIELDS}
    values["id"] = document["_id"]
    values["status"] = JobStatus(int(document["status"]))
    values["attempts"] = [Attempt(**a) for a in document.get("attempts", [])]
    values["parameters"] = dict(document.get("parameters") or {})
    return SchedulerJob(**values)


_FIELDS = {f.name for f in dataclasses.fields(SchedulerJob)}
