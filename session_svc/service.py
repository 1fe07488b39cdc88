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
from mesh.errors import InvalidArgument, PermissionDenied, Violations
from mesh.paging import cursor_field, decode_token, encode_token, fingerprint, page_size
from mesh.protos import optional_timestamp
from session_svc import handlers
from session_svc.handlers import Deps
from session_svc.model import TERMINAL, Change, Session, State

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
                raise PermissionDenied("customers start sessions only for themselves")
            customer_id = principal.user_id
        if customer_id == request.advisor_id:
            raise InvalidArgument([], "advisor_id must differ from the customer")
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
        # Changes are read from the sessions collection: a local commit wakes the
        # stream at once (ChangeNotifier); changes made by other replicas or by the
        # timer runner are seen within `session_watch_poll_s` (≤ 200 ms). Chosen over
        # a per-replica bus queue because the collection is the source of truth, so a
        # stream can never show a state the store does not hold, and it keeps working
        # while the broker is away.
        _validate_id(request.session_id)
        principal = current_principal()
        config = self.deps.config
        session = await asyncio.to_thread(handlers.get_session, request.session_id, principal, self.deps)
        yield _update(session, pb.SESSION_UPDATE_KIND_SNAPSHOT)
        next_tick = time.monotonic() + config.session_watch_tick_s
        while session.state not in TERMINAL:
            await self.deps.notifier.wait(session.id, config.session_watch_poll_s)
            latest = await asyncio.to_thread(self.deps.repository.get, session.id)
            if latest is not None and latest.version > session.version:
                session = latest
                kind = (
                    pb.SESSION_UPDATE_KIND_PAUSE_WARNING
                    if latest.last_change is Change.WARNED
                    else pb.SESSION_UPDATE_KIND_STATE_CHANGED
                )
                yield _update(session, kind)
                next_tick = time.monotonic() + config.session_watch_tick_s
            elif time.monotonic() >= next_tick:
                yield _update(session, pb.SESSION_UPDATE_KIND_TICK)
                next_tick = time.monotonic() + config.session_watch_tick_s

    def _seconds(self, v: Violations, value: int, field: str) -> None:
        limit = self.deps.config.session_max_seconds
        v.check(1 <= value <= limit, field, f"must be 1 to {limit} seconds")


def _update(session: Session, kind: int) -> pb.WatchSessionResponse:
    now = time.time()
    return pb.WatchSessionResponse(
        session=to_proto(session, now),
        kind=kind,  # type: ignore[arg-type]
        remaining_seconds=session.remaining_seconds(now),
        server_time=optional_timestamp(now),
    )


def _validate_id(session_id: str) -> None:
    v = Violations()
    v.text(session_id, "session_id", max_len=MAX_ID)
    v.raise_if_any()
