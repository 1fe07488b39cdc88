"""The outbox relay as real processes: two relays share one outbox without
publishing a row twice, and a publisher killed with SIGKILL loses nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from google.protobuf.wrappers_pb2 import Int64Value

from mesh.config import MeshConfig
from mesh.events import new_event
from mesh.outbox import PUBLISHED, Outbox
from mesh.processes import spawn, terminate, wait_until
from mesh.store import Store
from tests.support.event_relay_proc import EVENT_TYPE
from tests.support.events import Recorder, event_config, process_env
from tests.support.processes import ROOT, EmbeddedMongo

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def config(mongo: EmbeddedMongo, isolation: dict[str, str]) -> MeshConfig:
    return event_config(mongo.url, isolation, outbox_batch_size=500)


@pytest.fixture
def relay_process(config: MeshConfig, tmp_path: Path) -> Iterator[Spawn]:
    """`relay_process(WRITE_COUNT="100")` runs tests.support.event_relay_proc."""
    started: list[subprocess.Popen[bytes]] = []

    def start(**extra: str) -> subprocess.Popen[bytes]:
        process = spawn(
            [sys.executable, "-m", "tests.support.event_relay_proc"],
            log_path=tmp_path / f"relay-{len(started)}.log",
            env=process_env(config, **extra),
            cwd=ROOT,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            terminate(process.pid, timeout_s=10)


@pytest.fixture
def recorder(config: MeshConfig) -> Iterator[Recorder]:
    recorder = Recorder(config).start()
    yield recorder
    recorder.stop()


@pytest.mark.parametrize(
    "total",
    [
        # the full count: about 40 s on 2 cores with the embedded MongoDB since
        # the inbox applies batches (serial phase of `make test`)
        pytest.param(10_000, marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
    ],
)
def test_events_through_two_relay_processes_are_applied_exactly_once(
    config: MeshConfig, store: Store, relay_process: Spawn, recorder: Recorder, total: int
) -> None:
    relay_process(OUTBOX_CLAIM_TTL_S="20")
    relay_process(OUTBOX_CLAIM_TTL_S="20")
    outbox = Outbox(store, config)  # no relay in this process: the two processes sweep
    for first in range(0, total, 250):
        with store.unit_of_work() as uow:
            for n in range(first, min(first + 250, total)):
                outbox.add(uow, new_event(EVENT_TYPE, "test", f"n/{n}", Int64Value(value=n)))
            uow.commit()

    assert wait_until(lambda: len(recorder.applied) >= total, total / 20, 0.5), (
        f"{len(recorder.applied)} of {total} applied"
    )
    assert recorder.subjects() == {f"n/{n}" for n in range(total)}
    assert set(recorder.effect_counts().values()) == {1}
    assert len(recorder.deliveries) == total, "a row was published twice"
    assert store.db.outbox.count_documents({"status": PUBLISHED}) == total


def test_publisher_killed_mid_stream_loses_nothing_after_restart(
    config: MeshConfig, store: Store, relay_process: Spawn, recorder: Recorder
) -> None:
    first = relay_process(WRITE_COUNT="3000", WRITE_BATCH="10")
    assert wait_until(lambda: len(recorder.applied) >= 300, 30, 0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    # filter on type: nx-27017 also stores a transaction's readConcern as a stray document
    rows = list(store.db.outbox.find({"type": EVENT_TYPE}))
    written = {row["subject"] for row in rows}
    assert 300 <= len(written) < 3000, "the kill should land mid-stream"

    relay_process()  # the restarted publisher: relays what is left, writes nothing
    assert wait_until(lambda: recorder.subjects() >= written, 40, 0.2), (
        f"{len(written - recorder.subjects())} of {len(written)} missing"
    )
    assert set(recorder.effect_counts().values()) == {1}
