"""Gateway overhead: p50/p99 latency of one read RPC (ActivityService.GetDailyStats)
called directly over gRPC (the baseline), over gRPC through Envoy, and as REST
through Envoy (Debian's `wrk`), at 1 and 16 concurrent clients.

    .venv/bin/python bench/gateway.py [--seconds 5]

Starts what it needs (embedded MongoDB, activity_svc, Envoy on free ports; the
local RabbitMQ must be running), prints a table and writes .data/bench/gateway.json.
Every figure is also given as a ratio to the direct-gRPC baseline of the same run."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from switchboard.activity.v1 import activity_service_pb2, activity_service_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mesh.auth import ensure_keys, mint_token  # noqa: E402
from mesh.client import bearer  # noqa: E402
from mesh.gateway import EnvoyProcess, GatewaySettings, Upstream, render_to  # noqa: E402
from mesh.processes import free_port  # noqa: E402
from mesh.topology import service  # noqa: E402
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique  # noqa: E402

DATE = "2026-01-02"
CONCURRENCY = (1, 16)


def percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


async def grpc_latencies(target: str, token: str, clients: int, seconds: float) -> list[float]:
    """`clients` concurrent callers, each calling back to back for `seconds`."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = activity_service_pb2_grpc.ActivityServiceStub(channel)
        request = activity_service_pb2.GetDailyStatsRequest(date=DATE)
        metadata = bearer(token)
        await stub.GetDailyStats(request, metadata=metadata, timeout=5)  # warm the connection
        samples: list[float] = []
        stop_at = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                await stub.GetDailyStats(request, metadata=metadata, timeout=5)
                samples.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(client() for _ in range(clients)))
    return sorted(samples)


def wrk_latencies(url: str, token: str, clients: int, seconds: float) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, requests/s) from wrk's latency distribution."""
    argv = [
        shutil.which("wrk") or "wrk",
        f"-t{min(clients, 4)}",
        f"-c{clients}",
        f"-d{int(seconds)}s",
        "--latency",
        "-H",
        f"authorization: Bearer {token}",
        url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise SystemExit(f"wrk saw {non_2xx.group(1)} error responses:\n{out}")

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return ms("50"), ms("99"), float(rate.group(1)) if rate else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    keys = work / "keys"
    ensure_keys(keys / "jwt.key", keys / "jwt.pub")
    token = mint_token((keys / "jwt.key").read_bytes(), "bench", ["admin"])
    mongo = EmbeddedMongo(work / "mongo").start()
    tag = unique("bench")
    env = {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "MONGO_DB": tag,
        "EVENTS_EXCHANGE": f"{tag}.events",
        "QUEUE_PREFIX": f"{tag}.",
    }
    activity = ServiceProcess("activity_svc", env, work / "logs").start(timeout_s=60)
    listen, admin = free_port(), free_port()
    spec = service("activity")
    config = render_to(
        work / "envoy.yaml",
        keys,
        listen_port=listen,
        admin_port=admin,
        upstreams=[Upstream(spec.name, "127.0.0.1", activity.port, spec.grpc_services)],
        settings=GatewaySettings(rate_limit_rps=1_000_000, rate_limit_burst=1_000_000),
    )
    envoy = EnvoyProcess(config, work / "envoy.log", admin).start()
    rows = []
    try:
        for clients in CONCURRENCY:
            direct = asyncio.run(grpc_latencies(activity.target, token, clients, args.seconds))
            via = asyncio.run(grpc_latencies(f"127.0.0.1:{listen}", token, clients, args.seconds))
            rest_p50, rest_p99, rest_rps = wrk_latencies(
                f"http://127.0.0.1:{listen}/v1/stats/daily/{DATE}", token, clients, args.seconds
            )
            base50, base99 = percentile(direct, 0.5), percentile(direct, 0.99)
            for path, p50, p99, rps in (
                ("direct gRPC (baseline)", base50, base99, len(direct) / args.seconds),
                ("gRPC via Envoy", percentile(via, 0.5), percentile(via, 0.99), len(via) / args.seconds),
                ("REST via Envoy (wrk)", rest_p50, rest_p99, rest_rps),
            ):
                rows.append(
                    {
                        "clients": clients,
                        "path": path,
                        "p50_ms": round(p50, 3),
                        "p99_ms": round(p99, 3),
                        "rps": round(rps, 1),
                        "p50_ratio": round(p50 / base50, 2),
                        "p99_ratio": round(p99 / base99, 2),
                        "p50_added_ms": round(p50 - base50, 3),
                    }
                )
    finally:
        envoy.stop()
        activity.stop()
        mongo.stop()
    header = ("clients", "path", "p50 ms", "p99 ms", "req/s", "p50 x", "p99 x", "+p50 ms")
    print("{:>7}  {:<24}{:>9}{:>9}{:>10}{:>8}{:>8}{:>9}".format(*header))
    for r in rows:
        print(
            f"{r['clients']:>7}  {r['path']:<24}{r['p50_ms']:>9.3f}{r['p99_ms']:>9.3f}{r['rps']:>10.1f}"
            f"{r['p50_ratio']:>8.2f}{r['p99_ratio']:>8.2f}{r['p50_added_ms']:>9.3f}"
        )
    out = ROOT / ".data" / "bench" / "gateway.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"rpc": "ActivityService.GetDailyStats", "seconds": args.seconds, "rows": rows}, indent=1)
    )
    print(f"wrote {out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
