"""Benchmark of the job pipeline: no-op jobs submitted to registration_svc at a
steady rate → submit-to-SUCCEEDED latency (as registration_svc records it)
p50/p99/max, and jobs per second; then a burst for the maximum throughput.

Path of one job: SubmitJob (transaction + outbox) → JobRegistered → scheduler
inbox → dispatcher → work queue → worker (RUNNING, SUCCEEDED transactions) →
JobStatusChanged → registration inbox.

Baseline, measured in the same run: the SubmitJob RPC itself (one transaction
with its outbox row). Latencies are also given as ratios to its p50.

    .venv/bin/python bench/jobs.py [--jobs 1000] [--rate 50] [--burst 200]

Writes .data/bench/jobs.json. Target (issue 7): p99 <= 1 s at 50 jobs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

import grpc  # noqa: E402
from pymongo import MongoClient  # noqa: E402
from switchboard.registration.v1 import registration_service_pb2 as pb  # noqa: E402
from switchboard.registration.v1 import registration_service_pb2_grpc  # noqa: E402

from mesh.auth import ensure_keys, mint_token  # noqa: E402
from mesh.client import bearer  # noqa: E402
from mesh.processes import wait_until  # noqa: E402
from tests.support.broker import delete_matching  # noqa: E402
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique  # noqa: E402

SUCCEEDED = 4


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Submitter:
    """Submits no-op jobs and remembers when each was sent (client clock)."""

    def __init__(self, target: str, token: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.stub = registration_service_pb2_grpc.RegistrationServiceStub(self.channel)
        self.metadata = bearer(token)
        self.sent: dict[str, float] = {}
        self.rpc_s: list[float] = []
        self.errors = 0
        self._lock = threading.Lock()

    def submit(self) -> None:
        started = time.time()
        try:
            job = self.stub.SubmitJob(
                pb.SubmitJobRequest(definition="noop", idempotency_key=uuid.uuid4().hex),
                metadata=self.metadata,
                timeout=10,
            ).job
        except grpc.RpcError:
            with self._lock:
                self.errors += 1
            return
        with self._lock:
            self.sent[job.id] = started
            self.rpc_s.append(time.time() - started)


def run_phase(submitter: Submitter, count: int, rate: float | None, workers: int) -> tuple[float, float]:
    """Submit `count` jobs, paced at `rate`/s (None: as fast as possible); returns (start, end)."""
    start = time.time()
    with ThreadPoolExecutor(workers) as pool:
        for index in range(count):
            if rate:
                delay = start + index / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            pool.submit(submitter.submit)
    return start, time.time()


def collect(db: Any, sent: dict[str, float], timeout_s: float) -> dict[str, float]:
    """job id → registration's update_time when it recorded SUCCEEDED."""
    ids = list(sent)
    done: dict[str, float] = {}

    def poll() -> bool:
        pending = [i for i in ids if i not in done]
        for document in db.jobs.find({"_id": {"$in": pending}, "status": SUCCEEDED}, {"update_time": 1}):
            done[document["_id"]] = float(document["update_time"])
        return len(done) == len(ids)

    wait_until(poll, timeout_s, 0.5)
    return done


def summarize(
    name: str, submitter: Submitter, done: dict[str, float], window: tuple[float, float]
) -> dict[str, Any]:
    latencies = [done[i] - submitter.sent[i] for i in done]
    finished = max(done.values()) if done else window[1]
    return {
        "phase": name,
        "submitted": len(submitter.sent),
        "submit_errors": submitter.errors,
        "succeeded": len(done),
        "offered_rate_per_s": round(len(submitter.sent) / max(window[1] - window[0], 1e-9), 1),
        "jobs_per_s": round(len(done) / max(finished - window[0], 1e-9), 1),
        "latency_p50_s": round(percentile(latencies, 0.50), 4),
        "latency_p99_s": round(percentile(latencies, 0.99), 4),
        "latency_max_s": round(max(latencies, default=float("nan")), 4),
        "submit_rpc_p50_s": round(percentile(submitter.rpc_s, 0.50), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--worker-threads", type=int, default=4)
    parser.add_argument(
        "--submitters", type=int, default=32, help="concurrent SubmitJob calls (enough to hold the rate)"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    work = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    ensure_keys(work / "keys" / "jwt.key", work / "keys" / "jwt.pub")
    mongo = EmbeddedMongo(work / "mongo").start()
    tag = unique("bench")
    env = {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "JWT_PUBLIC_KEY_FILE": str(work / "keys" / "jwt.pub"),
        "JWT_PRIVATE_KEY_FILE": str(work / "keys" / "jwt.key"),
        "EVENTS_EXCHANGE": f"{tag}.events",
        "QUEUE_PREFIX": f"{tag}.",
        "LOG_LEVEL": "WARNING",
        "BUS_RETRY_DELAYS_MS": "[200]",
    }
    registration = ServiceProcess("registration_svc", {**env, "MONGO_DB": f"{tag}_reg"}, work / "logs")
    scheduler = ServiceProcess(
        "scheduler_svc",
        {**env, "MONGO_DB": f"{tag}_sch", "WORKER_THREADS": str(args.worker_threads)},
        work / "logs",
    )
    try:
        registration.start()
        scheduler.start()
        token = mint_token((work / "keys" / "jwt.key").read_bytes(), "bench", ["customer"])
        client: MongoClient[dict[str, Any]] = MongoClient(mongo.url)
        db = client[f"{tag}_reg"]
        warm = Submitter(registration.target, token)
        run_phase(warm, 20, None, 4)
        collect(db, warm.sent, 30)

        steady = Submitter(registration.target, token)
        window = run_phase(steady, args.jobs, args.rate, args.submitters)
        steady_result = summarize("steady", steady, collect(db, steady.sent, 60), window)

        burst = Submitter(registration.target, token)
        window = run_phase(burst, args.burst, None, args.submitters)
        burst_result = summarize("burst", burst, collect(db, burst.sent, 45), window)
    finally:
        scheduler.stop()
        registration.stop()
        mongo.stop()
        delete_matching(f"^{re.escape(tag)}[._]")  # the run's quorum queues and exchange

    baseline = steady_result["submit_rpc_p50_s"]
    for result in (steady_result, burst_result):
        result["latency_p50_vs_submit_rpc"] = round(result["latency_p50_s"] / baseline, 1)
        result["latency_p99_vs_submit_rpc"] = round(result["latency_p99_s"] / baseline, 1)
    report = {
        "benchmark": "jobs",
        "command": "python bench/jobs.py " + " ".join(sys.argv[1:]),
        "baseline": {"name": "SubmitJob RPC p50 (s)", "value": baseline},
        "target": {"latency_p99_s": 1.0, "rate_per_s": 50},
        "phases": [steady_result, burst_result],
        "worker_threads": args.worker_threads,
        "load_average_1m": {"start": round(load_before, 1), "end": round(os.getloadavg()[0], 1)},
    }
    print(
        f"{'phase':8} {'sent':>5} {'ok':>5} {'offered/s':>9} {'jobs/s':>7} {'p50 s':>7} {'p99 s':>7} "
        f"{'max s':>7} {'p50/base':>8} {'p99/base':>8}"
    )
    for r in report["phases"]:
        print(
            f"{r['phase']:8} {r['submitted']:>5} {r['succeeded']:>5} {r['offered_rate_per_s']:>9} "
            f"{r['jobs_per_s']:>7} {r['latency_p50_s']:>7} {r['latency_p99_s']:>7} {r['latency_max_s']:>7} "
            f"{r['latency_p50_vs_submit_rpc']:>8} {r['latency_p99_vs_submit_rpc']:>8}"
        )
    print(f"baseline: SubmitJob RPC p50 = {baseline * 1000:.1f} ms")
    load = report["load_average_1m"]
    print(f"load average (1 min): {load['start']} at start, {load['end']} at end")
    out = ROOT / ".data" / "bench" / "jobs.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
