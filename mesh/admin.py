"""EventAdminService: list and replay a service's FAILED outbox rows and its
consumers' dead letters (operator and admin roles, declared in the proto).

No service mounts it by hand, so none can forget it: `mesh.outbox.install` and
`mesh.inbox.consume` call `attach_outbox` / `attach_consumer`, and the first
call mounts the servicer on that server. A queue consumed another way (the
scheduler's work queue) is attached with `attach_consumer(server, queue)`."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

import grpc
from google.protobuf import json_format
from switchboard.admin.v1 import event_admin_pb2 as pb
from switchboard.admin.v1 import event_admin_pb2_grpc

from mesh.bus import DEAD_SUFFIX, DeadLetters, DeadMessage, EventConsumer
from mesh.config import MeshConfig
from mesh.errors import FieldViolation, InvalidArgument, NotFound
from mesh.events import EventDecodeError, from_bytes
from mesh.outbox import FAILED, PENDING, PUBLISHED, Outbox, decode_page_token, encode_page_token
from mesh.protos import optional_timestamp
from mesh.store import Document

if TYPE_CHECKING:
    from mesh.server import MeshServer

SERVICE_NAME = "switchboard.admin.v1.EventAdminService"
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_IDS = 1000
MAX_REPLAY = 10000
SUMMARY_CHARS = 1000

_STATUS_TO_PROTO = {
    PENDING: pb.OUTBOX_STATUS_PENDING,
    PUBLISHED: pb.OUTBOX_STATUS_PUBLISHED,
    FAILED: pb.OUTBOX_STATUS_FAILED,
}
_STATUS_FROM_PROTO = {value: key for key, value in _STATUS_TO_PROTO.items()}


class EventAdminService(event_admin_pb2_grpc.EventAdminServiceServicer):
    """The servicer; blocking MongoDB and RabbitMQ calls run in worker threads."""

    def __init__(
        self, config: MeshConfig, outbox: Outbox | None = None, dead_queues: Sequence[str] = ()
    ) -> None:
        self.outbox = outbox
        self.dead_queues: list[str] = []
        for queue in dead_queues:
            self.add_queue(queue)
        self.dead_letters = DeadLetters(config)

    def add_queue(self, queue: str) -> None:
        """Serve the parking queue of consumer queue `queue` too (idempotent)."""
        queue = queue.removesuffix(DEAD_SUFFIX)
        if queue not in self.dead_queues:
            self.dead_queues.append(queue)

    async def ListOutboxMessages(
        self, request: pb.ListOutboxMessagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOutboxMessagesResponse:
        page_size = _bounded("page_size", request.page_size, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE)
        after = None
        if request.page_token:
            try:
                after = decode_page_token(request.page_token)
            except ValueError as exc:
                raise InvalidArgument([FieldViolation("page_token", "not a token from this API")]) from exc
        if self.outbox is None:
            return pb.ListOutboxMessagesResponse()
        status = _STATUS_FROM_PROTO.get(request.status)
        rows = await asyncio.to_thread(self.outbox.list_rows, status, page_size + 1, after)
        response = pb.ListOutboxMessagesResponse(
            outbox_messages=[_outbox_message(row) for row in rows[:page_size]]
        )
        if len(rows) > page_size:
            response.next_page_token = encode_page_token(rows[page_size - 1])
        return response

    async def ReplayOutboxMessages(
        self, request: pb.ReplayOutboxMessagesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReplayOutboxMessagesResponse:
        if request.all_failed and request.ids:
            raise InvalidArgument([FieldViolation("ids", "must be empty when all_failed is set")])
        if not request.all_failed and not request.ids:
            raise InvalidArgument([FieldViolation("ids", "give ids or set all_failed")])
        if len(request.ids) > MAX_IDS:
            raise InvalidArgument([FieldViolation("ids", f"at most {MAX_IDS}")])
        if self.outbox is None:
            return pb.ReplayOutboxMessagesResponse()
        count = await asyncio.to_thread(self.outbox.replay_failed, list(request.ids), request.all_failed)
        return pb.ReplayOutboxMessagesResponse(replayed_count=count)

    async def ListDeadLetters(
        self, request: pb.ListDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDeadLettersResponse:
        max_count = _bounded("max_count", request.max_count, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE)
        queues = [self._known_queue(request.queue)] if request.queue else self.dead_queues
        response = pb.ListDeadLettersResponse()
        for queue in queues:
            remaining = max_count - len(response.dead_letters)
            if remaining <= 0:
                break
            found = await asyncio.to_thread(self.dead_letters.peek, queue, remaining)
            response.dead_letters.extend(_dead_letter(message) for message in found)
        return response

    async def ReplayDeadLetters(
        self, request: pb.ReplayDeadLettersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReplayDeadLettersResponse:
        if not request.queue:
            raise InvalidArgument([FieldViolation("queue", "required")])
        max_count = _bounded("max_count", request.max_count, MAX_REPLAY, 0)
        if len(request.message_ids) > MAX_IDS:
            raise InvalidArgument([FieldViolation("message_ids", f"at most {MAX_IDS}")])
        queue = self._known_queue(request.queue)
        count = await asyncio.to_thread(self.dead_letters.replay, queue, max_count, list(request.message_ids))
        return pb.ReplayDeadLettersResponse(replayed_count=count)

    def _known_queue(self, queue: str) -> str:
        queue = queue.removesuffix(DEAD_SUFFIX)
        if queue not in self.dead_queues:
            raise NotFound(f"queue {queue!r} is not a consumer queue of this service")
        return queue


# one servicer per server: attached outboxes and consumers accumulate on it
_MOUNTED: weakref.WeakKeyDictionary[MeshServer, EventAdminService] = weakref.WeakKeyDictionary()


def admin_of(server: MeshServer) -> EventAdminService:
    """The EventAdminService of `server`, mounted on first use."""
    servicer = _MOUNTED.get(server)
    if servicer is None:
        servicer = _MOUNTED[server] = EventAdminService(server.config)
        server.add_service(
            SERVICE_NAME, servicer, event_admin_pb2_grpc.add_EventAdminServiceServicer_to_server
        )
    return servicer


def attach_outbox(server: MeshServer, outbox: Outbox) -> EventAdminService:
    """Serve `outbox`'s rows on `server`'s EventAdminService (one outbox per service)."""
    servicer = admin_of(server)
    if servicer.outbox is not None and servicer.outbox is not outbox:
        raise ValueError("a service has one outbox; EventAdminService already serves another")
    servicer.outbox = outbox
    return servicer


def attach_consumer(server: MeshServer, consumer: EventConsumer | str) -> EventAdminService:
    """Serve the dead letters of `consumer` (a consumer, or its full queue name)."""
    servicer = admin_of(server)
    servicer.add_queue(consumer.queue if isinstance(consumer, EventConsumer) else consumer)
    return servicer


def mount_admin(
    server: MeshServer,
    outbox: Outbox | None = None,
    dead_queues: Sequence[str | EventConsumer] = (),
) -> EventAdminService:
    """Serve EventAdminService on `server` for `outbox` and `dead_queues` (consumer
    objects or queue names); idempotent, and merged with what is attached already."""
    servicer = admin_of(server)
    if outbox is not None:
        attach_outbox(server, outbox)
    for queue in dead_queues:
        attach_consumer(server, queue)
    return servicer


def _bounded(field: str, value: int, maximum: int, default: int) -> int:
    if value < 0 or value > maximum:
        raise InvalidArgument([FieldViolation(field, f"must be between 0 and {maximum}")])
    return value or default


def _outbox_message(row: Document) -> pb.OutboxMessage:
    return pb.OutboxMessage(
        id=row["_id"],
        event_type=row.get("type", ""),
        subject=row.get("subject", ""),
        status=_STATUS_TO_PROTO.get(row.get("status", ""), pb.OUTBOX_STATUS_UNSPECIFIED),
        attempts=int(row.get("attempts", 0)),
        last_error=row.get("last_error", ""),
        create_time=optional_timestamp(row.get("created_at")),
        update_time=optional_timestamp(row.get("updated_at")),
        publish_time=optional_timestamp(row.get("published_at")),
    )


def _dead_letter(message: DeadMessage) -> pb.DeadLetter:
    return pb.DeadLetter(
        message_id=message.message_id,
        event_type=message.event_type,
        queue=message.queue,
        death_count=message.attempts,
        death_reason=message.error,
        first_death_time=optional_timestamp(message.failed_at),
        payload_summary=_summary(message.body),
    )


def _summary(body: bytes) -> str:
    try:
        event = from_bytes(body)
    except EventDecodeError:
        return repr(body[:SUMMARY_CHARS])[:SUMMARY_CHARS]
    try:
        text = json_format.MessageToJson(event, indent=None)
    except (TypeError, KeyError, json_format.Error):  # payload type not in this process
        event.ClearField("data")
        text = json_format.MessageToJson(event, indent=None)
    return text[:SUMMARY_CHARS]
