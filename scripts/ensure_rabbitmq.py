"""Make sure the RabbitMQ that tests use is reachable (starting the local one if it
is installed and stopped), with the management API on, which the tests use to
delete the queues each test declared."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project root, for tests.support

from mesh.local import ensure_rabbitmq
from mesh.processes import port_open, wait_until
from tests.support.broker import TEST_NAME, delete_matching

MANAGEMENT_PORT = 15672
MIN_OPEN_FILES = 4096

if __name__ == "__main__":
    # A node started by Debian's wrapper gets 1,024 files: a few hundred quorum queues
    # (parallel tests) exhaust them and handshakes time out. Restart it with more.
    ensure_rabbitmq(
        os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        min_open_files=MIN_OPEN_FILES,
    )
    plugins = shutil.which("rabbitmq-plugins")
    if not port_open(MANAGEMENT_PORT) and plugins:
        subprocess.run([plugins, "enable", "rabbitmq_management"], check=False, timeout=120)
        wait_until(lambda: port_open(MANAGEMENT_PORT), 60, 0.5)
    management = "on" if port_open(MANAGEMENT_PORT) else "off (test queues will not be removed)"
    print(f"rabbitmq is reachable; management API {management}")
    if "--purge-test-queues" in sys.argv:
        # Before a test run only: queues of earlier, killed runs (never during one,
        # it would take a running test's queues).
        print(f"removed {delete_matching(TEST_NAME)} leftover test queues and exchanges")
