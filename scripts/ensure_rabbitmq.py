"""Make sure the RabbitMQ that tests use is reachable; start the local one if not."""

from __future__ import annotations

import os

from mesh.local import ensure_rabbitmq

if __name__ == "__main__":
    ensure_rabbitmq(os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    print("rabbitmq is reachable")
