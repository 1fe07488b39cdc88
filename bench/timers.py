"""Benchmark of session pause timers: N sessions with deadlines spread over a window,
two session_svc replicas → lateness (pause applied minus deadline) p50/p99/max,
missed, duplicated; then the same with the lease holder killed (-9) mid-run.

Baseline, measured in the same run and on the same machine load: a plain
in-process APScheduler 3 (MemoryJobStore, no lease, no store, no effect) firing
no-op jobs at the same deadlines. Figures are also given as ratios to it.

    .venv/bin/python bench/timers.py [--sessions 10000] [--spread 60]

Writes .data/bench/timers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

import grpc  # noqa: E402
from apscheduler.schedulers.background import BackgroundScheduler  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from switchboard.session.v1 import session_service_pb2 as pb  # noqa: E402
from switchboard.session.v1 import session_service_pb2_grpc  # noqa: E402

from mesh.auth import ensure_keys, mint_token  # noqa: E402
from mesh.client import bearer  # noqa: E402
from mesh.processes import wait_until  # noqa: E402
from tests.support.broker import delete_matching  # noqa: E402
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique  # noqa: E402

LEASE_TTL_S = 5.0
PREPAID_S = 10


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Baseline:
    """In-process APScheduler with a memory job store: the floor of timer lateness."""

    def __init__(self) -> None:
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"misfire_grace_time": None})
        self.lateness: list[float] = []
        self.deadlines: list[float] = []
        self._lock = threading.Lock()

    def fired(self, deadline: float) -> None:
        late = time.time() - deadline
        with self._lock:
            self.lateness.append(late)

    def schedule(self, deadline: float) -> None:
        self.deadlines.append(deadline)
        self.scheduler.add_job(
            self.fired, "date", run_date=datetime.fromtimestamp(deadline, UTC), args=(deadline,)
        )


def run_scenario(
    name: str, sessions: int, spread_s: float, env: dict[str, str], token: str, log_dir: Path, kill: bool
) -> dict[str, Any]:
    tag = unique("bench")
    isolated = {**env, "MONGO_DB": tag, "EVENTS_EXCHANGE": f"{tag}.events"}
    replicas = [ServiceProcess("session_svc", isolated, log_dir).start() for _ in range(2)]
    db: Any = MongoClient(env["MONGO_URL"])[isolated["MONGO_DB"]]
    baseline = Baseline()
    baseline.scheduler.start()
    try:
        stubs = [
            session_service_pb2_grpc.SessionServiceStub(grpc.insecure_channel(r.target)) for r in replicas
        ]
        # Sessions start at an even pace over the window, all with the same prepaid
        # time, so deadlines are spread evenly and firing overlaps with new starts.
        start = time.time() + 1

        def create(i: int) -> None:
            time.sleep(max(0.0, start + spread_s * i / sessions - time.time()))
            request = pb.StartSessionRequest(
                advisor_id="advisor", prepaid_seconds=PREPAID_S, request_id=uuid.uuid4().hex
            )
            session = stubs[i % 2].StartSession(request, metadata=bearer(token), timeout=60).session
            baseline.schedule(session.paid_until.ToNanoseconds() / 1e9)

        with ThreadPoolExecutor(64) as pool:
            list(pool.map(create, range(sessions)))
        created_s = time.time() - start
        # The deadlines given, not the planned ones: starts may fall behind the pace.
        last_deadline = max(start + PREPAID_S + spread_s, *baseline.deadlines) + 1
        if kill:
            time.sleep(max(0.0, start + PREPAID_S + spread_s / 2 - time.time()))
            holder = db.client[f"{db.name}_timers"].leases.find_one({"_id": "timers.session"})
            victim = next(r for r in replicas if r.process and str(r.process.pid) in str(holder["owner"]))
            victim.kill()
        # Counting scans the collection on the embedded server: not while timers still fire.
        time.sleep(max(0.0, last_deadline - time.time()))
        wait_until(
            lambda: db.sessions.count_documents({"state": "PAUSED_FOR_RECHARGE"}) >= sessions,
            max(5.0, last_deadline - time.time()) + LEASE_TTL_S + 10,
            0.5,
        )
        # Events first: a session pausing between the two reads must not look duplicated.
        paused_events = db.outbox.count_documents({"type": "session.paused.v1"})
        lateness = [
            d["update_time"] - d["paid_until"]
            for d in db.sessions.find({"state": "PAUSED_FOR_RECHARGE"}, {"update_time": 1, "paid_until": 1})
        ]
        duplicated = db.sessions.count_documents({"pause_count": {"$gt": 1}})
        base = baseline.lateness
        result: dict[str, Any] = {
            "scenario": name,
            "sessions": sessions,
            "spread_s": spread_s,
            "create_s": round(created_s, 1),
            "paused": len(lateness),
            "missed": sessions - len(lateness),
            "duplicated": duplicated + max(0, paused_events - len(lateness)),
            "p50_ms": percentile(lateness, 0.5) * 1000,
            "p99_ms": percentile(lateness, 0.99) * 1000,
            "max_ms": max(lateness, default=float("nan")) * 1000,
            "baseline_p50_ms": percentile(base, 0.5) * 1000,
            "baseline_p99_ms": percentile(base, 0.99) * 1000,
            "baseline_max_ms": max(base, default=float("nan")) * 1000,
        }
        for q in ("p50", "p99", "max"):
            result[f"{q}_ratio"] = result[f"{q}_ms"] / max(result[f"baseline_{q}_ms"], 0.001)
        return result
    finally:
        baseline.scheduler.shutdown(wait=False)
        for replica in replicas:
            replica.stop()
        delete_matching(f"^{re.escape(tag)}[._]")  # the run's exchanges (wake-up signal, events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=int(os.environ.get("BENCH_SESSIONS", "1000")))
    parser.add_argument("--spread", type=float, default=60.0)
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--mongo-url", default="", help="an existing server (default: start nx-27017)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-timers-"))
    mongo = None if args.mongo_url else EmbeddedMongo(work / "mongo").start()
    ensure_keys(work / "jwt.key", work / "jwt.pub")
    token = mint_token((work / "jwt.key").read_bytes(), "customer-1", ["customer"], ttl_s=3600)
    env = {
        "MONGO_URL": mongo.url if mongo is not None else args.mongo_url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(work / "jwt.pub"),
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "SESSION_WARNING_BEFORE_S": "0",  # pause timers only: one firing per session
        "SESSION_RECHARGE_GRACE_S": "3600",
        "TIMERS_LEASE_TTL_S": str(LEASE_TTL_S),
        "QUEUE_PREFIX": f"{unique('bench')}.",
    }
    results = []
    try:
        results.append(run_scenario("two replicas", args.sessions, args.spread, env, token, work, kill=False))
        if not args.skip_failover:
            results.append(
                run_scenario("holder killed", args.sessions, args.spread, env, token, work, kill=True)
            )
    finally:
        if mongo is not None:
            mongo.stop()
    header = f"{'scenario':<15}{'n':>7}{'missed':>8}{'dup':>5}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    print(header + f"{'base p99':>10}{'p99 x':>8}")
    for r in results:
        print(
            f"{r['scenario']:<15}{r['sessions']:>7}{r['missed']:>8}{r['duplicated']:>5}"
            f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['max_ms']:>9.1f}"
            f"{r['baseline_p99_ms']:>10.1f}{r['p99_ratio']:>8.1f}"
        )
    out = ROOT / ".data" / "bench" / "timers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"lease_ttl_s": LEASE_TTL_S, "results": results}, indent=2, default=statistics.mean)
    )


if __name__ == "__main__":
    main()
