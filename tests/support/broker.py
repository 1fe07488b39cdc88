"""Removes the queues and exchanges a test declared (through the RabbitMQ management
API), so hundreds of per-test quorum queues don't pile up in the shared broker."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

log = logging.getLogger(__name__)
MANAGEMENT_URL = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672")
_AUTH = "Basic " + base64.b64encode(b"guest:guest").decode()
# Names made by tests.support.processes.unique(): "<prefix>_<10 hex>"
TEST_NAME = r"^[a-z0-9]+_[0-9a-f]{10}[._]"


def _call(method: str, path: str) -> Any:
    request = urllib.request.Request(
        f"{MANAGEMENT_URL}{path}", method=method, headers={"Authorization": _AUTH}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def messages_in(pattern: str) -> int:
    """Messages ready or unacked in the queues whose name matches `pattern` (the
    management API's figures, refreshed every few seconds: poll until they settle)."""
    return sum(int(queue.get("messages", 0)) for queue in _queues_matching(pattern, "name,messages"))


def _queues_matching(pattern: str, columns: str) -> list[dict[str, Any]]:
    # the server's own name filter is looser than `pattern`: filter again here
    query = urllib.parse.urlencode({"name": pattern, "use_regex": "true", "columns": columns})
    regex = re.compile(pattern)
    return [queue for queue in _call("GET", f"/api/queues/%2F?{query}") if regex.search(queue["name"])]


def delete_matching(pattern: str) -> int:
    """Delete every queue and exchange of the default vhost whose name matches `pattern`."""
    try:
        query = urllib.parse.urlencode({"name": pattern, "use_regex": "true", "columns": "name"})
        queues = _call("GET", f"/api/queues/%2F?{query}")
        exchanges = _call("GET", f"/api/exchanges/%2F?{query}")
    except (urllib.error.URLError, OSError) as exc:
        log.warning("RabbitMQ management API unavailable, test queues not removed: %s", exc)
        return 0
    deleted = 0
    regex = re.compile(pattern)
    for kind, items in (("queues", queues), ("exchanges", exchanges)):
        for item in items if isinstance(items, list) else items.get("items", []):
            name = item["name"]
            if not regex.search(name):
                continue
            try:
                _call("DELETE", f"/api/{kind}/%2F/{urllib.parse.quote(name, safe='')}")
                deleted += 1
            except (urllib.error.URLError, OSError):
                pass  # already gone (auto-delete, or another cleanup)
    return deleted
