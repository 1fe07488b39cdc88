"""The gRPC servicer of chat_svc: proto in, command out, proto back."""

from __future__ import annotations

from switchboard.chat.v1 import chat_service_pb2_grpc


class ChatService(chat_service_pb2_grpc.ChatServiceServicer):
    """Chat rooms, history and resumable live streams.

    RPCs not built yet answer UNIMPLEMENTED (see the service\'s issue)."""
