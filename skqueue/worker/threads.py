"""Running plain (sync) task functions off the event loop.

A fixed set of threads takes calls from one queue. Finished calls are handed back in batches: the first
thread to finish while no hand-back is pending schedules one ``call_soon_threadsafe``, and everything that
finishes before the loop runs it rides along. Under load that is one loop wake-up per batch instead of one
per task, which is most of the cost of a short sync task.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

_STOP = object()


class ThreadPool:
    def __init__(self, size: int, name: str = "skqueue-sync") -> None:
        self.size = max(size, 1)
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done: deque[tuple[asyncio.Future[Any], bool, Any]] = deque()
        self._lock = threading.Lock()
        self._handback_pending = False
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure_started(self) -> None:
        if self._threads:
            return
        self._loop = asyncio.get_running_loop()
        for index in range(self.size):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    async def run(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in a pool thread. Cancelling the caller abandons the call (a thread cannot be
        interrupted); its outcome is then discarded."""
        self._ensure_started()
        assert self._loop is not None
        future: asyncio.Future[Any] = self._loop.create_future()
        self._jobs.put((fn, future))
        return await future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            fn, future = job
            try:
                outcome: tuple[asyncio.Future[Any], bool, Any] = (future, True, fn())
            except BaseException as exc:
                outcome = (future, False, exc)
            self._done.append(outcome)
            with self._lock:
                if self._handback_pending:
                    continue
                self._handback_pending = True
            assert self._loop is not None
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                self._loop.call_soon_threadsafe(self._hand_back)

    def _hand_back(self) -> None:
        with self._lock:
            self._handback_pending = False
        while self._done:
            future, ok, value = self._done.popleft()
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def shutdown(self) -> None:
        """Let the threads exit once their current call returns (they are daemons, so a stuck call
        never blocks process exit)."""
        for _ in self._threads:
            self._jobs.put(_STOP)
        self._threads.clear()
