"""mesh.batching.GroupCommit without a database: a batch that fails with any
error is written one by one, each caller gets its own outcome, and the writer
thread keeps serving."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

import pytest

from mesh.batching import GroupCommit

BOUND_S = 10.0  # a dead writer thread fails the test instead of hanging it


def _doubler(batches: list[list[int]]) -> GroupCommit[int, int]:
    def write_batch(commands: list[int]) -> list[int]:
        batches.append(commands)
        if 3 in commands:
            raise ValueError("not a database error")
        return [c * 2 for c in commands]

    def write_one(command: int) -> int:
        if command == 3:
            raise KeyError(command)
        return command * 2

    return GroupCommit("doubler", write_batch, write_one, max_batch=10)


def test_a_batch_failing_with_any_error_is_written_one_by_one_with_each_callers_outcome() -> None:
    batches: list[list[int]] = []
    batch = [(command, Future[int]()) for command in (1, 3, 4)]
    _doubler(batches).commit(batch)

    assert batches == [[1, 3, 4]]
    assert batch[0][1].result(timeout=0) == 2 and batch[2][1].result(timeout=0) == 8
    with pytest.raises(KeyError):
        batch[1][1].result(timeout=0)


def test_the_writer_keeps_serving_after_a_failed_batch_and_a_failing_hook() -> None:
    batches: list[list[int]] = []
    writer = _doubler(batches)
    hooked: list[int] = []

    def failing_hook() -> None:
        hooked.append(1)
        raise ZeroDivisionError

    writer.before_batch = failing_hook

    async def run() -> tuple[int, int]:
        first = [writer.submit(c) for c in (3, 5)]  # queued before the thread starts: one batch
        await writer.start()
        with pytest.raises(KeyError):
            await asyncio.wait_for(asyncio.wrap_future(first[0]), BOUND_S)
        answers = (
            await asyncio.wait_for(asyncio.wrap_future(first[1]), BOUND_S),
            await asyncio.wait_for(writer.call(6), BOUND_S),
        )
        await writer.stop()
        return answers

    assert asyncio.run(run()) == (10, 12)
    assert hooked  # the hook ran, failed, and the batches still went ahead
    assert batches[0] == [3, 5]


def test_a_caller_that_gave_up_before_its_write_is_left_out_and_the_writer_keeps_serving() -> None:
    written: list[int] = []

    def write_batch(commands: list[int]) -> list[int]:
        written.extend(commands)
        return [c * 2 for c in commands]

    def write_one(command: int) -> int:
        written.append(command)
        return command * 2

    writer = GroupCommit("doubler", write_batch, write_one, max_batch=10)

    async def run() -> tuple[int, int]:
        gone = writer.submit(7)
        gone.cancel()  # the RPC was cancelled while its command waited in the queue
        kept = writer.submit(8)
        await writer.start()
        answers = (
            await asyncio.wait_for(asyncio.wrap_future(kept), BOUND_S),
            await asyncio.wait_for(writer.call(9), BOUND_S),
        )
        await writer.stop()
        return answers

    assert asyncio.run(run()) == (16, 18)
    assert written == [8, 9]
