"""Opaque, validated page tokens (AIP-158) and page-size bounds, shared by every
List RPC. A token is base64url JSON carrying the cursor and a fingerprint of the
request's other fields, so a token reused with changed filters is refused."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from pymongo import ASCENDING, DESCENDING

from mesh.errors import Violations

MAX_TOKEN_LEN = 1024


def fingerprint(*parts: object) -> str:
    """A short digest of the request fields that must not change between pages."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_token(cursor: dict[str, Any], request_fingerprint: str) -> str:
    body = json.dumps({"c": cursor, "f": request_fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def decode_token(
    token: str, request_fingerprint: str, violations: Violations, field_path: str = "page_token"
) -> dict[str, Any] | None:
    """The cursor of `token`; None for an empty token (first page) or an invalid
    one (then a violation naming `field_path` is recorded)."""
    if not token:
        return None
    if len(token) > MAX_TOKEN_LEN:
        violations.add(field_path, "is not a token from a previous response")
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        violations.add(field_path, "is not a token from a previous response")
        return None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("c"), dict):
        violations.add(field_path, "is not a token from a previous response")
        return None
    if decoded.get("f") != request_fingerprint:
        violations.add(field_path, "was issued for a request with other filters")
        return None
    cursor: dict[str, Any] = decoded["c"]
    return cursor


def page_size(
    value: int, default: int, maximum: int, violations: Violations, field_path: str = "page_size"
) -> int:
    """0 means `default`; otherwise 1..maximum."""
    if value == 0:
        return default
    violations.check(0 < value <= maximum, field_path, f"must be between 1 and {maximum} (0: {default})")
    return min(max(value, 1), maximum)


def cursor_field(
    cursor: dict[str, Any] | None,
    key: str,
    kind: type[int] | type[float] | type[str],
    violations: Violations,
    field_path: str = "page_token",
) -> Any:
    """One value of a decoded cursor, checked for type (a token is only base64 JSON:
    a caller can forge one); None for the first page or a bad value (recorded)."""
    if cursor is None:
        return None
    value = cursor.get(key)
    accepted = (int, float) if kind is float else kind
    negative = isinstance(value, int | float) and value < 0
    if isinstance(value, bool) or not isinstance(value, accepted) or (kind is int and negative):
        violations.add(field_path, "is not a token from a previous response")
        return None
    return kind(value)


def keyset_query(
    filters: dict[str, Any], field: str, after: tuple[Any, str] | None, *, descending: bool = True
) -> dict[str, Any]:
    """`filters` narrowed to the rows past `after`, the (field, _id) of the previous
    page's last row, in (field, _id) order (keyset paging: no skip, stable under
    inserts). The first page (`after` None) is `filters` alone."""
    if after is None:
        return dict(filters)
    value, last_id = after
    past = "$lt" if descending else "$gt"
    beyond = {"$or": [{field: {past: value}}, {field: value, "_id": {past: last_id}}]}
    return {"$and": [filters, beyond]} if filters else beyond


def keyset_sort(field: str, *, descending: bool = True) -> list[tuple[str, int]]:
    """The sort that `keyset_query` pages through."""
    direction = DESCENDING if descending else ASCENDING
    return [(field, direction), ("_id", direction)]
