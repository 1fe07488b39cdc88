"""Benchmark of order placement and the order→statistics path.

Measures, in one run against real processes (embedded MongoDB, local RabbitMQ,
order_svc and activity_svc):

- baselines: the raw MongoDB two-document transaction rate (an order and its
  outbox row, pymongo, no gRPC) and the raw gRPC echo rate (grpc.health.v1
  Check on order_svc: the same server, no handler work);
- PlaceOrder throughput and p50/p99 latency at 1, 16 and 64 concurrent clients,
  direct gRPC and as REST through Envoy (`POST /v1/orders` with a bearer JWT,
  transcoded by the gateway rendered from gateway/envoy.yaml.j2 with its rate
  limit raised out of the way), each rate also as a ratio to the transaction
  baseline;
- order→statistics lag (PlaceOrder returned → GetDailyStats counts it) p50/p99
  while placing at half of the maximum direct PlaceOrder rate.

Clients are threads of this process (one gRPC channel; one keep-alive HTTP/1.1
connection per REST client), so both paths pay the same client-side costs.

    .venv/bin/python bench/orders.py [--seconds 5]

Writes .data/bench/orders.json. Targets (issue 4): at 16 clients at least 70 %
of the raw transaction rate; lag p99 under 1 s at half of the maximum rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from switchboard.activity.v1 import activity_service_pb2 as apb  # noqa: E402
from switchboard.activity.v1 import activity_service_pb2_grpc  # noqa: E402
from switchboard.order.v1 import order_service_pb2 as opb  # noqa: E402
from switchboard.order.v1 import order_service_pb2_grpc  # noqa: E402
from switchboard.type.v1.money_pb2 import Money  # noqa: E402

from mesh.auth import ensure_keys, mint_token  # noqa: E402
from mesh.client import bearer  # noqa: E402
from mesh.gateway import EnvoyProcess, GatewaySettings, local_upstreams  # noqa: E402
from tests.e2e.gateway_harness import start_envoy  # noqa: E402
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique  # noqa: E402

CLIENT_LEVELS = (1, 16, 64)
# The gateway's per-route token bucket (default 100/s) would measure itself, not
# the path: the bench's gateway gets one far above any rate reached here.
BENCH_GATEWAY = GatewaySettings(rate_limit_rps=1_000_000, rate_limit_burst=1_000_000, dev_tokens=False)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def closed_loop(call: Callable[[], None], clients: int, seconds: float) -> dict[str, float]:
    """`clients` threads each calling `call` back to back for `seconds`."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        nonlocal errors
        mine: list[float] = []
        failed = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                call()
            except Exception:
                failed += 1
                continue
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            errors += failed

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)
    elapsed = time.monotonic() - started
    return {
        "clients": clients,
        "calls": len(latencies),
        "errors": errors,
        "rate_per_s": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def raw_transaction_call(mongo_url: str) -> Callable[[], None]:
    """One MongoDB transaction writing two documents, as PlaceOrder does."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
    db = client[unique("bench_raw")]

    def call() -> None:
        with client.start_session() as session, session.start_transaction():
            order_id = uuid.uuid4().hex
            db.orders.insert_one({"_id": order_id, "customer_id": "c", "total_minor": 1}, session=session)
            db.outbox.insert_one({"_id": uuid.uuid4().hex, "subject": order_id}, session=session)

    return call


def rest_place_call(gateway_port: int, token: str) -> Callable[[], None]:
    """PlaceOrder as REST through Envoy, one keep-alive connection per client thread."""
    local = threading.local()
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    lines = [{"sku": "BENCH-1", "quantity": 2, "unitPrice": {"currencyCode": "EUR", "amountMinor": "995"}}]

    def call() -> None:
        connection: http.client.HTTPConnection | None = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=10)
        body = json.dumps({"lines": lines, "idempotencyKey": uuid.uuid4().hex})
        try:
            connection.request("POST", "/v1/orders", body, headers)
            answer = connection.getresponse()
            data = answer.read()
        except (http.client.HTTPException, OSError):
            connection.close()
            local.connection = None
            raise
        if answer.status != 200:
            raise RuntimeError(f"POST /v1/orders: HTTP {answer.status} {data[:200]!r}")

    return call


def start_gateway(work: Path, keys: Path, orders: ServiceProcess) -> tuple[EnvoyProcess, int]:
    """Envoy (the gateway template) in front of the bench's order_svc only."""
    upstreams = [u for u in local_upstreams({"order": orders.port}) if u.name == "order"]
    (work / "envoy").mkdir(parents=True, exist_ok=True)
    listen, envoy = start_envoy(work / "envoy", keys, upstreams, BENCH_GATEWAY)
    return envoy, listen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-orders-"))
    keys = work / "keys"
    ensure_keys(keys / "jwt.key", keys / "jwt.pub")
    private = (keys / "jwt.key").read_bytes()
    mongo = EmbeddedMongo(work / "mongo").start()
    tag = unique("bench")
    env = {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
        "MONGO_DB": tag,
        "EVENTS_EXCHANGE": f"{tag}.events",
        "QUEUE_PREFIX": f"{tag}.",
        "LOG_LEVEL": "WARNING",
    }
    activity = ServiceProcess("activity_svc", {**env, "MONGO_DB": f"{tag}_activity"}, work / "logs").start()
    orders = ServiceProcess("order_svc", env, work / "logs").start()
    results: dict[str, Any] = {"seconds_per_measurement": args.seconds}
    envoy: EnvoyProcess | None = None
    try:
        envoy, gateway_port = start_gateway(work, keys, orders)
        results.update(run(orders, activity, mongo, gateway_port, private, args.seconds))
    finally:
        if envoy is not None:
            envoy.stop()
        orders.stop()
        activity.stop()
        mongo.stop()
    out = ROOT / ".data" / "bench" / "orders.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {out}")


def run(
    orders: ServiceProcess,
    activity: ServiceProcess,
    mongo: EmbeddedMongo,
    gateway_port: int,
    private: bytes,
    seconds: float,
) -> dict[str, Any]:
    customer_token = mint_token(private, "bench-customer", ["customer"])
    customer = bearer(customer_token)
    operator = bearer(mint_token(private, "bench-ops", ["operator"]))
    channel = grpc.insecure_channel(orders.target)
    order_stub = order_service_pb2_grpc.OrderServiceStub(channel)
    health_stub = health_pb2_grpc.HealthStub(channel)
    line = opb.LineItem(sku="BENCH-1", quantity=2, unit_price=Money(currency_code="EUR", amount_minor=995))

    def place() -> None:
        request = opb.PlaceOrderRequest(lines=[line], idempotency_key=uuid.uuid4().hex)
        order_stub.PlaceOrder(request, metadata=customer, timeout=10)

    def echo() -> None:
        health_stub.Check(health_pb2.HealthCheckRequest(), timeout=10)

    place_rest = rest_place_call(gateway_port, customer_token)
    place()  # warm-up: connections, indexes, JIT-free but cache-warm
    place_rest()
    raw_tx = closed_loop(raw_transaction_call(mongo.url), 16, seconds)
    raw_echo = closed_loop(echo, 16, seconds)
    levels = [closed_loop(place, clients, seconds) for clients in CLIENT_LEVELS]
    rest_levels = [closed_loop(place_rest, clients, seconds) for clients in CLIENT_LEVELS]
    for level in levels + rest_levels:
        level["ratio_to_raw_tx"] = level["rate_per_s"] / raw_tx["rate_per_s"]
        level["ratio_to_raw_echo"] = level["rate_per_s"] / raw_echo["rate_per_s"]
    max_rate = max(level["rate_per_s"] for level in levels)
    lag = measure_lag(place, activity, operator, max_rate / 2, seconds)

    header = f"{'measurement':34} {'clients':>7} {'rate/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs raw tx':>9}"
    print(f"{header} {'errors':>6}")
    for name, row in [("raw MongoDB 2-doc transaction", raw_tx), ("raw gRPC echo (health Check)", raw_echo)]:
        print(
            f"{name:34} {row['clients']:>7} {row['rate_per_s']:>9.1f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {'':>9} {row['errors']:>6}"
        )
    paths = [("PlaceOrder (direct gRPC)", levels), ("PlaceOrder (REST through Envoy)", rest_levels)]
    for name, rows in paths:
        for row in rows:
            print(
                f"{name:34} {row['clients']:>7} {row['rate_per_s']:>9.1f} {row['p50_ms']:>8.2f} "
                f"{row['p99_ms']:>8.2f} {row['ratio_to_raw_tx']:>9.2f} {row['errors']:>6}"
            )
    print(
        f"order→stats lag at {lag['rate_per_s']:.1f}/s (half of max): p50 {lag['p50_ms']:.0f} ms, "
        f"p99 {lag['p99_ms']:.0f} ms, max {lag['max_ms']:.0f} ms over {lag['orders']} orders"
    )
    at_16 = next(level for level in levels if level["clients"] == 16)
    return {
        "raw_transaction": raw_tx,
        "raw_grpc_echo": raw_echo,
        "place_order_grpc": levels,
        "place_order_rest": rest_levels,
        "lag": lag,
        "targets": {
            "ratio_16_clients_to_raw_tx": at_16["ratio_to_raw_tx"],
            "ratio_target": 0.7,
            "lag_p99_ms": lag["p99_ms"],
            "lag_target_ms": 1000,
        },
    }


def measure_lag(
    place: Callable[[], None],
    activity: ServiceProcess,
    operator: tuple[tuple[str, str], ...],
    rate: float,
    seconds: float,
) -> dict[str, float]:
    """Place orders at `rate` while a poller reads today's count every 10 ms; the
    lag of order k is when the count first reached k minus when PlaceOrder k returned."""
    channel = grpc.insecure_channel(activity.target)
    stats = activity_service_pb2_grpc.ActivityServiceStub(channel)

    def count() -> int:
        request = apb.GetDailyStatsRequest(date=dt.datetime.now(dt.UTC).date().isoformat())
        return stats.GetDailyStats(request, metadata=operator, timeout=10).stats.orders_placed

    # the closed-loop phases left a backlog of events: measure from a quiet start
    base, quiet_since, give_up = count(), time.monotonic(), time.monotonic() + 120
    while time.monotonic() - quiet_since < 1.5 and time.monotonic() < give_up:
        time.sleep(0.25)
        current = count()
        if current != base:
            base, quiet_since = current, time.monotonic()
    returned: list[float] = []
    seen_at: dict[int, float] = {}
    done = threading.Event()

    def poll() -> None:
        last = base
        while not done.is_set() or last < base + len(returned):
            current = count()
            now = time.monotonic()
            for k in range(last + 1, current + 1):
                seen_at[k - base] = now
            last = current
            time.sleep(0.01)
            if done.is_set() and now - returned[-1] > 10:
                break

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    interval = 1 / max(rate, 1.0)
    next_at = time.monotonic()
    deadline = next_at + seconds
    with ThreadPoolExecutor(64) as pool:
        lock = threading.Lock()

        def one() -> None:
            place()
            with lock:
                returned.append(time.monotonic())

        while next_at < deadline:
            pool.submit(one)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    done.set()
    poller.join(30)
    # the k-th count increase belongs to the k-th order to return (both ordered in time)
    lags = [seen_at[k + 1] - t for k, t in enumerate(sorted(returned)) if k + 1 in seen_at]
    return {
        "rate_per_s": len(returned) / seconds,
        "orders": len(returned),
        "counted": len(lags),
        "p50_ms": percentile(lags, 0.5) * 1000,
        "p99_ms": percentile(lags, 0.99) * 1000,
        "max_ms": max(lags, default=float("nan")) * 1000,
    }


if __name__ == "__main__":
    main()
