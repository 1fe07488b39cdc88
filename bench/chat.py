"""Benchmark of chat fan-out: one room, 200 subscribers split over two chat_svc
replicas, 20 messages/s for 30 s → delivery latency p50/p99 (send call start to
arrival at each subscriber), lost and out-of-order deliveries (both must be 0);
then a saturation burst for the highest sustainable deliveries per second.

Baseline, measured in the same run: a raw grpc.aio server-streaming server (the
same ChatService Subscribe/SendMessage messages, no auth, no store, no broker:
a unary call broadcast to in-memory queues) under the same subscribers and the
same burst. Throughput is stated as a ratio to it.

    .venv/bin/python bench/chat.py [--subscribers 200] [--rate 20] [--seconds 30] [--burst-seconds 8]

Writes .data/bench/chat.json. Target (issue 6): p99 <= 150 ms at 20 msg/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "gen")]

import grpc  # noqa: E402
from switchboard.chat.v1 import chat_service_pb2 as pb  # noqa: E402
from switchboard.chat.v1 import chat_service_pb2_grpc  # noqa: E402

from mesh.auth import ensure_keys, mint_token  # noqa: E402
from mesh.client import bearer  # noqa: E402
from mesh.processes import free_port, port_open, wait_until  # noqa: E402
from tests.support.processes import RABBITMQ_URL, EmbeddedMongo, ServiceProcess, unique  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc): the machine is shared,
    so CPU per delivery is the figure that load changes least."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send_request(room_id: str, body: str) -> pb.SendMessageRequest:
    """A room-wide chat message: channel and audience are required by the contract."""
    return pb.SendMessageRequest(
        room_id=room_id,
        client_message_id=uuid.uuid4().hex,
        body=body,
        channel=pb.CHANNEL_CHAT,
        audience=pb.Audience(kind=pb.AUDIENCE_KIND_ROOM),
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ------------------------------------------------------------------ baseline server


class BroadcastServicer(chat_service_pb2_grpc.ChatServiceServicer):
    """The baseline: SendMessage appends to every open stream's queue."""

    def __init__(self) -> None:
        self.queues: list[asyncio.Queue[pb.Message]] = []
        self.sequence = 0

    async def SendMessage(self, request: pb.SendMessageRequest, context: Any) -> pb.SendMessageResponse:
        self.sequence += 1
        message = pb.Message(room_id=request.room_id, sequence=self.sequence, body=request.body)
        for queue in self.queues:
            queue.put_nowait(message)
        return pb.SendMessageResponse(message=message)

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: Any
    ) -> AsyncIterator[pb.SubscribeResponse]:
        queue: asyncio.Queue[pb.Message] = asyncio.Queue()
        self.queues.append(queue)
        try:
            yield pb.SubscribeResponse(room_subscribed=pb.RoomSubscribed(room_id=request.room_ids[0]))
            while True:
                yield pb.SubscribeResponse(message=await queue.get())
        finally:
            self.queues.remove(queue)


def run_baseline_server(port: int) -> None:
    async def serve() -> None:
        server = grpc.aio.server()
        chat_service_pb2_grpc.add_ChatServiceServicer_to_server(BroadcastServicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


# ------------------------------------------------------------------------ clients


class Subscriber:
    """One stream; records arrival time (wall clock, shared by all processes of
    this machine) per sequence and order violations."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.last = 0
        self.out_of_order = 0
        self.duplicates = 0
        self.ready = asyncio.Event()

    async def run(self, target: str, token: str, room_id: str) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = chat_service_pb2_grpc.ChatServiceStub(channel)
            call = stub.Subscribe(pb.SubscribeRequest(room_ids=[room_id]), metadata=bearer(token))
            try:
                async for response in call:
                    if response.WhichOneof("event") == "room_subscribed":
                        self.ready.set()
                    elif response.WhichOneof("event") == "message":
                        self.record(response.message.sequence)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.CANCELLED:
                    print(f"subscriber ended: {exc.code()}", file=sys.stderr)

    def record(self, sequence: int) -> None:
        if sequence in self.arrivals:
            self.duplicates += 1
            return
        self.arrivals[sequence] = time.time()
        if sequence < self.last:
            self.out_of_order += 1
        self.last = max(self.last, sequence)


def subscriber_process(conn: Connection, targets: list[str], tokens: list[str], room_id: str) -> None:
    """A client process holding a share of the streams (one Python process
    cannot read 4000 deliveries/s and still time them fairly)."""
    asyncio.run(_subscriber_loop(conn, targets, tokens, room_id))


async def _subscriber_loop(conn: Connection, targets: list[str], tokens: list[str], room_id: str) -> None:
    subscribers = [Subscriber() for _ in tokens]
    tasks = [
        asyncio.create_task(s.run(targets[i % len(targets)], tokens[i], room_id))
        for i, s in enumerate(subscribers)
    ]
    await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in subscribers)), 120)
    conn.send("ready")
    while True:
        command, last, timeout_s = await asyncio.to_thread(conn.recv)
        if command == "stop":
            break
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(s.last < last for s in subscribers):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        conn.send([(s.arrivals, s.out_of_order, s.duplicates) for s in subscribers])
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def send_at_rate(
    stub: Any, metadata: Any, room_id: str, rate: float, seconds: float
) -> dict[int, float]:
    """Steady sends; returns sequence → send start (wall clock)."""
    sent: dict[int, float] = {}
    interval = 1.0 / rate
    start = time.perf_counter()
    count = int(rate * seconds)

    async def one(i: int) -> None:
        await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
        began = time.time()
        request = send_request(room_id, f"m{i}")
        response = await stub.SendMessage(request, metadata=metadata, timeout=30)
        sent[response.message.sequence] = began

    await asyncio.gather(*(one(i) for i in range(count)))
    return sent


async def burst(stub: Any, metadata: Any, room_id: str, seconds: float, senders: int) -> int:
    """Send as fast as `senders` concurrent loops can for `seconds`; returns messages sent."""
    deadline = time.perf_counter() + seconds
    count = 0

    async def loop() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            request = send_request(room_id, "burst")
            await stub.SendMessage(request, metadata=metadata, timeout=30)
            count += 1

    await asyncio.gather(*(loop() for _ in range(senders)))
    return count


Results = list[tuple[dict[int, float], int, int]]


def collect(pipes: list[Connection], last: int, timeout_s: float) -> Results:
    for pipe in pipes:
        pipe.send(("settle", last, timeout_s))
    return [item for pipe in pipes for item in pipe.recv()]


def measure(
    targets: list[str], tokens: list[str], sender_token: str, room_id: str, args: argparse.Namespace
) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    pipes, workers = [], []
    share = -(-len(tokens) // args.client_processes)
    for i in range(args.client_processes):
        ours, theirs = context.Pipe()
        chunk = tokens[i * share : (i + 1) * share]
        # each process alternates replicas, so the streams split evenly over them
        worker = context.Process(target=subscriber_process, args=(theirs, targets, chunk, room_id))
        worker.start()
        pipes.append(ours)
        workers.append(worker)
    try:
        for pipe in pipes:
            assert pipe.recv() == "ready"
        return asyncio.run(_drive(pipes, targets[0], sender_token, room_id, args))
    finally:
        for pipe in pipes:
            pipe.send(("stop", 0, 0))
        for worker in workers:
            worker.join(10)
            worker.kill()


async def _drive(
    pipes: list[Connection], target: str, sender_token: str, room_id: str, args: argparse.Namespace
) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = chat_service_pb2_grpc.ChatServiceStub(channel)
        metadata = bearer(sender_token)
        sent = await send_at_rate(stub, metadata, room_id, args.rate, args.seconds)
        steady_last = max(sent)
        results = await asyncio.to_thread(collect, pipes, steady_last, 20)
        latencies = [
            (arrivals[seq] - began) * 1000
            for arrivals, _, _ in results
            for seq, began in sent.items()
            if seq in arrivals
        ]
        summary: dict[str, Any] = {
            "messages": len(sent),
            "deliveries": len(latencies),
            "p50_ms": round(percentile(latencies, 0.5), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2),
            "max_ms": round(max(latencies, default=float("nan")), 2),
            "late_after_settle": sum(1 for arrivals, _, _ in results for seq in sent if seq not in arrivals),
            "out_of_order": sum(r[1] for r in results),
            "duplicates": sum(r[2] for r in results),
        }
        began = time.time()
        count = await burst(stub, metadata, room_id, args.burst_seconds, args.senders)
    top = steady_last + count
    results = await asyncio.to_thread(collect, pipes, top, 60)
    burst_arrivals = [t for arrivals, _, _ in results for seq, t in arrivals.items() if seq > steady_last]
    elapsed = (max(burst_arrivals) - began) if burst_arrivals else float("nan")
    summary["burst_messages"] = count
    summary["burst_deliveries"] = len(burst_arrivals)
    summary["burst_deliveries_per_s"] = round(len(burst_arrivals) / elapsed, 1) if burst_arrivals else 0.0
    summary["lost_at_end"] = sum(
        1 for arrivals, _, _ in results for seq in range(1, top + 1) if seq not in arrivals
    )
    summary["out_of_order"] = sum(r[1] for r in results)
    summary["duplicates"] = sum(r[2] for r in results)
    return summary


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--burst-seconds", type=float, default=8.0)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--client-processes", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-chat-"))
    keys = work / "keys"
    ensure_keys(keys / "jwt.key", keys / "jwt.pub")
    private = (keys / "jwt.key").read_bytes()
    mongo = EmbeddedMongo(work / "mongo").start()
    tag = unique("bench")
    env = {
        "MONGO_URL": mongo.url,
        "RABBITMQ_URL": RABBITMQ_URL,
        "MONGO_DB": tag,
        "EVENTS_EXCHANGE": f"{tag}.events",
        "QUEUE_PREFIX": f"{tag}.",
        "JWT_PUBLIC_KEY_FILE": str(keys / "jwt.pub"),
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "CHAT_SUBSCRIBER_BUFFER": "10000",
    }
    replicas = [ServiceProcess("chat_svc", env, work / "logs").start() for _ in range(2)]
    baseline_port = free_port()
    baseline = multiprocessing.get_context("spawn").Process(target=run_baseline_server, args=(baseline_port,))
    baseline.start()
    try:
        wait_until(lambda: port_open(baseline_port), 10)
        users = [f"user{i}" for i in range(args.subscribers)]
        tokens = [mint_token(private, u, ["customer"]) for u in users]
        owner_token = mint_token(private, "owner", ["customer"])
        owner = grpc.insecure_channel(replicas[0].target)
        room = (
            chat_service_pb2_grpc.ChatServiceStub(owner)
            .CreateRoom(
                pb.CreateRoomRequest(
                    kind=pb.ROOM_KIND_GROUP, display_name="bench", member_ids=users, request_id="bench"
                ),
                metadata=bearer(owner_token),
                timeout=30,
            )
            .room
        )
        targets = [r.target for r in replicas]
        servers = [r.process.pid for r in replicas if r.process is not None]
        store_pid = mongo.process.pid if mongo.process is not None else 0
        before = [cpu_seconds(pid) for pid in [*servers, store_pid]]
        chat = measure(targets, tokens, owner_token, room.id, args)
        after = [cpu_seconds(pid) for pid in [*servers, store_pid]]
        chat["server_cpu_s"] = round(sum(after[:-1]) - sum(before[:-1]), 2)
        chat["store_cpu_s"] = round(after[-1] - before[-1], 2)
        base_before = cpu_seconds(baseline.pid or 0)
        base = measure([f"127.0.0.1:{baseline_port}"], tokens, owner_token, "baseline", args)
        base["server_cpu_s"] = round(cpu_seconds(baseline.pid or 0) - base_before, 2)
        for summary in (chat, base):
            delivered = summary["deliveries"] + summary["burst_deliveries"]
            summary["server_cpu_us_per_delivery"] = round(
                summary["server_cpu_s"] / max(delivered, 1) * 1e6, 1
            )
    finally:
        baseline.kill()
        for replica in replicas:
            replica.stop()
        mongo.stop()
    ratio = (
        chat["burst_deliveries_per_s"] / base["burst_deliveries_per_s"]
        if base["burst_deliveries_per_s"]
        else 0
    )
    result = {
        "config": vars(args),
        "chat": chat,
        "baseline_grpc_aio": base,
        "deliveries_ratio_to_baseline": round(ratio, 3),
        "p99_ratio_to_baseline": round(chat["p99_ms"] / base["p99_ms"], 2) if base["p99_ms"] else None,
        "cpu_per_delivery_ratio_to_baseline": round(
            chat["server_cpu_us_per_delivery"] / max(base["server_cpu_us_per_delivery"], 0.1), 2
        ),
        "load_average_at_end": os.getloadavg(),
    }
    rows = [
        ("steady p50 latency (ms)", chat["p50_ms"], base["p50_ms"]),
        ("steady p99 latency (ms)", chat["p99_ms"], base["p99_ms"]),
        ("steady max latency (ms)", chat["max_ms"], base["max_ms"]),
        (
            "late (>20 s) / out of order / dup",
            f"{chat['late_after_settle']}/{chat['out_of_order']}/{chat['duplicates']}",
            f"{base['late_after_settle']}/{base['out_of_order']}/{base['duplicates']}",
        ),
        ("burst deliveries/s", chat["burst_deliveries_per_s"], base["burst_deliveries_per_s"]),
        ("burst messages sent", chat["burst_messages"], base["burst_messages"]),
        (
            "server CPU us/delivery",
            chat["server_cpu_us_per_delivery"],
            base["server_cpu_us_per_delivery"],
        ),
        ("store CPU s (chat only)", chat["store_cpu_s"], "-"),
        ("lost at the end (must be 0)", chat["lost_at_end"], base["lost_at_end"]),
    ]
    print(f"{'metric':<28}{'chat_svc (2 replicas)':>24}{'raw grpc.aio':>16}")
    for name, ours, theirs in rows:
        print(f"{name:<28}{ours!s:>24}{theirs!s:>16}")
    print(f"deliveries/s ratio to baseline: {ratio:.3f}")
    out = ROOT / ".data" / "bench" / "chat.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
