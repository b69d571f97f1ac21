"""Running plain (sync) task functions off the event loop.

A fixed set of threads takes calls from one queue. Finished calls are handed back in batches: the first
thread to finish while no hand-back is pending schedules one ``call_soon_threadsafe``, and everything that
finishes before the loop runs it rides along. Under load that is one loop wake-up per batch instead of one
per task, which is most of the cost of a short sync task.

A running call can be interrupted (time limits, revoke with terminate): an exception is raised inside its
thread at the next Python bytecode (``PyThreadState_SetAsyncExc``, as dramatiq does). A call blocked in C
(``time.sleep``, a socket read) sees it only when that returns; a call that is abandoned meanwhile gets a
replacement thread so the pool keeps its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

_STOP = object()


class Job:
    """One call submitted to the pool."""

    __slots__ = ("_lock", "abandoned", "cancelled", "fn", "future", "running", "thread_id")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future
        self.thread_id: int | None = None
        self.running = False
        self.cancelled = False  # given up before it started: never run it
        self.abandoned = False  # given up while running: its thread leaves the pool when it returns
        self._lock = threading.Lock()

    def interrupt(self, exc_type: type[BaseException]) -> bool:
        """Raise ``exc_type`` inside the thread running this call. False if it is not running."""
        with self._lock:
            if not self.running or self.thread_id is None:
                return False
            _set_async_exc(self.thread_id, exc_type)
            return True

    def _start(self) -> bool:
        with self._lock:
            if self.cancelled:
                return False
            self.thread_id = threading.get_ident()
            self.running = True
            return True

    def _finish(self) -> None:
        with self._lock:
            self.running = False
            if self.thread_id is not None:
                _set_async_exc(self.thread_id, None)  # drop an interrupt that arrived too late


def _set_async_exc(thread_id: int, exc_type: type[BaseException] | None) -> None:
    obj = ctypes.py_object(exc_type) if exc_type is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), obj)


class ThreadPool:
    def __init__(self, size: int, name: str = "skqueue-sync") -> None:
        self.size = max(size, 1)
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done: deque[tuple[Job, bool, Any]] = deque()
        self._lock = threading.Lock()
        self._handback_pending = False
        self._spawned = 0
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure_started(self) -> None:
        if self._threads:
            return
        self._loop = asyncio.get_running_loop()
        for _ in range(self.size):
            self._spawn()

    def _spawn(self) -> None:
        self._spawned += 1
        thread = threading.Thread(target=self._work, name=f"{self.name}-{self._spawned}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def submit(self, fn: Callable[[], Any]) -> Job:
        self._ensure_started()
        assert self._loop is not None
        job = Job(fn, self._loop.create_future())
        self._jobs.put(job)
        return job

    def abandon(self, job: Job) -> None:
        """Give up on a call (time limit, revoke with terminate). Not started yet: it never runs. Running:
        a new thread takes its place, and the stuck one leaves the pool when (if) the call returns."""
        with job._lock:
            job.cancelled = True
            job.abandoned = job.running
        if job.abandoned:
            self._spawn()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get()
                if job is _STOP:
                    return
                self._run(job)
                if job.abandoned:
                    return
            except BaseException:
                continue

    def _run(self, job: Job) -> None:
        if not job._start():
            return
        try:
            outcome: tuple[Job, bool, Any] = (job, True, job.fn())
        except BaseException as exc:
            outcome = (job, False, exc)
        while True:  # an interrupt landing between the call's return and _finish is raised here, once
            try:
                job._finish()
                break
            except BaseException:
                continue
        self._done.append(outcome)
        with self._lock:
            if self._handback_pending:
                return
            self._handback_pending = True
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._hand_back)

    def _hand_back(self) -> None:
        with self._lock:
            self._handback_pending = False
        while self._done:
            job, ok, value = self._done.popleft()
            if job.future.done():
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    def shutdown(self) -> None:
        """Let the threads exit once their current call returns (they are daemons, so a stuck call
        never blocks process exit)."""
        for _ in self._threads:
            self._jobs.put(_STOP)
        self._threads.clear()
