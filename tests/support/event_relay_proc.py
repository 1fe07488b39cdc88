"""A publishing process for the event tests: `python -m tests.support.event_relay_proc`.
Runs an OutboxRelay (config from the environment) and, with WRITE_COUNT, first
writes that many events through the outbox (WRITE_BATCH per transaction,
subjects `n/<WRITE_START + i>`). Prints "written <n>" when done; stops on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading

from google.protobuf.wrappers_pb2 import Int64Value

from mesh.bus import Publisher
from mesh.config import MeshConfig
from mesh.events import new_event
from mesh.outbox import Outbox, OutboxRelay
from mesh.store import Store

EVENT_TYPE = "test.counted.v1"


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    config = MeshConfig()
    store = Store(config.mongo_url, config.database, config.mongo_timeout_ms)
    outbox = Outbox(store, config)
    relay = OutboxRelay(store, outbox, Publisher(config, name="relay-proc"), config).start_thread()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    start = int(os.environ.get("WRITE_START", "0"))
    count = int(os.environ.get("WRITE_COUNT", "0"))
    batch = int(os.environ.get("WRITE_BATCH", "1"))
    for first in range(start, start + count, batch):
        if stopping.is_set():
            break
        with store.unit_of_work() as uow:
            for n in range(first, min(first + batch, start + count)):
                outbox.add(uow, new_event(EVENT_TYPE, "relay-proc", f"n/{n}", Int64Value(value=n)))
            uow.commit()
    print(f"written {count}", flush=True)
    stopping.wait()
    relay.stop_thread()
    store.close()


if __name__ == "__main__":
    main()
