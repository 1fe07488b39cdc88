"""A MeshServer with probe RPCs for runtime tests, run as `python -m tests.support.slow_svc`:
GetDailyStats answers after SLOW_SECONDS (drain, deadlines); ListDailyStats raises a
plain exception (must become INTERNAL, never UNKNOWN); WatchStats sends one update,
then fails validation (INVALID_ARGUMENT with field violations mid-stream)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import grpc
from switchboard.activity.v1 import activity_service_pb2, activity_service_pb2_grpc

from mesh.config import MeshConfig
from mesh.errors import Violations
from mesh.server import MeshServer


class ProbeActivity(activity_service_pb2_grpc.ActivityServiceServicer):
    """Misbehaving on purpose, so the interceptor chain can be observed."""

    async def GetDailyStats(
        self, request: activity_service_pb2.GetDailyStatsRequest, context: grpc.aio.ServicerContext
    ) -> activity_service_pb2.GetDailyStatsResponse:
        await asyncio.sleep(float(os.environ.get("SLOW_SECONDS", "2")))
        return activity_service_pb2.GetDailyStatsResponse()

    async def ListDailyStats(
        self, request: activity_service_pb2.ListDailyStatsRequest, context: grpc.aio.ServicerContext
    ) -> activity_service_pb2.ListDailyStatsResponse:
        raise RuntimeError("a bug that must not leak as UNKNOWN")

    async def WatchStats(
        self, request: activity_service_pb2.WatchStatsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[activity_service_pb2.WatchStatsResponse]:
        yield activity_service_pb2.WatchStatsResponse()
        violations = Violations()
        violations.add("date", "must be YYYY-MM-DD")
        violations.raise_if_any()


def main() -> None:
    server = MeshServer(MeshConfig(service_name="probe"))
    server.use_store()
    server.add_service(
        "switchboard.activity.v1.ActivityService",
        ProbeActivity(),
        activity_service_pb2_grpc.add_ActivityServiceServicer_to_server,
    )
    server.run()


if __name__ == "__main__":
    main()
