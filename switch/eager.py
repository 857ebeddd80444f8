"""Run a coroutine at once, and make a task of it only if it has to wait.

A request handler usually finishes without waiting: the memory store and
cached accounts answer at once. A task per request would then cost a loop
iteration and an allocation for nothing, and at thousands of requests per
second that shows. Python 3.12's eager task factory does this natively;
this is the same for 3.11, for one coroutine at a time.

Unlike 3.12's, the first step runs outside any task: code that needs
`asyncio.current_task()` before its first wait (`asyncio.timeout`, and so
redis-py's connection pool) must be started as a plain task instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any


class _Resume:
    """Awaitable that carries on a coroutine already stepped once by hand.

    It passes what the task sends or throws to the coroutine, and what the
    coroutine yields (the future it waits on) to the task: `yield from`,
    written out because the first step has already happened.
    """

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, value = self._coro, self._first
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # CancelledError included: pass it on
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _finish(resume: _Resume) -> Any:
    return await resume


def start(
    coro: Coroutine[Any, Any, Any], tasks: set[asyncio.Task[Any]]
) -> asyncio.Task[Any] | None:
    """Step `coro` now; if it waits, a task (kept in `tasks` until done) finishes it.

    Returns the task, or None when the coroutine finished at once. An
    exception raised before the first wait propagates to the caller.
    """
    try:
        first = coro.send(None)
    except StopIteration:
        return None
    task = asyncio.get_running_loop().create_task(_finish(_Resume(coro, first)))
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task
