"""Which deliveries a worker process is running right now, readable by its supervisor after it dies.

A small file mapped into memory by both: the child writes a delivery tag into a free slot before the
task starts and clears it when the task ends (a memory write, no system call, no Redis round trip). If
the child is killed, the supervisor reads the slots and knows exactly which tasks were running, which is
what poison-message detection and ``task_reject_on_worker_lost`` need.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

SLOT_SIZE = 256


class RunningSlots:
    def __init__(self, path: str | Path, count: int) -> None:
        self.path = Path(path)
        self.count = max(count, 1)
        size = self.count * SLOT_SIZE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._free = list(range(self.count - 1, -1, -1))

    def acquire(self, tag: str) -> int | None:
        """Record ``tag`` as running; returns its slot (None if every slot is taken or it cannot fit)."""
        data = tag.encode("utf-8")
        if not self._free or len(data) >= SLOT_SIZE:
            return None
        index = self._free.pop()
        offset = index * SLOT_SIZE
        self._map[offset:offset + SLOT_SIZE] = data.ljust(SLOT_SIZE, b"\0")
        return index

    def release(self, index: int | None) -> None:
        if index is None:
            return
        offset = index * SLOT_SIZE
        self._map[offset:offset + SLOT_SIZE] = bytes(SLOT_SIZE)
        self._free.append(index)

    def running(self) -> set[str]:
        tags = set()
        for index in range(self.count):
            raw = self._map[index * SLOT_SIZE:(index + 1) * SLOT_SIZE].rstrip(b"\0")
            if raw:
                tags.add(raw.decode("utf-8", "replace"))
        return tags

    def clear(self) -> None:
        self._map[:] = bytes(len(self._map))
        self._free = list(range(self.count - 1, -1, -1))

    def close(self) -> None:
        self._map.close()
