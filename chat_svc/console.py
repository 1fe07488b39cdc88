"""The console chat client behind `mesh chat --room R --user U`: prints recent
history, then live messages; sends each typed line; reconnects with resume
positions by itself (to the next --target when several are given)."""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from datetime import datetime

import grpc
from switchboard.chat.v1 import chat_service_pb2 as pb

from chat_svc.client import ChatClient, Follower
from mesh import local
from mesh.auth import mint_token
from mesh.topology import service

HISTORY = 20
ROOM_AUDIENCE = pb.Audience(kind=pb.AUDIENCE_KIND_ROOM)
DEFAULT_TARGET = f"127.0.0.1:{service('chat').grpc_port}"


def _line(message: pb.Message) -> str:
    when = datetime.fromtimestamp(message.create_time.seconds).strftime("%H:%M:%S")
    who = message.sender_id or "*system*"
    return f"[{when}] #{message.sequence} {who}: {message.body}"


def _friendly(error: grpc.RpcError) -> str:
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    hints = {
        grpc.StatusCode.PERMISSION_DENIED: "you are not a member of this room (ask its owner to add you)",
        grpc.StatusCode.NOT_FOUND: "no such room",
        grpc.StatusCode.UNAUTHENTICATED: "missing or expired token (mint one: mesh token)",
        grpc.StatusCode.UNAVAILABLE: "the chat service is unreachable; retrying in the background",
        grpc.StatusCode.INVALID_ARGUMENT: "the message was refused",
    }
    hint = hints.get(code, "") if code is not None else ""
    return f"error: {hint or details} ({code.name if code else 'unknown'}: {details})"


def run_console(room_id: str, user: str, targets: list[str], token: str) -> int:
    """Interactive loop; returns the process exit code."""
    client = ChatClient(targets[0], token)
    try:
        history = client.history(room_id, HISTORY)
    except grpc.RpcError as exc:
        print(_friendly(exc), file=sys.stderr)
        return 1
    for message in history:
        print(_line(message))
    # Always a position, 0 for an empty room: without one the stream starts at "now",
    # and a message sent before it is open would never be shown.
    positions = {room_id: history[-1].sequence if history else 0}
    printed = threading.Lock()

    def show(message: pb.Message) -> None:
        with printed:
            print(_line(message), flush=True)

    follower = Follower(
        targets=targets, token=token, room_ids=[room_id], positions=positions, on_message=show
    )
    follower.start()
    print(f"-- {user} in room {room_id}; type to send, Ctrl-D to quit --", flush=True)
    try:
        for raw in sys.stdin:
            text = raw.rstrip("\n")
            if text.strip():
                _send(targets, token, room_id, text)
    except KeyboardInterrupt:
        pass
    finally:
        follower.stop()
        client.close()
    return 0


def _send(targets: list[str], token: str, room_id: str, text: str) -> None:
    """One client message id for all attempts, so a retry on another replica never doubles it."""
    client_message_id = uuid.uuid4().hex
    for target in targets:
        client = ChatClient(target, token)
        try:
            # Said explicitly: an unset audience is refused, never taken as the whole room.
            client.send(room_id, text, client_message_id=client_message_id, audience=ROOM_AUDIENCE)
            return
        except grpc.RpcError as exc:
            retryable = isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.UNAVAILABLE
            if not retryable or target == targets[-1]:
                print(_friendly(exc), file=sys.stderr)
                return
        finally:
            client.close()


def main(args: argparse.Namespace) -> int:
    """`mesh chat`: --room, --user, --target (repeatable), --token (default: a dev token)."""
    try:
        token = args.token or _dev_token(args.user)
    except (local.SigningKeyNotFound, ValueError) as exc:
        print(f"mesh chat: {exc}", file=sys.stderr)
        return 2
    return run_console(args.room, args.user, args.target or [DEFAULT_TARGET], token)


def _dev_token(user: str) -> str:
    """A customer token signed with the local mesh's key (found as `mesh token` finds it)."""
    return mint_token(local.signing_key().read_bytes(), user, ["customer"])
