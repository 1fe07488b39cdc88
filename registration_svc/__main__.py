"""Start registration_svc: `python -m registration_svc`."""

from __future__ import annotations

from switchboard.registration.v1 import registration_service_pb2_grpc

from mesh import inbox, outbox
from mesh.jobs_catalogue import load_catalogue
from mesh.server import MeshServer
from registration_svc import handlers
from registration_svc.config import RegistrationConfig
from registration_svc.handlers import Registration
from registration_svc.service import RegistrationService
from registration_svc.submits import submit_batcher

SERVICE_NAME = "switchboard.registration.v1.RegistrationService"


def main() -> None:
    config = RegistrationConfig()
    catalogue = load_catalogue(config.job_catalogue_file)  # an invalid catalogue stops start-up
    server = MeshServer(config)
    store = server.use_store()
    server.use_broker()
    job_outbox = outbox.install(server)
    deps = Registration(store, job_outbox, catalogue)
    deps.jobs.ensure_indexes()
    job_outbox.ensure_indexes()  # the collection exists before the first transaction writes to it
    submits = submit_batcher(deps, config.submit_batch_max)
    server.add_worker(submits)
    inbox.consume(  # its dead letters and the outbox are served by EventAdminService
        server, "registration.job-status", [handlers.JOB_STATUS_CHANGED], handlers.apply_status_changed
    )
    server.add_service(
        SERVICE_NAME,
        RegistrationService(deps, config, submits),
        registration_service_pb2_grpc.add_RegistrationServiceServicer_to_server,
    )
    server.run()


if __name__ == "__main__":
    main()
