"""Prometheus text for a :class:`~skqueue.monitor.stats.Snapshot`.

The data is gathered asynchronously first; a registry of its own, made for that one scrape, then
renders it, so nothing is ever incremented by a scrape and no process-global registry is involved.

Exported (cluster-wide, from the counters workers keep in Redis):

* ``celery_tasks_total{queue,status}``: finished attempts; ``status`` is the Celery state in lower case
  (``success``, ``failure``, ``retry``, ``revoked``, ``rejected``);
* ``celery_task_duration_seconds{queue,task}``: runtime histogram, buckets from 5 ms to 1 h;
* ``celery_task_errors_total{queue,task,error_type}``: failed attempts by exception class name;
* ``celery_workers_count``: live skqueue worker processes;
* ``celery_queues_backlog{queue,state}``: ``ready``, ``scheduled`` and ``in_flight`` messages;
* ``skqueue_dead_letters``: messages in the dead-letter list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from skqueue.monitor.stats import Snapshot

# Every metric name a PromQL query may use (a test checks the shipped dashboards against it).
EXPORTED = frozenset({
    "celery_tasks_total", "celery_task_duration_seconds_bucket", "celery_task_duration_seconds_count",
    "celery_task_duration_seconds_sum", "celery_task_errors_total", "celery_workers_count",
    "celery_queues_backlog", "skqueue_dead_letters",
})


def families(data: Snapshot) -> list[Metric]:
    tasks = CounterMetricFamily("celery_tasks", "Finished task attempts by queue and final state of the attempt",
                                labels=["queue", "status"])
    by_status: Counter[tuple[str, str]] = Counter()
    for (queue, _task, state), count in data.stats.counts.items():
        by_status[(queue, state.lower())] += count
    for labels, count in sorted(by_status.items()):
        tasks.add_metric(list(labels), count)
    durations = HistogramMetricFamily("celery_task_duration_seconds", "Task runtime in seconds",
                                      labels=["queue", "task"])
    for hist in data.stats.histograms:
        durations.add_metric([hist.queue, hist.task], hist.buckets, hist.total)
    errors = CounterMetricFamily("celery_task_errors", "Failed task attempts by exception type",
                                 labels=["queue", "task", "error_type"])
    for error_labels, count in sorted(data.stats.errors.items()):
        errors.add_metric(list(error_labels), count)
    workers = GaugeMetricFamily("celery_workers_count", "Live worker processes (by heartbeat)", value=data.workers)
    backlog = GaugeMetricFamily("celery_queues_backlog", "Messages per queue: ready, scheduled (ETA) and in flight",
                                labels=["queue", "state"])
    for queue, counts in sorted(data.backlog.items()):
        for state, value in (("ready", counts.ready), ("scheduled", counts.scheduled),
                             ("in_flight", counts.in_flight)):
            backlog.add_metric([queue, state], value)
    dead = GaugeMetricFamily("skqueue_dead_letters", "Messages in the dead-letter list", value=data.dead_letters)
    return [tasks, durations, errors, workers, backlog, dead]


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def render(data: Snapshot) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families(data)))
    return generate_latest(registry)
