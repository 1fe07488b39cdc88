"""What every stored record must satisfy, stated from the contracts (the proto
comments and the job catalogue), apart from the services' own validators so that
a validator's bug shows up here. Records are read straight from each service's
database and decoded with that service's own repository code: what the store
holds, not what an RPC chooses to show. Each `*_problems` function returns one
line per broken rule (empty when the record is valid)."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pymongo import MongoClient

from chat_svc import repository as chat_repository
from chat_svc.model import AudienceKind, Message, MessageKind, Room, RoomKind
from mesh.jobs_catalogue import MAX_STRING_PARAMETER, Catalogue
from order_svc import repository as order_repository
from order_svc.model import Order, OrderStatus
from registration_svc import repository as job_repository
from registration_svc.model import Job
from session_svc import repository as session_repository
from session_svc.model import Session
from tests.support.processes import ServiceProcess

ID_MAX = 128
INT64_MAX = 2**63 - 1
SKU = re.compile(r"[A-Za-z0-9._-]{1,64}")
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]{1,128}")
CURRENCY = re.compile(r"[A-Z]{3}")
ROOM_NAME_MAX = 100
MAX_MEMBERS = 999 + 1  # "at most 999 besides the caller"
BODY_MAX_BYTES = 4096
MAX_RECIPIENTS = 100
SESSION_MAX_SECONDS = 86_400
RUN_AHEAD_MAX_S = 30 * 24 * 3600


def _id(value: str, name: str, problems: list[str], required: bool = True) -> None:
    if required and not value.strip():
        problems.append(f"{name} is empty")
    if len(value) > ID_MAX:
        problems.append(f"{name} has {len(value)} characters (at most {ID_MAX})")


def records(service: ServiceProcess, collection: str) -> list[dict[str, Any]]:
    """Every document of `collection` in the service's own database."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        service.env["MONGO_URL"], serverSelectionTimeoutMS=10_000
    )
    try:
        database = client[service.env["MONGO_DB"]]
        if collection not in database.list_collection_names():
            return []  # nx-27017: find on a missing collection is not always empty
        return list(database[collection].find())
    finally:
        client.close()


# orders ------------------------------------------------------------------------------


def stored_orders(service: ServiceProcess) -> list[Order]:
    """The stored orders; one whose stored total is not the sum of its lines fails here
    (the model recomputes the total, so it would not show otherwise)."""
    orders = []
    for document in records(service, order_repository.COLLECTION):
        order = order_repository.from_document(document)
        assert document["total_minor"] == order.total_minor, f"order {order.id}: stored total differs"
        orders.append(order)
    return orders


def order_problems(order: Order) -> list[str]:
    """1 to 100 lines of a valid SKU, 1 to 1,000,000 units at 0 to 10^12 minor units,
    one ISO currency, a total within int64, a printable key, a cancel reason ≤ 500."""
    problems: list[str] = []
    _id(order.customer_id, "customer_id", problems)
    if not 1 <= len(order.lines) <= 100:
        problems.append(f"{len(order.lines)} lines")
    if not CURRENCY.fullmatch(order.currency_code):
        problems.append(f"currency {order.currency_code!r}")
    for i, line in enumerate(order.lines):
        if not SKU.fullmatch(line.sku):
            problems.append(f"lines[{i}].sku {line.sku!r}")
        if not 1 <= line.quantity <= 1_000_000:
            problems.append(f"lines[{i}].quantity {line.quantity}")
        if not 0 <= line.unit_price_minor <= 10**12:
            problems.append(f"lines[{i}].unit_price {line.unit_price_minor}")
    if order.total_minor > INT64_MAX:
        problems.append(f"total {order.total_minor} exceeds int64")
    if not PRINTABLE_ASCII.fullmatch(order.idempotency_key):
        problems.append(f"idempotency_key {order.idempotency_key!r}")
    if len(order.cancel_reason) > 500:
        problems.append(f"cancel_reason of {len(order.cancel_reason)} characters")
    if (order.status is OrderStatus.CANCELLED) != (order.cancel_ms is not None):
        problems.append(f"status {order.status.value} with cancel_ms {order.cancel_ms}")
    return problems


# chat ----------------------------------------------------------------------------------


def stored_rooms(service: ServiceProcess) -> list[Room]:
    return [chat_repository.room_from_doc(d) for d in records(service, chat_repository.ROOMS)]


def stored_messages(service: ServiceProcess) -> list[Message]:
    return [chat_repository.message_from_doc(d) for d in records(service, chat_repository.MESSAGES)]


def room_problems(room: Room) -> list[str]:
    """A known kind; a name ≤ 100 characters (required for GROUP); distinct members
    of valid ids, at most 1000, the owner among them at creation; DIRECT: two
    members; SESSION: a session id."""
    problems: list[str] = []
    if room.kind not in (RoomKind.GROUP, RoomKind.DIRECT, RoomKind.SESSION):
        problems.append(f"kind {room.kind}")
    if len(room.display_name) > ROOM_NAME_MAX:
        problems.append(f"display_name of {len(room.display_name)} characters")
    if room.kind == RoomKind.GROUP and not room.display_name.strip():
        problems.append("GROUP room without a display_name")
    _id(room.owner_id, "owner_id", problems)
    if len(set(room.member_ids)) != len(room.member_ids):
        problems.append("duplicate members")
    if len(room.member_ids) > MAX_MEMBERS:
        problems.append(f"{len(room.member_ids)} members")
    for i, member in enumerate(room.member_ids):
        _id(member, f"member_ids[{i}]", problems)
    if room.kind == RoomKind.DIRECT and len(room.member_ids) > 2:
        problems.append(f"DIRECT room with {len(room.member_ids)} members")
    if room.kind == RoomKind.SESSION:
        _id(room.session_id, "session_id", problems)
    if room.last_sequence < 0:
        problems.append(f"last_sequence {room.last_sequence}")
    return problems


def message_problems(message: Message, rooms: dict[str, Room]) -> list[str]:
    """In an existing room, numbered within its sequence; a user's message has a
    sender, a client id, a body of 1 to 4096 UTF-8 bytes that is not blank, and an
    audience that fits its kind (ROOM: nobody listed; MEMBERS: 1 to 100; MEMBER: 1)."""
    problems: list[str] = []
    room = rooms.get(message.room_id)
    if room is None:
        return [f"room {message.room_id!r} does not exist"]
    if not 1 <= message.sequence <= room.last_sequence:
        problems.append(f"sequence {message.sequence} outside 1..{room.last_sequence}")
    if message.kind != MessageKind.USER:
        return problems
    _id(message.sender_id, "sender_id", problems)
    _id(message.client_message_id, "client_message_id", problems)
    size = len(message.body.encode())
    if not message.body.strip() or size > BODY_MAX_BYTES:
        problems.append(f"body of {size} bytes (blank: {not message.body.strip()})")
    recipients = message.recipient_ids
    expected = {
        AudienceKind.ROOM: len(recipients) == 0,
        AudienceKind.MEMBERS: 1 <= len(recipients) <= MAX_RECIPIENTS,
        AudienceKind.MEMBER: len(recipients) == 1,
    }
    if not expected.get(message.audience, False):
        problems.append(f"audience {message.audience.name} with {len(recipients)} recipients")
    for i, recipient in enumerate(recipients):
        _id(recipient, f"recipient_ids[{i}]", problems)
    return problems


def duplicate_sequences(messages: Iterable[Message]) -> list[str]:
    """Per-room sequence numbers are unique."""
    seen: dict[tuple[str, int], int] = defaultdict(int)
    for message in messages:
        seen[(message.room_id, message.sequence)] += 1
    return [f"room {room} sequence {seq} stored {n} times" for (room, seq), n in seen.items() if n > 1]


# sessions --------------------------------------------------------------------------------


def stored_sessions(service: ServiceProcess) -> list[Session]:
    return [session_repository.from_document(d) for d in records(service, session_repository.COLLECTION)]


def session_problems(session: Session) -> list[str]:
    """A customer and a different advisor; start and recharge keys of 1 to 128
    characters; paid time of 1 to 86,400 s per purchase (start and each recharge)."""
    problems: list[str] = []
    _id(session.customer_id, "customer_id", problems)
    _id(session.advisor_id, "advisor_id", problems)
    if session.customer_id == session.advisor_id:
        problems.append("customer is the advisor")
    _id(session.start_request_id, "start_request_id", problems)
    _id(session.room_id, "room_id", problems, required=False)
    purchases = 1 + len(session.recharge_request_ids)
    if not 1 <= session.paid_seconds_total <= SESSION_MAX_SECONDS * purchases:
        problems.append(f"paid_seconds_total {session.paid_seconds_total} for {purchases} purchases")
    if not 0 <= session.last_added_seconds <= SESSION_MAX_SECONDS:
        problems.append(f"last_added_seconds {session.last_added_seconds}")
    for i, request_id in enumerate(session.recharge_request_ids):
        _id(request_id, f"recharge_request_ids[{i}]", problems)
    if session.update_time < session.create_time:
        problems.append("updated before it was created")
    return problems


# jobs --------------------------------------------------------------------------------------


def stored_jobs(service: ServiceProcess) -> list[Job]:
    return [job_repository.to_job(d) for d in records(service, job_repository.COLLECTION)]


def job_problems(job: Job, catalogue: Catalogue) -> list[str]:
    """A definition of the catalogue with parameters that fit it (no unknown key,
    every required one, the right type and range), a key of 1 to 128 characters,
    run_at at most 30 days after submission."""
    problems: list[str] = []
    _id(job.owner_id, "owner_id", problems)
    _id(job.idempotency_key, "idempotency_key", problems)
    if job.run_at is not None and job.run_at > job.create_time + RUN_AHEAD_MAX_S + 1:
        problems.append(f"run_at {job.run_at - job.create_time:.0f} s after submission")
    definition = catalogue.get(job.definition)
    if definition is None:
        return [*problems, f"unknown definition {job.definition!r}"]
    if job.max_attempts != definition.max_retries + 1:
        problems.append(f"max_attempts {job.max_attempts} (catalogue: {definition.max_retries + 1})")
    specs = {spec.name: spec for spec in definition.parameters}
    problems += [f"unknown parameter {k!r}" for k in job.parameters if k not in specs]
    for name, spec in specs.items():
        value = job.parameters.get(name)
        if value is None:
            if spec.required:
                problems.append(f"required parameter {name} missing")
            continue
        if spec.type == "bool":
            ok = isinstance(value, bool)
        elif spec.type == "string":
            ok = isinstance(value, str) and len(value) <= (spec.max_length or MAX_STRING_PARAMETER)
        else:
            number = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
            ok = (
                number
                and (spec.type != "int" or float(value) == int(value))
                and (spec.min is None or value >= spec.min)
                and (spec.max is None or value <= spec.max)
            )
        if not ok:
            problems.append(f"parameter {name}={value!r} does not fit {spec.type} {spec.min}..{spec.max}")
    return problems
