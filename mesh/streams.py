"""Server-stream helpers shared by the Watch RPCs: response headers sent as soon as a
stream is accepted, and delivery of a resource's numbered changes in order, with an
explicit mark wherever some could not be delivered one by one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc

T = TypeVar("T")


async def send_headers(context: grpc.aio.ServicerContext) -> None:
    """Send the response headers now. Called once the request is validated and
    authorised (an error before this still gets its own HTTP status at the gateway),
    so an idle stream is visibly open at once, not at its first message."""
    await context.send_initial_metadata(())


@dataclass(frozen=True)
class Delivery(Generic[T]):
    """One change to send: `value` at `number`; `coalesced_from` is 0 when it directly
    follows the previous delivery, else the first number it stands in for."""

    number: int
    value: T
    coalesced_from: int = 0


def in_order(after: int, changes: Iterable[tuple[int, T]]) -> Iterator[Delivery[T]]:
    """The changes numbered above `after`, oldest first, each marked when numbers
    between it and the previous one are missing (coalesced). Repeats and older
    numbers are dropped, so a stream never goes backwards."""
    last = after
    for number, value in sorted(changes, key=lambda change: change[0]):
        if number <= last:
            continue
        yield Delivery(number, value, 0 if number == last + 1 else last + 1)
        last = number
