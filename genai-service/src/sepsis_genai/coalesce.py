"""Identical calls in flight share one task: the first caller starts it, later ones join it.

A task leaves the table when it finishes, so a call made after that starts afresh. Callers
await the task through `asyncio.shield`, so one caller's cancellation does not end the call
for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class InFlight(Generic[T]):
    """The running task of each key."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[T]] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, key: str) -> asyncio.Task[T] | None:
        """The task running for `key`, if one is."""
        return self._tasks.get(key)

    def start(self, key: str, work: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run `work` as the task of `key` until it finishes."""
        task = asyncio.create_task(work, name=name)
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._tasks.pop(key, None))
        return task

    def cancel_all(self) -> None:
        """Cancel every running task (on shutdown)."""
        for task in list(self._tasks.values()):
            task.cancel()
