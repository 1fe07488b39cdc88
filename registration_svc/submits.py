"""Group commit of SubmitJob: the submissions that arrive while a transaction is
being written share the next one (one insert of jobs, one of outbox rows, one
commit), so the submit rate is not capped at one transaction per job.

A batch that fails as a whole (a repeated idempotency key colliding on the unique
index, a transient error) is stored again one by one through
`handlers.insert_job`, which answers a repeat with the job stored before
(mesh.batching.GroupCommit)."""

from __future__ import annotations

from mesh.batching import GroupCommit
from registration_svc.handlers import Registration, insert_job, insert_jobs
from registration_svc.model import Job


def submit_batcher(deps: Registration, max_batch: int) -> GroupCommit[Job, Job]:
    """A Worker: `call(job)` stores a job built by `handlers.new_job` and returns it,
    or the job stored before under the same owner and idempotency key."""
    return GroupCommit(
        "job-submits",
        write_batch=lambda jobs: insert_jobs(jobs, deps),
        write_one=lambda job: insert_job(job, deps),
        max_batch=max_batch,
    )
