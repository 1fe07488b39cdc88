"""Start session_svc: `python -m session_svc`."""

from __future__ import annotations

import faulthandler
import signal

from switchboard.session.v1 import session_service_pb2_grpc

import mesh.outbox
from mesh.server import MeshServer
from mesh.timers import DurableTimers, Firing
from session_svc import handlers, repository
from session_svc.config import SessionConfig
from session_svc.notify import ChangeNotifier
from session_svc.service import SessionService
from session_svc.starts import start_batcher
from session_svc.timers import CALLBACK_REF, NAMESPACE

SERVICE_NAME = "switchboard.session.v1.SessionService"


def main() -> None:
    # `kill -USR1 <pid>` dumps every thread's stack to the log (diagnosing stuck timers).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    config = SessionConfig()
    server = MeshServer(config)
    store = server.use_store()
    server.use_broker()
    outbox = mesh.outbox.install(server)
    deps_holder: list[handlers.Deps] = []

    def on_timer(key: str, payload: dict[str, object]) -> None:
        handlers.on_timer(key, payload, deps_holder[0])

    def on_timers(firings: list[Firing]) -> list[str]:
        return handlers.on_timers(firings, deps_holder[0])

    timers = DurableTimers(config, NAMESPACE, CALLBACK_REF, on_timer, batch_handler=on_timers)
    deps = handlers.Deps(config, store, outbox, timers, ChangeNotifier())
    deps_holder.append(deps)
    repository.ensure_indexes(store.db[repository.COLLECTION])
    outbox.ensure_indexes()
    server.add_worker(timers)
    server.add_dependency("timers", timers.ready)
    starts = start_batcher(deps, config.session_start_batch_max)
    server.add_worker(starts)
    server.add_service(
        SERVICE_NAME,
        SessionService(deps, starts),
        session_service_pb2_grpc.add_SessionServiceServicer_to_server,
    )
    server.run()


if __name__ == "__main__":
    main()
