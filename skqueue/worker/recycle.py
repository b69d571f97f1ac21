"""``--max-memory-per-child``: restart a worker process gracefully when its resident memory grows."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from skqueue.worker.worker import Worker

log = logging.getLogger("skqueue.worker")


def resident_kib() -> int:
    """Current resident set size in KiB (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


class MemoryLimit:
    """A worker component: warm-stop the process once it uses more than ``limit_kib`` (its supervisor
    starts a fresh one). As in Celery, a task is never interrupted for this."""

    def __init__(self, limit_kib: int, every: float = 2.0) -> None:
        self.limit_kib = limit_kib
        self.every = every

    async def run(self, worker: Worker) -> None:
        while True:
            await asyncio.sleep(self.every)
            used = resident_kib()
            if used > self.limit_kib:
                log.warning("Resident memory %d KiB exceeds --max-memory-per-child %d KiB: restarting this "
                            "process", used, self.limit_kib)
                worker.request_stop()
                return
