"""A MeshServer whose only RPC takes SLOW_SECONDS: lets tests watch the runtime
drain an in-flight call on SIGTERM. Run as `python -m tests.support.slow_svc`."""

from __future__ import annotations

import asyncio
import os

import grpc
from switchboard.activity.v1 import activity_service_pb2, activity_service_pb2_grpc

from mesh.config import MeshConfig
from mesh.server import MeshServer


class SlowActivity(activity_service_pb2_grpc.ActivityServiceServicer):
    """GetDailyStats answers after a delay; everything else is unimplemented."""

    async def GetDailyStats(
        self, request: activity_service_pb2.GetDailyStatsRequest, context: grpc.aio.ServicerContext
    ) -> activity_service_pb2.GetDailyStatsResponse:
        await asyncio.sleep(float(os.environ.get("SLOW_SECONDS", "2")))
        return activity_service_pb2.GetDailyStatsResponse()


def main() -> None:
    server = MeshServer(MeshConfig(service_name="slow"))
    server.use_store()
    server.add_service(
        "switchboard.activity.v1.ActivityService",
        SlowActivity(),
        activity_service_pb2_grpc.add_ActivityServiceServicer_to_server,
    )
    server.run()


if __name__ == "__main__":
    main()
