"""Contact-centre channels (voice, chat, tickets) as work queues. Every user
message is queued by the outbox, in the transaction that stores it, as its
channel's work item (`chat.channel.<name>.received.v1`); each channel has its
own durable quorum queue `<queue_prefix>chat.channel.<name>`, consumed by
competing workers on every replica: prefetch 1 (a worker holds one item at a
time), acked only after the effect committed, so a worker killed mid-item
leaves it to another. The inbox makes a redelivered item change nothing.

What a worker does, small and observable: a routing record per message (which
worker handled it, when) in `channel_work`; a ticket also gets the next ticket
number and a SYSTEM message on the TICKETS channel answering it, addressed to
no one the ticket itself did not reach."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence

from switchboard.events.v1 import chat_events_pb2 as ce

from chat_svc import events
from chat_svc.config import ChatConfig
from chat_svc.handlers import ChatHandlers, PostSystemMessage
from chat_svc.model import AudienceKind, Channel
from mesh.admin import attach_consumer
from mesh.bus import Backoff, BatchHandler, ConsumerTopology, EventConsumer, declare_topology
from mesh.events import Event, unpack
from mesh.inbox import Inbox
from mesh.server import MeshServer
from mesh.store import UnitOfWork

log = logging.getLogger(__name__)

TICKET_COUNTER = "tickets"


def queue_name(channel: Channel) -> str:
    """The channel's queue, after the queue prefix: `chat.channel.voice`."""
    return f"chat.channel.{channel.name.lower()}"


class ChannelWorker:
    """Applies one channel's work items (on its consumer's thread)."""

    def __init__(self, handlers: ChatHandlers, channel: Channel, worker_id: str) -> None:
        self.handlers = handlers
        self.channel = channel
        self.worker_id = worker_id

    def apply(self, uow: UnitOfWork, event: Event) -> None:
        """Inside the inbox's transaction: the routing record, and a ticket's answer."""
        message = unpack(event, events.CHANNEL_WORK[self.channel]).message
        record = {
            "_id": message.message_id,
            "channel": int(self.channel),
            "room_id": message.room_id,
            "sequence": message.sequence,
            "sender_id": message.sender_id,
            "event_id": event.id,
            "worker_id": self.worker_id,
            "handled_at": time.time(),
        }
        if self.channel == Channel.TICKETS:
            number = self.handlers.repo.next_number(TICKET_COUNTER, uow.session)
            record["ticket_number"] = number
            self.handlers.post_system_message(_ticket_answer(event, message, number), uow)
        self.handlers.repo.record_channel_work(record, uow.session)
        log.debug(  # the record above is the durable trace; a log line per chat message is noise
            "channel %s: message %s of room %s handled by %s",
            self.channel.name,
            message.message_id,
            message.room_id,
            self.worker_id,
        )


def _ticket_answer(event: Event, ticket: ce.ChatMessagePosted, number: int) -> PostSystemMessage:
    """The answer reaches exactly who the ticket reached: the room for a room-wide
    ticket, else its recipients and its sender."""
    if ticket.audience.kind == AudienceKind.ROOM:
        audience, recipients = AudienceKind.ROOM, []
    else:
        audience = AudienceKind.MEMBERS
        recipients = list(dict.fromkeys([ticket.sender_id, *ticket.audience.recipient_ids]))
    return PostSystemMessage(
        room_id=ticket.room_id,
        event_id=event.id,
        event_type=event.type,
        body=f"Ticket #{number} received (message #{ticket.sequence}); we will answer here.",
        channel=Channel.TICKETS,
        audience=audience,
        recipient_ids=recipients,
    )


def _delayed(handle_batch: BatchHandler, delay_s: float) -> BatchHandler:
    """Hold each item `delay_s` before its transaction opens (the consumer keeps it
    unacked meanwhile): lets operators and chaos tests kill a worker mid-item."""

    def handle(items: Sequence[Event]) -> Sequence[BaseException | None]:
        time.sleep(delay_s)
        return handle_batch(items)

    return handle


def channel_topology(config: ChatConfig, channel: Channel) -> ConsumerTopology:
    """The channel's queue on the events exchange, bound to its work type only."""
    return ConsumerTopology(
        queue=f"{config.queue_prefix}{queue_name(channel)}",
        exchange=config.events_exchange,
        patterns=(events.CHANNEL_WORK_TYPES[channel],),
        retry_delays_ms=tuple(config.bus_retry_delays_ms),
    )


class ChannelQueues:
    """A start-up Worker declaring every channel's queue, workers here or not: a
    work item published before any worker ever connected waits in its queue
    instead of being dropped by the exchange. Retries in the background while
    the broker is away."""

    name = "chat-channel-queues"

    def __init__(self, config: ChatConfig) -> None:
        self.config = config
        self.declared = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)

    def _run(self) -> None:
        backoff = Backoff(self.config.bus_reconnect_max_s)
        topologies = [channel_topology(self.config, channel) for channel in Channel]
        while not self._stopping.is_set():
            try:
                declare_topology(self.config, topologies)
            except Exception as exc:  # pika's connector errors are not all AMQPError
                log.warning("channel queues not declared yet: %r", exc)
                self._stopping.wait(backoff.next())
                continue
            self.declared.set()
            return


def install(server: MeshServer, config: ChatConfig, handlers: ChatHandlers) -> list[EventConsumer]:
    """Every channel's queue, and `chat_channel_workers` competing consumers per
    channel on this replica."""
    server.add_worker(ChannelQueues(config))
    inbox = Inbox(server.store, config)
    replica = f"{socket.gethostname()}:{os.getpid()}"
    consumers = []
    for channel in Channel:
        topology = channel_topology(config, channel)
        for index in range(config.chat_channel_workers):
            worker = ChannelWorker(handlers, channel, f"{replica}/{channel.name.lower()}/{index}")
            handle_batch = inbox.batch_handler(worker.apply)
            if config.chat_channel_delay_s > 0:
                handle_batch = _delayed(handle_batch, config.chat_channel_delay_s)
            consumer = EventConsumer(
                config,
                queue_name(channel),
                topology.patterns,
                handle_batch=handle_batch,
                queue=topology.queue,
                prefetch=1,
            )
            server.add_worker(consumer)
            consumers.append(consumer)
        attach_consumer(server, topology.queue)  # its dead letters, for operators
    return consumers
