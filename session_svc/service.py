"""The gRPC servicer of session_svc: proto in, command out, proto back. Blocking
store work runs in threads (`asyncio.to_thread`), never on the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from switchboard.session.v1 import session_service_pb2 as pb
from switchboard.session.v1 import session_service_pb2_grpc

from mesh.auth import current_principal
from mesh.batching import GroupCommit
from mesh.client import on_behalf_of
from mesh.errors import FieldViolation, InvalidArgument, OutOfRange, PermissionDenied, Violations
from mesh.paging import cursor_field, decode_token, encode_token, fingerprint, page_size
from mesh.protos import optional_timestamp
from mesh.streams import Delivery, in_order, send_headers
from session_svc import handlers
from session_svc.handlers import Deps
from session_svc.model import TERMINAL, Change, Session, State
from session_svc.rooms import require_usable_room

MAX_ID = 128
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def to_proto(session: Session, now: float) -> pb.Session:
    return pb.Session(
        id=session.id,
        customer_id=session.customer_id,
        advisor_id=session.advisor_id,
        room_id=session.room_id,
        state=pb.SessionState.Value(f"SESSION_STATE_{session.state.value}"),
        paid_until=optional_timestamp(session.paid_until),
        warn_at=optional_timestamp(session.warn_at if session.state is State.ACTIVE else None),
        expire_at=optional_timestamp(
            session.expire_at if session.state is State.PAUSED_FOR_RECHARGE else None
        ),
        paid_seconds_total=session.paid_seconds_total,
        remaining_seconds=session.remaining_seconds(now),
        version=session.version,
        create_time=optional_timestamp(session.create_time),
        update_time=optional_timestamp(session.update_time),
        end_time=optional_timestamp(session.end_time),
    )


class SessionService(session_service_pb2_grpc.SessionServiceServicer):
    """Paid chat sessions with server-owned pause-for-recharge timers."""

    def __init__(self, deps: Deps, starts: GroupCommit[handlers.StartSession, Session]) -> None:
        self.deps = deps
        self.starts = starts  # group commit of starts

    async def StartSession(self, request: pb.StartSessionRequest, context: Any) -> pb.StartSessionResponse:
        principal = current_principal()
        v = Violations()
        v.text(request.advisor_id, "advisor_id", max_len=MAX_ID)
        v.text(request.room_id, "room_id", max_len=MAX_ID, required=False)
        v.text(request.request_id, "request_id", max_len=MAX_ID)
        v.text(request.customer_id, "customer_id", max_len=MAX_ID, required=principal.is_privileged)
        self._seconds(v, request.prepaid_seconds, "prepaid_seconds")
        v.raise_if_any()
        customer_id = request.customer_id
        if not principal.is_privileged:
            if customer_id and customer_id != principal.user_id:
                raise PermissionDenied(
                    "customers start sessions only for themselves",
                    violations=[FieldViolation("customer_id", "must be empty or the caller")],
                )
            customer_id = principal.user_id
        if customer_id == request.advisor_id:
            raise InvalidArgument([FieldViolation("advisor_id", "must differ from the customer")])
        if request.room_id:
            await asyncio.to_thread(
                require_usable_room,
                self.deps.config.chat_target,
                request.room_id,
                customer_id,
                request.advisor_id,
                request.request_id,
                on_behalf_of(context, self.deps.config.chat_deadline_s),
                self.deps.repository,
            )
        command = handlers.StartSession(
            customer_id, request.advisor_id, request.prepaid_seconds, request.room_id, request.request_id
        )
        session = await self.starts.call(command)
        return pb.StartSessionResponse(session=to_proto(session, time.time()))

    async def GetSession(self, request: pb.GetSessionRequest, context: Any) -> pb.GetSessionResponse:
        _validate_id(request.session_id)
        session = await asyncio.to_thread(
            handlers.get_session, request.session_id, current_principal(), self.deps
        )
        return pb.GetSessionResponse(session=to_proto(session, time.time()))

    async def ListSessions(self, request: pb.ListSessionsRequest, context: Any) -> pb.ListSessionsResponse:
        principal = current_principal()
        v = Violations()
        size = page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, v)
        v.check(request.state in pb.SessionState.values(), "state", "unknown state")
        scope = fingerprint("sessions", principal.user_id, principal.is_privileged, request.state)
        cursor = decode_token(request.page_token, scope, v)
        after_time, after_id = cursor_field(cursor, "t", float, v), cursor_field(cursor, "i", str, v)
        v.raise_if_any()
        state = (
            None
            if request.state == pb.SESSION_STATE_UNSPECIFIED
            else State(pb.SessionState.Name(request.state).removeprefix("SESSION_STATE_"))
        )
        after = (after_time, after_id) if cursor else None
        query = handlers.ListSessions(size, after, state)
        rows, more = await asyncio.to_thread(handlers.list_sessions, query, principal, self.deps)
        now = time.time()
        token = encode_token({"t": rows[-1].create_time, "i": rows[-1].id}, scope) if more and rows else ""
        return pb.ListSessionsResponse(sessions=[to_proto(s, now) for s in rows], next_page_token=token)

    async def Recharge(self, request: pb.RechargeRequest, context: Any) -> pb.RechargeResponse:
        v = Violations()
        v.text(request.session_id, "session_id", max_len=MAX_ID)
        v.text(request.request_id, "request_id", max_len=MAX_ID)
        self._seconds(v, request.seconds, "seconds")
        v.raise_if_any()
        command = handlers.Recharge(request.session_id, request.seconds, request.request_id)
        session = await asyncio.to_thread(handlers.recharge, command, current_principal(), self.deps)
        return pb.RechargeResponse(session=to_proto(session, time.time()))

    async def EndSession(self, request: pb.EndSessionRequest, context: Any) -> pb.EndSessionResponse:
        _validate_id(request.session_id)
        command = handlers.EndSession(request.session_id)
        session = await asyncio.to_thread(handlers.end_session, command, current_principal(), self.deps)
        return pb.EndSessionResponse(session=to_proto(session, time.time()))

    async def WatchSession(
        self, request: pb.WatchSessionRequest, context: Any
    ) -> AsyncIterator[pb.WatchSessionResponse]:
        # Changes are read from the store: a local commit wakes the stream at once
        # (ChangeNotifier); changes made by other replicas or by the timer runner are
        # seen within `session_watch_poll_s` (≤ 200 ms). Each version is delivered
        # from `session_versions` (written with the session in one transaction), so
        # changes quicker than the poll are not folded into one. Chosen over a
        # per-replica bus queue because the store is the source of truth, so a stream
        # never shows a state the store does not hold, and it works while the broker
        # is away.
        v = Violations()
        v.text(request.session_id, "session_id", max_len=MAX_ID)
        v.check(request.after_version >= 0, "after_version", "must not be negative")
        v.raise_if_any()
        principal = current_principal()
        config = self.deps.config
        session = await asyncio.to_thread(handlers.get_session, request.session_id, principal, self.deps)
        if request.after_version > session.version:
            raise OutOfRange(
                [FieldViolation("after_version", f"is beyond the session's version {session.version}")]
            )
        await send_headers(context)
        delivered, shown = request.after_version or session.version, session
        if not request.after_version:
            yield _update(session, pb.SESSION_UPDATE_KIND_SNAPSHOT)
        current, next_tick = session, time.monotonic() + config.session_watch_tick_s
        while True:
            if current.version > delivered:
                for change in await asyncio.to_thread(self._changes, current, delivered):
                    yield _update(change.value, _kind(change.value), change.coalesced_from)
                    delivered, shown = change.number, change.value
                next_tick = time.monotonic() + config.session_watch_tick_s
            if shown.state in TERMINAL:
                return
            if time.monotonic() >= next_tick:
                yield _update(shown, pb.SESSION_UPDATE_KIND_TICK)
                next_tick = time.monotonic() + config.session_watch_tick_s
            await self.deps.notifier.wait(session.id, config.session_watch_poll_s)
            latest = await asyncio.to_thread(self.deps.repository.get, session.id)
            current = latest or current

    def _changes(self, current: Session, delivered: int) -> list[Delivery[Session]]:
        """Versions after `delivered` up to `current`, in order; `current` itself stands
        in (marked coalesced) for versions whose record is missing."""
        versions = self.deps.repository.versions_after(current.id, delivered, current.version)
        found = [(s.version, s) for s in versions]
        if not versions or versions[-1].version != current.version:
            found.append((current.version, current))
        return list(in_order(delivered, found))

    def _seconds(self, v: Violations, value: int, field: str) -> None:
        limit = self.deps.config.session_max_seconds
        v.check(1 <= value <= limit, field, f"must be 1 to {limit} seconds")


def _kind(session: Session) -> int:
    warned = session.last_change is Change.WARNED
    return pb.SESSION_UPDATE_KIND_PAUSE_WARNING if warned else pb.SESSION_UPDATE_KIND_STATE_CHANGED


def _update(session: Session, kind: int, coalesced_from: int = 0) -> pb.WatchSessionResponse:
    now = time.time()
    return pb.WatchSessionResponse(
        session=to_proto(session, now),
        kind=kind,  # type: ignore[arg-type]
        remaining_seconds=session.remaining_seconds(now),
        server_time=optional_timestamp(now),
        coalesced_from_version=coalesced_from,
    )


def _validate_id(session_id: str) -> None:
    v = Violations()
    v.text(session_id, "session_id", max_len=MAX_ID)
    v.raise_if_any()
