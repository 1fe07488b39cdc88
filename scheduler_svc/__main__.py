"""Start scheduler_svc: `python -m scheduler_svc`."""

from __future__ import annotations

from switchboard.scheduler.v1 import scheduler_service_pb2_grpc

from mesh import inbox, outbox
from mesh.admin import attach_consumer
from mesh.jobs_catalogue import load_catalogue
from mesh.server import MeshServer
from mesh.timers import DurableTimers
from scheduler_svc import handlers
from scheduler_svc.config import SchedulerConfig
from scheduler_svc.dispatcher import Dispatcher
from scheduler_svc.handlers import Scheduling
from scheduler_svc.jobs import KINDS
from scheduler_svc.service import SchedulerAdminService
from scheduler_svc.timers import CALLBACK_REF, NAMESPACE
from scheduler_svc.worker import WorkerPool

SERVICE_NAME = "switchboard.scheduler.v1.SchedulerAdminService"


def main() -> None:
    config = SchedulerConfig()
    catalogue = load_catalogue(config.job_catalogue_file)  # an invalid catalogue stops start-up
    catalogue.require_kinds(set(KINDS))
    server = MeshServer(config)
    store = server.use_store()
    server.use_broker()
    job_outbox = outbox.install(server)

    def on_timer(key: str, payload: dict[str, object]) -> None:
        handlers.on_timer(key, deps)

    timers = DurableTimers(config, NAMESPACE, CALLBACK_REF, on_timer)
    deps = Scheduling(store, job_outbox, catalogue, timers)
    deps.jobs.ensure_indexes()
    dispatcher = Dispatcher(deps, config)
    deps.dispatch = dispatcher.enqueue
    server.add_worker(timers)
    server.add_dependency("timers", timers.ready)
    server.add_worker(dispatcher)
    server.add_dependency("work-queue", dispatcher.healthy)
    # the consumers' dead letters and the outbox are served by EventAdminService
    inbox.consume(
        server, "scheduler.job-registered", [handlers.JOB_REGISTERED], handlers.on_job_registered(deps)
    )
    inbox.consume(
        server,
        "scheduler.job-cancel",
        [handlers.JOB_CANCEL_REQUESTED],
        handlers.on_job_cancel_requested(deps),
    )
    # the work queue (consumed here or by separate workers) parks failed work items too
    attach_consumer(server, f"{config.queue_prefix}{config.work_queue}")
    if config.worker_threads:
        server.add_worker(WorkerPool(deps, config, config.worker_threads))
    server.add_service(
        SERVICE_NAME,
        SchedulerAdminService(deps, config),
        scheduler_service_pb2_grpc.add_SchedulerAdminServiceServicer_to_server,
    )
    server.run()


if __name__ == "__main__":
    main()
