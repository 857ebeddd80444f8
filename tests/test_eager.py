"""eager.start: run a coroutine at once, and make a task of it only if it waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from switch import eager

pytestmark = pytest.mark.timeout(30)


class Boom(Exception):
    pass


async def test_a_coroutine_that_never_waits_runs_to_the_end_at_once() -> None:
    steps: list[str] = []

    async def inner() -> int:
        steps.append("inner")
        return 41

    async def handler() -> int:
        steps.append("start")
        value = await inner() + 1
        steps.append(f"end {value}")
        return value

    tasks: set[asyncio.Task[Any]] = set()
    assert eager.start(handler(), tasks) is None
    assert steps == ["start", "inner", "end 42"]  # before the loop ran again
    assert tasks == set()


async def test_awaiting_a_finished_future_is_not_waiting() -> None:
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    future.set_result("ready")
    seen: list[str] = []

    async def handler() -> None:
        seen.append(await future)

    tasks: set[asyncio.Task[Any]] = set()
    assert eager.start(handler(), tasks) is None
    assert seen == ["ready"] and tasks == set()


@pytest.mark.parametrize("delay", [0, 0.01])
async def test_a_coroutine_that_waits_is_finished_by_a_task(delay: float) -> None:
    steps: list[str] = []

    async def handler() -> str:
        steps.append("before")
        await asyncio.sleep(delay)
        steps.append("after")
        await asyncio.sleep(delay)  # and again
        return "result"

    tasks: set[asyncio.Task[Any]] = set()
    task = eager.start(handler(), tasks)
    assert isinstance(task, asyncio.Task)
    assert steps == ["before"]  # the first step ran at once, the rest waits
    assert tasks == {task}
    assert await asyncio.wait_for(task, 5) == "result"
    assert steps == ["before", "after"]
    await asyncio.sleep(0)  # done callbacks run on the next iteration
    assert tasks == set()


async def test_the_awaited_value_reaches_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    first: asyncio.Future[int] = loop.create_future()
    second: asyncio.Future[int] = loop.create_future()

    async def handler() -> int:
        return await first * 10 + await second

    tasks: set[asyncio.Task[Any]] = set()
    task = eager.start(handler(), tasks)
    assert task is not None
    loop.call_later(0.01, first.set_result, 4)
    loop.call_later(0.02, second.set_result, 2)
    assert await asyncio.wait_for(task, 5) == 42


async def test_an_exception_raised_by_an_awaited_future_reaches_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    caught: list[BaseException] = []

    async def handler() -> str:
        try:
            await future
        except Boom as exc:
            caught.append(exc)
            return "handled"
        return "not raised"

    task = eager.start(handler(), set())
    assert task is not None
    future.set_exception(Boom("from the future"))
    assert await asyncio.wait_for(task, 5) == "handled"
    assert [str(exc) for exc in caught] == ["from the future"]


async def test_an_exception_after_the_first_wait_goes_to_the_task() -> None:
    async def handler() -> None:
        await asyncio.sleep(0.01)
        raise Boom("late")

    tasks: set[asyncio.Task[Any]] = set()
    task = eager.start(handler(), tasks)  # does not raise here
    assert task is not None
    with pytest.raises(Boom, match="late"):
        await asyncio.wait_for(task, 5)
    assert isinstance(task.exception(), Boom)
    await asyncio.sleep(0)
    assert tasks == set()


async def test_an_exception_before_the_first_wait_goes_to_the_caller() -> None:
    ran_finally: list[bool] = []

    async def handler() -> None:
        try:
            raise Boom("early")
        finally:
            ran_finally.append(True)
        await asyncio.sleep(0)  # never reached

    tasks: set[asyncio.Task[Any]] = set()
    with pytest.raises(Boom, match="early"):
        eager.start(handler(), tasks)
    assert ran_finally == [True] and tasks == set()


async def test_cancelling_the_task_cancels_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    waited_on: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []

    async def handler() -> None:
        try:
            await waited_on
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("finally")

    tasks: set[asyncio.Task[Any]] = set()
    task = eager.start(handler(), tasks)
    assert task is not None
    await asyncio.sleep(0)  # the task takes over the wait
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert task.cancelled()
    assert seen == ["cancelled", "finally"]
    assert waited_on.cancelled()  # what it waited on was cancelled with it
    await asyncio.sleep(0)
    assert tasks == set()


async def test_cancelling_before_the_task_ever_ran_still_reaches_the_coroutine() -> None:
    seen: list[str] = []

    async def handler() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            seen.append("finally")

    task = eager.start(handler(), set())
    assert task is not None
    task.cancel()  # at once: the task has not taken a step yet
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert seen == ["finally"]


async def test_a_coroutine_may_swallow_the_cancellation_and_finish() -> None:
    async def handler() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # cleanup that waits, after the cancel
            return "cleaned up"
        return "slept"

    task = eager.start(handler(), set())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    assert await asyncio.wait_for(task, 5) == "cleaned up"


async def test_many_coroutines_at_once_each_get_their_result() -> None:
    tasks: set[asyncio.Task[Any]] = set()

    async def handler(n: int) -> int:
        if n % 2:
            await asyncio.sleep(0.001 * n)
        return n * n

    started = [eager.start(handler(n), tasks) for n in range(20)]
    assert [t is None for t in started] == [n % 2 == 0 for n in range(20)]
    waiting = [t for t in started if t is not None]
    assert tasks == set(waiting)
    results = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert results == [n * n for n in range(1, 20, 2)]
    await asyncio.sleep(0)
    assert tasks == set()


async def test_a_task_is_needed_only_when_waiting_so_start_needs_no_loop_otherwise() -> None:
    # No running loop is needed for a coroutine that finishes at once.
    def outside_the_loop() -> tuple[object, list[str]]:
        seen: list[str] = []

        async def handler() -> None:
            seen.append("ran")

        return eager.start(handler(), set()), seen

    result, seen = await asyncio.get_running_loop().run_in_executor(None, outside_the_loop)
    assert result is None and seen == ["ran"]


# -- the first step and the current task -------------------------------------------------


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="BUG: eager.start steps the coroutine before any task exists, so "
    "asyncio.timeout() entered before the first wait raises RuntimeError when start() "
    "is called from a plain loop callback (Python 3.12's eager tasks run it in the task)",
)
async def test_a_timeout_entered_before_the_first_wait_works_from_a_callback() -> None:
    async def handler() -> str:
        async with asyncio.timeout(5):
            await asyncio.sleep(0.01)
        return "ok"

    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[object] = loop.create_future()

    def callback() -> None:  # like a transport's datagram_received: no current task
        try:
            outcome.set_result(eager.start(handler(), set()))
        except Exception as exc:
            outcome.set_result(exc)

    loop.call_soon(callback)
    task = await asyncio.wait_for(outcome, 5)
    assert isinstance(task, asyncio.Task), task
    assert await asyncio.wait_for(task, 5) == "ok"


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="BUG: eager.start steps the coroutine in the caller's task, so an "
    "asyncio.timeout() entered before the first wait cancels the caller when it expires",
)
async def test_a_timeout_entered_before_the_first_wait_belongs_to_the_new_task() -> None:
    async def handler() -> str:
        async with asyncio.timeout(0.02):
            await asyncio.sleep(0.5)
        return "not timed out"

    async def caller() -> tuple[str, asyncio.Task[Any] | None]:
        task = eager.start(handler(), set())
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            return "caller cancelled", task
        return "caller ran on", task

    outcome, task = await asyncio.wait_for(asyncio.get_running_loop().create_task(caller()), 5)
    assert task is not None
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done
    assert outcome == "caller ran on"
    assert isinstance(task.exception(), TimeoutError)
