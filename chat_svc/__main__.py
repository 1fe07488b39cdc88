"""Start chat_svc: `python -m chat_svc`."""

from __future__ import annotations

import asyncio

from switchboard.chat.v1 import chat_service_pb2_grpc

import mesh.outbox
from chat_svc import channels
from chat_svc.config import ChatConfig
from chat_svc.convert import message_to_proto
from chat_svc.fanout import FanoutPublisher, FanoutSubscriber
from chat_svc.handlers import ChatHandlers
from chat_svc.hub import Hub
from chat_svc.model import Message
from chat_svc.presence import PresenceTracker
from chat_svc.repository import ensure_indexes
from chat_svc.service import ChatService
from chat_svc.sessions import PATTERNS, SessionEventHandler
from mesh import inbox
from mesh.events import Event
from mesh.server import MeshServer

SERVICE_NAME = "switchboard.chat.v1.ChatService"


class FanoutWorker:
    """Starts and stops the fan-out publisher, this replica's queue, the hub and presence."""

    name = "chat-fanout"

    def __init__(
        self, publisher: FanoutPublisher, subscriber: FanoutSubscriber, hub: Hub, presence: PresenceTracker
    ) -> None:
        self.publisher = publisher
        self.subscriber = subscriber
        self.hub = hub
        self.presence = presence

    async def start(self) -> None:
        await self.hub.start()
        self.publisher.start()
        self.subscriber.start()
        await self.presence.start()

    async def stop(self) -> None:
        await self.presence.stop()
        await self.hub.stop()
        await asyncio.to_thread(self.subscriber.stop)
        await asyncio.to_thread(self.publisher.close)


def build(config: ChatConfig) -> MeshServer:
    server = MeshServer(config)
    store = server.use_store()
    server.use_broker()
    # domain events (rooms, members, messages, presence) leave through the outbox;
    # messages and presence also go straight to the fan-out exchange after commit
    chat_outbox = mesh.outbox.install(server)
    publisher = FanoutPublisher(config)
    hub_ref: list[Hub] = []

    def on_posted(message: Message, event: Event) -> None:
        """After commit: local listeners at once, other replicas through the exchange."""
        hub_ref[0].deliver_local_threadsafe(message_to_proto(message))
        publisher.publish(message.room_id, event)

    handlers = ChatHandlers(store, chat_outbox, on_posted)
    subscriber = FanoutSubscriber(
        config, lambda room_id, event: hub_ref[0].deliver_threadsafe(room_id, event)
    )
    hub = Hub(subscriber, handlers.repo, config.chat_gap_check_s, config.chat_membership_check_s)
    hub_ref.append(hub)
    presence = PresenceTracker(
        store, chat_outbox, publisher, config.chat_presence_ttl_s, config.chat_presence_heartbeat_s
    )
    server.add_dependency("chat-fanout", subscriber.healthy)
    server.add_worker(IndexWorker(handlers))
    server.add_worker(FanoutWorker(publisher, subscriber, hub, presence))
    sessions = SessionEventHandler(handlers)
    # through mesh.inbox (retention, duplicates told apart from the effect's own
    # conflicts); rows of the service's former private inbox are adopted at start-up
    inbox.consume(
        server, config.chat_inbox_queue, PATTERNS, sessions.handle, legacy_time_field="processed_at"
    )
    channels.install(server, config, handlers)
    servicer = ChatService(config, handlers, hub, presence)
    server.add_service(SERVICE_NAME, servicer, chat_service_pb2_grpc.add_ChatServiceServicer_to_server)
    return server


class IndexWorker:
    """Creates the collections' indexes once at start-up (idempotent)."""

    name = "chat-indexes"

    def __init__(self, handlers: ChatHandlers) -> None:
        self.handlers = handlers

    async def start(self) -> None:
        await asyncio.to_thread(ensure_indexes, self.handlers.store.db)
        await asyncio.to_thread(self.handlers.outbox.ensure_indexes)

    async def stop(self) -> None:
        return None


def main() -> None:
    build(ChatConfig()).run()


if __name__ == "__main__":
    main()
