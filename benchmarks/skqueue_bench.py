"""The skqueue side of the benchmark: ``python -m skqueue worker -A benchmarks.skqueue_bench``.

Same task names as ``celery_bench``; ``bench.noop`` is a coroutine, ``bench.noop_sync`` a plain function
(run in a worker thread). Broker and backend URLs are passed on the command line.
"""

from __future__ import annotations

import skqueue

app = skqueue.App("bench", task_default_queue="default", task_acks_late=True)


@app.task(name="bench.noop")
async def noop() -> None:
    return None


@app.task(name="bench.noop_sync")
def noop_sync() -> None:
    return None
