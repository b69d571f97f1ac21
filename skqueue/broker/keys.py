"""Every Redis key and channel name skqueue reads or writes, in one place.

Broker keys follow kombu's Redis transport (``global_keyprefix`` applies to keys and channels, not to
set members); result keys follow Celery's Redis result backend (its own prefix option).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skqueue.config import TransportOptions

TASK_META = "celery-task-meta-"
GROUP_META = "celery-taskset-meta-"
CONTROL_EXCHANGE = "celery"  # Celery's ``control_exchange``: the pidbox namespace
EVENT_EXCHANGE = "celeryev"  # Celery's ``event_exchange``


def pidbox_exchange(namespace: str = CONTROL_EXCHANGE) -> str:
    """The fanout exchange control requests are broadcast on (``celery.pidbox``)."""
    return f"{namespace}.pidbox"


def reply_exchange(namespace: str = CONTROL_EXCHANGE) -> str:
    """The direct exchange control replies are routed through (``reply.celery.pidbox``)."""
    return f"reply.{namespace}.pidbox"


def pidbox_queue(node: str, namespace: str = CONTROL_EXCHANGE) -> str:
    """A worker's own mailbox queue name (only its binding exists on Redis: delivery is pub/sub)."""
    return f"{node}.{namespace}.pidbox"


def reply_queue(oid: str, exchange: str = reply_exchange()) -> str:
    """A control client's reply queue, bound to the reply exchange with routing key ``oid``."""
    return f"{oid}.{exchange}"


@dataclass(frozen=True, slots=True)
class BrokerKeys:
    """Key names in the broker database, derived from the transport options the clients use."""

    options: TransportOptions
    db: int = 0

    @property
    def prefix(self) -> str:
        return self.options.global_keyprefix

    def band(self, queue: str, step: int) -> str:
        """The list holding ``queue``'s messages of priority step ``step`` (step 0 is the bare name)."""
        name = queue if step == 0 else f"{queue}{self.options.sep}{step}"
        return self.prefix + name

    def step_for(self, priority: int) -> int:
        """The largest priority step <= ``priority`` (kombu's bisect rule)."""
        steps = self.options.priority_steps
        index = bisect.bisect_right(steps, priority) - 1
        return steps[max(index, 0)]

    def queue_for_priority(self, queue: str, priority: int) -> str:
        return self.band(queue, self.step_for(priority))

    def bands(self, queue: str) -> list[str]:
        return [self.band(queue, step) for step in self.options.priority_steps]

    def poll_order(self, queues: list[str]) -> list[str]:
        """Band-major key order: every queue's band 0, then every queue's band 3, and so on."""
        return [self.band(q, step) for step in self.options.priority_steps for q in queues]

    @property
    def unacked(self) -> str:
        return self.prefix + self.options.unacked_key

    @property
    def unacked_index(self) -> str:
        return self.prefix + self.options.unacked_index_key

    @property
    def unacked_mutex(self) -> str:
        return self.prefix + self.options.unacked_mutex_key

    def binding(self, exchange: str) -> str:
        return f"{self.prefix}_kombu.binding.{exchange}"

    def binding_permanent(self, exchange: str) -> str:
        return f"{self.prefix}_kombu.binding_permanent.{exchange}"

    def binding_member(self, routing_key: str, queue: str, pattern: str = "") -> str:
        sep = self.options.sep
        return f"{routing_key}{sep}{pattern}{sep}{queue}"

    def fanout_channel(self, exchange: str, routing_key: str = "") -> str:
        """Pub/sub channel of a fanout exchange: ``/<db>.<exchange>[/<routing_key>]``."""
        suffix = f"/{routing_key}" if routing_key else ""
        return f"{self.prefix}/{self.db}.{exchange}{suffix}"

    # Remote control (kombu's pidbox) and events: fanout exchanges, so pub/sub channels.
    def pidbox_channel(self, namespace: str = CONTROL_EXCHANGE) -> str:
        """Where control requests are published (``/<db>.celery.pidbox``); workers PSUBSCRIBE it."""
        return self.fanout_channel(pidbox_exchange(namespace))

    def event_channel(self, routing_key: str, exchange: str = EVENT_EXCHANGE) -> str:
        """Where an event is published: ``/<db>.celeryev/<routing key>`` (``worker.heartbeat``, ...)."""
        return self.fanout_channel(exchange, routing_key)

    def event_pattern(self, exchange: str = EVENT_EXCHANGE) -> str:
        """What an event receiver PSUBSCRIBEs (kombu binds ``#``, which becomes ``*`` on Redis)."""
        return self.fanout_channel(exchange, "*")

    # skqueue's own keys, under the same prefix so one option moves everything.
    @property
    def dead_letters(self) -> str:
        return self.prefix + "skqueue.dead_letters"

    @property
    def revoked(self) -> str:
        """zset of revoked task ids, scored by revoke time (survives worker restarts)."""
        return self.prefix + "skqueue.revoked"

    @property
    def workers(self) -> str:
        """zset of worker process ids, scored by their last heartbeat."""
        return self.prefix + "skqueue.workers"

    def worker(self, worker_id: str) -> str:
        """A worker process's heartbeat record (JSON, with a TTL)."""
        return f"{self.prefix}skqueue.worker.{worker_id}"

    def owned(self, worker_id: str) -> str:
        """Set of the delivery tags a worker process holds (reserved, not yet acked)."""
        return f"{self.prefix}skqueue.owned.{worker_id}"

    def reaping(self, worker_id: str) -> str:
        """Lock taken by whoever returns a dead worker's deliveries, so only one does."""
        return f"{self.prefix}skqueue.reaping.{worker_id}"

    @property
    def task_events(self) -> str:
        """Stream of finished attempts (bounded)."""
        return self.prefix + "skqueue.task_events"

    @property
    def task_counts(self) -> str:
        """Hash ``queue|task|state`` -> count, cluster-wide."""
        return self.prefix + "skqueue.stats.counts"

    @property
    def task_durations(self) -> str:
        """Hash ``queue|task|le`` -> count of attempts at most ``le`` seconds (``+Inf`` included), plus
        ``queue|task|sum`` -> total seconds."""
        return self.prefix + "skqueue.stats.durations"

    @property
    def task_errors(self) -> str:
        """Hash ``queue|task|exception type`` -> count."""
        return self.prefix + "skqueue.stats.errors"

    def submitted(self, task_id: str) -> str:
        """What the monitoring API enqueued for a task (name, args, kwargs, queue; with a TTL), so it can
        be retried with its original arguments."""
        return f"{self.prefix}skqueue.submitted.{task_id}"

    @property
    def crash_counts(self) -> str:
        """Hash delivery tag -> deliveries that died with their worker (poison message detection)."""
        return self.prefix + "skqueue.crashes"

    # The scheduler (``skqueue scheduler``, alias ``beat``).
    @property
    def scheduler_lease(self) -> str:
        """The leader lease: the token of the one scheduler allowed to publish firings (with a TTL)."""
        return self.prefix + "skqueue.scheduler.lease"

    def schedule_state(self, entry: str) -> str:
        """Hash of one schedule entry's state: next_run, last_run, last_status, run_count, paused, missed..."""
        return f"{self.prefix}skqueue.schedule.{entry}"

    def fired(self, entry: str, fire_time: str) -> str:
        """Set once per firing (``fire_time`` is UTC ISO-8601), so no firing is ever published twice."""
        return f"{self.prefix}skqueue.fired.{entry}.{fire_time}"

    # The SenangKira dashboard cache (skqueue.broker.cache), shared by every process. Entries carry the
    # user's generation number: bumping it invalidates all of a user's entries without a SCAN.
    def dashboard_generation(self, user: str) -> str:
        """Counter whose value is part of every live cache entry name of ``user``."""
        return f"{self.prefix}skqueue.dashboard.gen.{user}"

    def dashboard_entry(self, user: str, generation: int, period: str, start: str) -> str:
        """One computed dashboard (JSON, with a TTL): ``period`` type starting on ``start`` (ISO date)."""
        return f"{self.prefix}skqueue.dashboard.{user}.{generation}.{period}.{start}"

    def dashboard_lock(self, user: str, period: str, start: str) -> str:
        """Held (SET NX PX) by the one process computing an entry, so a cold key is computed once."""
        return f"{self.prefix}skqueue.dashboard.lock.{user}.{period}.{start}"

    @property
    def dashboard_cache_stats(self) -> str:
        """Hash ``hits`` / ``misses`` of dashboard cache reads, cluster-wide."""
        return self.prefix + "skqueue.dashboard.cache_stats"

    def unprefixed(self, key: str) -> str:
        return key[len(self.prefix):] if self.prefix and key.startswith(self.prefix) else key

    def queue_of(self, key: str) -> str:
        """The queue a band key belongs to (cut at the last separator, as kombu does)."""
        name = self.unprefixed(key)
        head, sep, tail = name.rpartition(self.options.sep)
        return head if sep and tail.isdigit() else name


@dataclass(frozen=True, slots=True)
class ResultKeys:
    """Key names in the result backend database."""

    prefix: str = ""

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> ResultKeys:
        prefix = str(options.get("global_keyprefix") or "")
        if prefix and prefix[-1] not in ":_-.":
            prefix += "_"
        return cls(prefix)

    def task(self, task_id: str) -> str:
        return f"{self.prefix}{TASK_META}{task_id}"

    def probe(self, token: str) -> str:
        """A short-lived key the monitoring API's health check writes, reads and deletes."""
        return f"{self.prefix}skqueue-health-probe-{token}"

    def group(self, group_id: str) -> str:
        return f"{self.prefix}{GROUP_META}{group_id}"

    # A chord's bookkeeping: keys named after its header group (Celery's RedisBackend suffixes).
    def chord_results(self, group_id: str) -> str:
        """``.j``: one ``[1, id, state, result]`` per finished header task (zset by group_index, or list)."""
        return f"{self.group(group_id)}.j"

    def chord_extra(self, group_id: str) -> str:
        """``.t``: header tasks added while the chord ran (``add_to_chord``)."""
        return f"{self.group(group_id)}.t"

    def chord_size(self, group_id: str) -> str:
        """``.s``: the number of header tasks, stored before the last header task is published."""
        return f"{self.group(group_id)}.s"

    def chord_seen(self, group_id: str) -> str:
        """``.d`` (Celery >= 5.7): ``<task id>:<group_index>`` of every header task already counted."""
        return f"{self.group(group_id)}.d"

    def chord_claim(self, group_id: str) -> str:
        """``.c`` (Celery >= 5.7): who publishes the body (a token), then ``done`` once it has."""
        return f"{self.group(group_id)}.c"
