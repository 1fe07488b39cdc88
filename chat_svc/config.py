"""Configuration of chat_svc (environment variables, see mesh.config)."""

from __future__ import annotations

from pydantic import Field

from mesh.config import MeshConfig


class ChatConfig(MeshConfig):
    """Settings of chat_svc: limits, stream buffering, fan-out and presence timing."""

    service_name: str = "chat"
    grpc_port: int = 50051

    chat_max_body_bytes: int = Field(4096, gt=0, description="largest message body in UTF-8 bytes")
    chat_max_members: int = Field(1000, gt=1)
    chat_subscriber_buffer: int = Field(1000, gt=0, description="queued events per stream before it ends")
    chat_heartbeat_s: float = Field(15.0, gt=0, description="idle time before a Heartbeat is sent")
    chat_gap_check_s: float = Field(1.0, gt=0, description="per-room latest-sequence check period")
    chat_membership_check_s: float = Field(
        2.0,
        gt=0,
        description="re-read of the listening users' rooms (one query per replica); paces heartbeats",
    )
    chat_replay_batch: int = Field(500, gt=0, description="messages read per replay query")
    chat_presence_ttl_s: float = Field(15.0, gt=0, description="a connection without heartbeat expires")
    chat_presence_heartbeat_s: float = Field(5.0, gt=0)
    chat_fanout_exchange: str = Field("", description="default: <events_exchange>.chat")
    chat_inbox_queue: str = Field("chat.session-events", description="queue name after QUEUE_PREFIX")
    chat_channel_workers: int = Field(
        1, ge=0, description="competing workers per channel queue on this replica (0: none here)"
    )
    chat_channel_delay_s: float = Field(
        0.0, ge=0, description="hold each channel work item this long before handling it (chaos tests, demos)"
    )

    @property
    def fanout_exchange(self) -> str:
        """The topic exchange replicas fan messages out on (routing key room.<id>)."""
        return self.chat_fanout_exchange or f"{self.events_exchange}.chat"
