"""activity_svc dies with work in progress: orders are placed through the gateway
while it is stalled, so that a backlog builds up on any machine; it then works
through them in short slices and is killed (-9) mid-stream, while deliveries sit
unacked in its prefetch window, and it comes back. The unacked
events are delivered again and its inbox makes each count once: the day's
statistics equal the accepted orders exactly (none lost, none counted twice)."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest
from pika.exceptions import AMQPError
from switchboard.activity.v1 import activity_service_pb2 as apb
from switchboard.activity.v1 import activity_service_pb2_grpc as agrpc
from switchboard.order.v1 import order_service_pb2_grpc as ogrpc

from mesh.client import bearer
from mesh.processes import wait_until
from tests.chaos.conftest import Mesh, Tally, retrying
from tests.chaos.test_chaos_replica_kill import order_request
from tests.support.broker import messages_in
from tests.support.processes import RABBITMQ_URL

pytestmark = pytest.mark.chaos
ORDERS = 300
PREFETCH = 32  # the consumer's prefetch window (BUS_PREFETCH)
KILL_AFTER = 50  # events acked (so counted) before the kill
SLICE_S = 0.01  # how long the consumer runs between two looks


class QueueDepth:
    """Messages waiting (ready, not yet delivered) in one queue, from a passive
    declare: the broker's own count, not the management API's sampled one."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        self._channel = self._connection.channel()

    def ready(self) -> int:
        declared = self._channel.queue_declare(self.queue, passive=True)
        return int(declared.method.message_count)

    def close(self) -> None:
        with contextlib.suppress(AMQPError):
            self._connection.close()


@pytest.fixture
def activity_queue(mesh: Mesh) -> Iterator[QueueDepth]:
    depth = QueueDepth(f"{mesh.tag}.activity")
    yield depth
    depth.close()


def test_activity_killed_mid_batch_counts_every_order_exactly_once_after_restart(
    mesh: Mesh,
    activity_queue: QueueDepth,
    token: Callable[..., str],
    record_property: Callable[[str, object], None],
) -> None:
    alice = bearer(token("alice", "customer"))
    operator = bearer(token("ops", "operator"))
    orders = ogrpc.OrderServiceStub(mesh.channel())
    stats = agrpc.ActivityServiceStub(mesh.channel())
    today = apb.GetDailyStatsRequest(date=dt.datetime.now(dt.UTC).date().isoformat())
    tally = Tally()
    accepted: set[str] = set()

    def place(i: int) -> None:
        key = f"a-{i}-{uuid.uuid4().hex[:6]}"
        retrying(lambda: orders.PlaceOrder(order_request(key), metadata=alice, timeout=5), tally)
        with tally.lock:
            accepted.add(key)

    def counted() -> int:
        # Until Envoy's health check sees the restarted process: UNAVAILABLE, retried.
        answer = retrying(lambda: stats.GetDailyStats(today, metadata=operator, timeout=10), Tally())
        return int(answer.stats.orders_placed)  # type: ignore[attr-defined]

    activity = mesh.services["activity"]
    assert activity.process is not None
    began = time.monotonic()
    # A backlog, however fast the consumer is on this machine: it is stopped (SIGSTOP)
    # while every order is placed (placement never depends on activity_svc); its
    # prefetch window then holds PREFETCH unacked deliveries and the rest wait.
    activity.process.send_signal(signal.SIGSTOP)
    with ThreadPoolExecutor(6) as clients:
        for placed in [clients.submit(place, i) for i in range(ORDERS)]:
            placed.result()
    assert wait_until(lambda: activity_queue.ready() >= ORDERS - PREFETCH, 60, 0.05), activity_queue.ready()
    # Then it runs in short slices and is stopped while the test looks, until at least
    # KILL_AFTER events were acked (each ack follows its inbox commit, so they are
    # counted) while others still wait: killed there, it dies mid-stream, with a full
    # prefetch window unacked and possibly a batch's transaction open.
    mid_stream = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        activity.process.send_signal(signal.SIGCONT)
        time.sleep(SLICE_S)
        activity.process.send_signal(signal.SIGSTOP)
        ready_at_kill = activity_queue.ready()
        acked_at_kill = ORDERS - PREFETCH - ready_at_kill
        if acked_at_kill >= KILL_AFTER:
            mid_stream = ready_at_kill > 0
            break
    activity.kill()
    killed_at = time.monotonic()
    assert mid_stream, f"activity_svc was not stopped mid-stream (ready {ready_at_kill})"
    log_offset = activity.log_path.stat().st_size
    activity.start(timeout_s=40)
    restarted_at = time.monotonic()

    assert len(accepted) == ORDERS, tally.errors
    assert wait_until(lambda: counted() >= ORDERS, 120, 0.2), (counted(), ORDERS)
    recovery_s = time.monotonic() - killed_at
    # Nothing left anywhere (queue, retry queues, parked): no late duplicate can still land.
    queues = f"^{re.escape(activity_queue.queue)}"  # and its .retry.* and .dead queues
    assert wait_until(lambda: messages_in(queues) == 0, 30, 0.5), messages_in(queues)
    assert counted() == ORDERS
    duplicates_dropped = activity.log_path.read_text()[log_offset:].count("already processed")
    for name, value in {
        "requests": ORDERS + tally.retried,
        "accepted": len(accepted),
        "acked_at_kill": acked_at_kill,
        "waiting_in_queue_at_kill": ready_at_kill,
        "redeliveries_dropped_by_inbox": duplicates_dropped,
        "lost": ORDERS - counted(),
        "recovery_s": round(recovery_s, 2),
        "restart_s": round(restarted_at - killed_at, 2),
        "duration_s": round(time.monotonic() - began, 1),
    }.items():
        record_property(name, value)
    print(
        "activity-kill acked at kill",
        acked_at_kill,
        "ready",
        ready_at_kill,
        "duplicates dropped",
        duplicates_dropped,
        "recovery",
        round(recovery_s, 2),
    )
