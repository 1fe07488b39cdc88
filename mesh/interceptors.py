"""The server interceptor chain. For each RPC of a Switchboard service, in order:
request and trace ids → deadline check → authentication → authorisation →
handler → error mapping (no exception escapes as UNKNOWN) → log line and metrics.
Health and reflection pass through untouched (they are open and must stay cheap)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status
from prometheus_client import Counter, Gauge, Histogram
from pymongo.errors import ConnectionFailure, PyMongoError

from mesh.auth import OPEN_SERVICES, AccessPolicy, Principal, TokenVerifier, set_principal
from mesh.errors import DeadlineExceeded, MeshError, Unauthenticated, Unavailable
from mesh.telemetry import new_traceparent, request_id_var, traceparent_var
from mesh.tls import peer_spiffe_id

log = logging.getLogger("mesh.rpc")

RPC_HANDLED = Counter(
    "grpc_server_handled_total", "RPCs completed", ["grpc_service", "grpc_method", "grpc_code"]
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "RPC handling time",
    ["grpc_service", "grpc_method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RPC_IN_FLIGHT = Gauge("grpc_server_in_flight", "RPCs being handled", ["grpc_service"])

Handler = Callable[[Any, grpc.aio.ServicerContext], Any]


class MeshInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every unary and server-streaming handler of the service's own RPCs."""

    def __init__(
        self,
        policy: AccessPolicy,
        verifier: TokenVerifier | None,
        default_deadline_s: float,
    ) -> None:
        self._policy = policy
        self._verifier = verifier
        self._default_deadline_s = default_deadline_s

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        service = method.split("/")[1] if method.count("/") >= 2 else ""
        if handler is None or service in OPEN_SERVICES:
            return handler
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._server_stream(method, handler.unary_stream),  # type: ignore[arg-type]
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # client/bidi streams: none in the public API

    def _unary(self, method: str, inner: Handler) -> Handler:
        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = _Call(method, context)
            try:
                self._admit(call)
                timeout = _timeout(context, self._default_deadline_s)
                async with asyncio.timeout(timeout):
                    return await inner(request, context)
            except BaseException as exc:
                await call.fail(exc)
            finally:
                call.done()

        return unary

    def _server_stream(self, method: str, inner: Handler) -> Handler:
        async def server_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = _Call(method, context)
            try:
                self._admit(call)
                result = inner(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                else:
                    await result
            except BaseException as exc:
                await call.fail(exc)
            finally:
                call.done()

        return server_stream

    def _admit(self, call: _Call) -> None:
        """Deadline, authentication and authorisation, before the handler runs."""
        remaining = call.context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("deadline already expired")
        if self._policy.is_open(call.method):
            return
        authorization = call.metadata.get("authorization", "")
        workload = None if authorization else self._policy.workload_principal(call.method, call.peer)
        principal = workload or self._authenticate(authorization)
        call.principal = principal
        set_principal(principal)
        self._policy.authorize(call.method, principal)

    def _authenticate(self, authorization: str) -> Principal:
        if self._verifier is None:
            raise Unauthenticated("no token verifier configured")
        if not authorization:
            raise Unauthenticated("missing bearer token")
        return self._verifier.verify(authorization)


def _timeout(context: grpc.aio.ServicerContext, default_s: float) -> float:
    remaining = context.time_remaining()
    return default_s if remaining is None else min(remaining, default_s)


class _Call:
    """Book-keeping of one RPC: ids, timing, outcome, log line and metrics."""

    def __init__(self, method: str, context: grpc.aio.ServicerContext) -> None:
        self.method = method
        self.context = context
        self.service, _, self.rpc = method.lstrip("/").partition("/")
        self.metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        self.request_id = self.metadata.get("x-request-id") or uuid.uuid4().hex
        request_id_var.set(self.request_id)
        traceparent_var.set(new_traceparent(self.metadata.get("traceparent", "")))
        self.principal: Principal | None = None
        self.peer = peer_spiffe_id(context)  # the calling workload under mTLS, else ""
        self.code = grpc.StatusCode.OK
        self.started = time.perf_counter()
        RPC_IN_FLIGHT.labels(self.service).inc()

    async def fail(self, exc: BaseException) -> None:
        """Turn any exception into a definite status (re-raising gRPC's own aborts)."""
        if isinstance(exc, asyncio.CancelledError | GeneratorExit):
            # The client went away (or cancelled): nothing to answer.
            self.code = grpc.StatusCode.CANCELLED
            raise exc
        if _is_abort(exc, self.context):
            self.code = self.context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[assignment]
            raise exc
        error = _as_mesh_error(exc, self.request_id)
        self.code = error.code
        if error.code == grpc.StatusCode.INTERNAL:
            log.error("unhandled error in %s", self.method, exc_info=exc)
        await self.context.abort_with_status(rpc_status.to_status(error.to_status()))  # type: ignore[attr-defined]

    def done(self) -> None:
        elapsed = time.perf_counter() - self.started
        RPC_IN_FLIGHT.labels(self.service).dec()
        RPC_HANDLED.labels(self.service, self.rpc, self.code.name).inc()
        RPC_SECONDS.labels(self.service, self.rpc).observe(elapsed)
        log.info(
            "rpc",
            extra={
                "method": self.method,
                "code": self.code.name,
                "duration_ms": round(elapsed * 1000, 2),
                "user": self.principal.user_id if self.principal else "",
                "peer": self.peer,
            },
        )


def _is_abort(exc: BaseException, context: grpc.aio.ServicerContext) -> bool:
    """grpc.aio signals `context.abort()` with an exception that must propagate."""
    return type(exc).__name__ == "AbortError" or (
        isinstance(exc, Exception) and context.code() not in (None, grpc.StatusCode.OK)
    )


def _as_mesh_error(exc: BaseException, request_id: str) -> MeshError:
    if isinstance(exc, MeshError):
        return exc
    if isinstance(exc, TimeoutError):
        return DeadlineExceeded("deadline exceeded")
    if isinstance(exc, ConnectionFailure):
        return Unavailable("database unavailable, retry later")
    if isinstance(exc, PyMongoError) and exc.has_error_label("TransientTransactionError"):
        return Unavailable("transient database conflict, retry")
    return MeshError(f"internal error (request id {request_id})")
