"""Start activity_svc: `python -m activity_svc`."""

from __future__ import annotations

from switchboard.activity.v1 import activity_service_pb2_grpc

from activity_svc.config import ActivityConfig
from activity_svc.handlers import StatsQueries, StatsRecorder
from activity_svc.notifier import ChangeNotifier
from activity_svc.repository import StatsRepository
from activity_svc.service import ActivityService
from mesh import inbox
from mesh.server import MeshServer

SERVICE_NAME = "switchboard.activity.v1.ActivityService"


def main() -> None:
    config = ActivityConfig()
    server = MeshServer(config)
    store = server.use_store()
    StatsRepository(store.db).ensure_indexes()
    notifier = ChangeNotifier()
    recorder = StatsRecorder(notifier, config.stats_bucket_s)
    # required: health follows the consumer's own connection (statistics go stale
    # without it, so a load balancer should prefer a replica that has one)
    inbox.consume(server, config.consumer_name, config.consumer_patterns, recorder, required=True)
    servicer = ActivityService(StatsQueries(store), notifier, config)
    register = activity_service_pb2_grpc.add_ActivityServiceServicer_to_server
    server.add_service(SERVICE_NAME, servicer, register)
    server.run()


if __name__ == "__main__":
    main()
