"""activity_svc dies with work in progress: orders are placed through the gateway
while it consumes their events; once a backlog has built up (the consumer is
stalled for a moment so that it does, on any machine) it is killed (-9) while
deliveries sit unacked in its prefetch window, and it comes back. The unacked
events are delivered again and its inbox makes each count once: the day's
statistics equal the accepted orders exactly (none lost, none counted twice)."""

from __future__ import annotations

import contextlib
import datetime as dt
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
from tests.support.processes import RABBITMQ_URL

pytestmark = pytest.mark.chaos
ORDERS = 300
BACKLOG = 100  # events waiting before the stalled consumer resumes (prefetch: 32)
KILL_AFTER = 50  # orders counted before the kill


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
    with ThreadPoolExecutor(6) as clients:
        placing = [clients.submit(place, i) for i in range(ORDERS)]
        # A backlog, however fast the consumer is on this machine: it stalls (SIGSTOP)
        # until more events wait than its prefetch window holds, then works through them.
        activity.process.send_signal(signal.SIGSTOP)
        backlog = wait_until(lambda: activity_queue.ready() >= BACKLOG, 120, 0.05)
        activity.process.send_signal(signal.SIGCONT)
        # Mid-stream: some orders counted, and events still waiting in the queue, so
        # the consumer's prefetch window is full of unacked deliveries.
        mid_stream = wait_until(lambda: counted() >= KILL_AFTER and activity_queue.ready() > 0, 120, 0.02)
        counted_at_kill, ready_at_kill = counted(), activity_queue.ready()
        activity.kill()
        killed_at = time.monotonic()
        for placed in placing:
            placed.result()  # order placement never depended on activity_svc
    assert backlog, "the orders' events never queued up"
    assert mid_stream, "activity_svc never had a backlog to be killed in"
    assert 0 < counted_at_kill < ORDERS
    log_offset = activity.log_path.stat().st_size
    activity.start(timeout_s=40)
    restarted_at = time.monotonic()

    assert len(accepted) == ORDERS, tally.errors
    assert wait_until(lambda: counted() >= ORDERS, 120, 0.2), (counted(), ORDERS)
    recovery_s = time.monotonic() - killed_at
    time.sleep(1.0)  # a late duplicate would land now: the count must stay exactly N
    assert counted() == ORDERS
    duplicates_dropped = activity.log_path.read_text()[log_offset:].count("already processed")
    for name, value in {
        "requests": ORDERS + tally.retried,
        "accepted": len(accepted),
        "counted_at_kill": counted_at_kill,
        "waiting_in_queue_at_kill": ready_at_kill,
        "redeliveries_dropped_by_inbox": duplicates_dropped,
        "lost": ORDERS - counted(),
        "recovery_s": round(recovery_s, 2),
        "restart_s": round(restarted_at - killed_at, 2),
        "duration_s": round(time.monotonic() - began, 1),
    }.items():
        record_property(name, value)
    print(
        "activity-kill counted at kill",
        counted_at_kill,
        "ready",
        ready_at_kill,
        "duplicates dropped",
        duplicates_dropped,
        "recovery",
        round(recovery_s, 2),
    )
