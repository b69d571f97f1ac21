"""``skqueue worker --processes P``: P worker processes, each with its own event loop, under a supervisor.

The supervisor runs no tasks. When a child dies it returns the child's deliveries at once (not after the
visibility timeout): the ones that were waiting go back to the head of their queues, and the ones that
were running (read from the child's running-task slots) are requeued, failed with ``WorkerLostError`` or,
after ``worker_poison_deliveries`` deaths, dead-lettered (see :mod:`skqueue.worker.lost`). Then it starts a
replacement. SIGTERM/SIGINT are passed on to the children (warm, then cold on the second signal).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from skqueue.app import App
from skqueue.broker.connections import Connections, open_connections, release_urls, resolve_urls
from skqueue.broker.workers import WorkerRegistry, return_deliveries
from skqueue.worker.lost import LostTasks
from skqueue.worker.outcomes import MetaFactory
from skqueue.worker.run import ChildSpec
from skqueue.worker.slots import RunningSlots

log = logging.getLogger("skqueue.supervisor")

# Builds a child's command line from its index, node name and spec. The resolved broker and result URLs
# go to the child through its environment, not its command line, where any local user could read a
# password in them.
ChildCommand = Callable[[int, str, ChildSpec], list[str]]


@dataclass(slots=True)
class Child:
    index: int
    node: str
    spec: ChildSpec
    slots: RunningSlots
    process: asyncio.subprocess.Process
    started: float = field(default_factory=time.monotonic)


def node_name(template: str, index: int, processes: int) -> str:
    """``w1@host`` -> ``w1-2@host`` for the second of several processes (every process is a node)."""
    if processes == 1:
        return template
    name, at, host = template.partition("@")
    return f"{name}-{index}{at}{host}"


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"signal {-code}"
    return f"exitcode {code}"


class Supervisor:
    def __init__(self, app: App, hostname: str, processes: int, concurrency: int, command: ChildCommand,
                 *, kill_after: float = 60.0) -> None:
        self.app = app
        self.hostname = hostname
        self.processes = max(processes, 1)
        self.concurrency = concurrency
        self.command = command
        self.kill_after = kill_after
        self.children: dict[int, Child] = {}
        self.stopping = False
        self._signals = 0
        self._stopped = asyncio.Event()
        self._kill_at: float | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="skqueue-slots-"))

    async def run(self) -> int:
        urls = resolve_urls(self.app.conf)
        try:
            async with open_connections(self.app.conf, urls, name=f"{self.hostname}-supervisor") as conns:
                self._install_signals()
                for index in range(1, self.processes + 1):
                    await self._start(index, urls.broker, urls.results)
                await self._watch(conns, urls.broker, urls.results)
        finally:
            release_urls(urls)
            for path in self._tmp.iterdir():
                path.unlink(missing_ok=True)
            self._tmp.rmdir()
        return 0

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        self._signals += 1
        self.stopping = True
        if self._kill_at is None:
            self._kill_at = time.monotonic() + self.kill_after
        self._stopped.set()
        log.warning("%s shutdown: passing it on to %d worker process(es)",
                    "Warm" if self._signals == 1 else "Cold", len(self.children))
        for child in self.children.values():
            if child.process.returncode is None:
                child.process.send_signal(signal.SIGTERM)

    async def _start(self, index: int, broker: str, results: str | None) -> None:
        node = node_name(self.hostname, index, self.processes)
        worker_id = f"{node}:{os.getpid()}:{index}:{int(time.time() * 1000)}"
        spec = ChildSpec(worker_id, str(self._tmp / f"slots-{index}"), os.getpid())
        slots = RunningSlots(spec.slots_path, self.concurrency)
        slots.clear()
        env = {**os.environ, "SKQUEUE_BROKER_URL": broker}
        if results:
            env["SKQUEUE_RESULT_BACKEND"] = results
        process = await asyncio.create_subprocess_exec(*self.command(index, node, spec), env=env,
                                                       stdin=asyncio.subprocess.DEVNULL)
        self.children[index] = Child(index, node, spec, slots, process)
        if self.stopping:  # the signal arrived while this child was being started
            process.send_signal(signal.SIGTERM)
        log.info("Started worker process %d (%s, pid %d)", index, node, process.pid)

    async def _watch(self, conns: Connections, broker: str, results: str | None) -> None:
        registry = WorkerRegistry(conns.broker.client, conns.broker.keys, ttl=self.app.conf.worker_lost_timeout)
        lost = LostTasks(self.app, conns.broker, conns.results, registry, MetaFactory(self.app.conf, self.hostname),
                         max_deliveries=self.app.conf.worker_poison_deliveries)
        backoff = {index: 0.1 for index in self.children}
        while self.children:
            waits = {asyncio.ensure_future(c.process.wait()): c for c in self.children.values()}
            signalled = asyncio.ensure_future(self._stopped.wait())
            done, pending = await asyncio.wait({*waits, signalled}, return_when=asyncio.FIRST_COMPLETED,
                                               timeout=self._time_left())
            for future in pending:
                future.cancel()
            if not done:
                self._kill_stragglers()
                continue
            for future in done & waits.keys():
                child = waits[future]
                await self._on_exit_safely(child, registry, lost)
                del self.children[child.index]
                if not self.stopping:
                    backoff[child.index] = await self._restart_delay(child, backoff[child.index])
                    await self._start(child.index, broker, results)

    def _time_left(self) -> float | None:
        """Until the children must be gone (None: not stopping)."""
        if self._kill_at is None:
            return None
        return max(self._kill_at - time.monotonic(), 0.0)

    async def _on_exit_safely(self, child: Child, registry: WorkerRegistry, lost: LostTasks) -> None:
        try:
            await self._on_exit(child, registry, lost)
        except Exception:  # Redis down, say: the reaper or the visibility timeout returns them later
            log.exception("Could not return the deliveries of %s now; another worker will after it is "
                          "noticed dead", child.node)

    def _kill_stragglers(self) -> None:
        for child in self.children.values():
            if child.process.returncode is None:
                log.error("Worker process %s did not stop in time: killing it", child.node)
                child.process.kill()

    async def _on_exit(self, child: Child, registry: WorkerRegistry, lost: LostTasks) -> None:
        code = child.process.returncode or 0
        running = child.slots.running()
        if code == 0 and not running:
            log.info("Worker process %s exited", child.node)
        else:
            log.error("Worker process %s (pid %d) died: %s", child.node, child.process.pid, describe_exit(code))
        moved, crashed = await return_deliveries(lost.broker, registry, child.spec.worker_id, running)
        if moved:
            log.warning("Returned %d delivery(ies) of %s to their queues", moved, child.node)
        await lost.settle(child.spec.worker_id, crashed, describe_exit(code))
        await registry.forget(child.spec.worker_id)
        child.slots.close()

    async def _restart_delay(self, child: Child, previous: float) -> float:
        """Back off when children die right after starting (a crash at import, say)."""
        if time.monotonic() - child.started >= 5.0:
            return 0.1
        await asyncio.sleep(previous)
        return min(previous * 2, 10.0)


def encode_spec(spec: ChildSpec) -> str:
    return json.dumps({"worker_id": spec.worker_id, "slots_path": spec.slots_path,
                       "supervisor_pid": spec.supervisor_pid})


def decode_spec(text: str) -> ChildSpec:
    data = json.loads(text)
    return ChildSpec(str(data["worker_id"]), str(data["slots_path"]), int(data["supervisor_pid"]))
