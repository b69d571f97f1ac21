"""skqueue.broker.keys: broker key names checked against kombu's Redis channel logic, result keys
against Celery's key-value backend."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from kombu.transport import redis as kombu_redis

from skqueue.broker.keys import GROUP_META, TASK_META, BrokerKeys, ResultKeys
from skqueue.config import TransportOptions

DEFAULT = BrokerKeys(TransportOptions())
COLON = BrokerKeys(TransportOptions(sep=":", priority_steps=tuple(range(10))))
PREFIXED = BrokerKeys(TransportOptions(global_keyprefix="pfx:"), db=3)


def _kombu_channel(options: TransportOptions) -> Any:
    """Just enough of kombu's redis Channel to call its own priority/_q_for_pri code unbound."""
    fake = SimpleNamespace(sep=options.sep, priority_steps=list(options.priority_steps))
    fake.priority = lambda n: kombu_redis.Channel.priority(fake, n)
    return fake


def _kombu_band(options: TransportOptions, queue: str, priority: int) -> str:
    return kombu_redis.Channel._q_for_pri(_kombu_channel(options), queue, priority)


# ---------------------------------------------------------------- bands


def test_default_band_names() -> None:
    assert DEFAULT.band("default", 0) == "default"
    assert DEFAULT.band("default", 3) == "default\x06\x163"
    assert DEFAULT.band("default", 6) == "default\x06\x166"
    assert DEFAULT.band("default", 9) == "default\x06\x169"
    assert DEFAULT.bands("default") == ["default", "default\x06\x163", "default\x06\x166", "default\x06\x169"]


def test_custom_sep_and_steps_band_names() -> None:
    assert COLON.bands("q") == ["q"] + [f"q:{n}" for n in range(1, 10)]


@pytest.mark.parametrize(("priority", "step"), list(enumerate([0, 0, 0, 3, 3, 3, 6, 6, 6, 9])))
def test_step_for_default_steps(priority: int, step: int) -> None:
    assert DEFAULT.step_for(priority) == step


@pytest.mark.parametrize("priority", range(10))
def test_step_for_all_steps(priority: int) -> None:
    assert COLON.step_for(priority) == priority


@pytest.mark.parametrize("options", [TransportOptions(), TransportOptions(sep=":", priority_steps=tuple(range(10))),
                                     TransportOptions(priority_steps=(0, 5)), TransportOptions(sep="|")],
                         ids=["default", "colon-all", "two-steps", "pipe"])
@pytest.mark.parametrize("priority", range(10))
def test_queue_for_priority_matches_kombu(options: TransportOptions, priority: int) -> None:
    keys = BrokerKeys(options)
    assert keys.queue_for_priority("work", priority) == _kombu_band(options, "work", priority)


def test_poll_order_is_band_major() -> None:
    assert DEFAULT.poll_order(["a", "b"]) == [
        "a", "b", "a\x06\x163", "b\x06\x163", "a\x06\x166", "b\x06\x166", "a\x06\x169", "b\x06\x169",
    ]


@pytest.mark.parametrize("options", [TransportOptions(), TransportOptions(sep=":", priority_steps=tuple(range(10)))])
def test_poll_order_matches_kombu_brpop_keys(options: TransportOptions) -> None:
    # kombu's Channel._brpop_start: [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
    queues = ["high_priority", "cache_operations", "default", "analytics", "low_priority"]
    fake = _kombu_channel(options)
    expected = [kombu_redis.Channel._q_for_pri(fake, q, pri) for pri in fake.priority_steps for q in queues]
    assert BrokerKeys(options).poll_order(queues) == expected
    assert len(expected) == len(queues) * len(options.priority_steps)


# ---------------------------------------------------------------- other broker keys


def test_unprefixed_keys() -> None:
    assert (DEFAULT.unacked, DEFAULT.unacked_index, DEFAULT.unacked_mutex) == (
        "unacked", "unacked_index", "unacked_mutex")
    assert DEFAULT.binding("default") == "_kombu.binding.default"
    assert DEFAULT.binding_permanent("default") == "_kombu.binding_permanent.default"
    assert DEFAULT.binding_member("default", "default") == "default\x06\x16\x06\x16default"
    assert DEFAULT.binding_member("rk", "q", "pat.*") == "rk\x06\x16pat.*\x06\x16q"
    assert DEFAULT.fanout_channel("celery.pidbox") == "/0.celery.pidbox"
    assert DEFAULT.fanout_channel("celeryev", "worker.online") == "/0.celeryev/worker.online"


def test_custom_unacked_key_names() -> None:
    keys = BrokerKeys(TransportOptions(unacked_key="u", unacked_index_key="ui", unacked_mutex_key="um",
                                       global_keyprefix="x."))
    assert (keys.unacked, keys.unacked_index, keys.unacked_mutex) == ("x.u", "x.ui", "x.um")


def test_global_keyprefix_applies_to_keys_and_channels_not_members() -> None:
    k = PREFIXED
    assert k.prefix == "pfx:"
    assert k.band("default", 0) == "pfx:default"
    assert k.queue_for_priority("default", 7) == "pfx:default\x06\x166"
    assert k.poll_order(["default"]) == ["pfx:default", "pfx:default\x06\x163", "pfx:default\x06\x166",
                                         "pfx:default\x06\x169"]
    assert (k.unacked, k.unacked_index, k.unacked_mutex) == ("pfx:unacked", "pfx:unacked_index", "pfx:unacked_mutex")
    assert k.binding("default") == "pfx:_kombu.binding.default"
    assert k.binding("reply.celery.pidbox") == "pfx:_kombu.binding.reply.celery.pidbox"
    assert k.binding_permanent("default") == "pfx:_kombu.binding_permanent.default"
    assert k.binding_member("default", "default") == "default\x06\x16\x06\x16default"  # member unprefixed
    assert k.fanout_channel("celeryev", "worker.online") == "pfx:/3.celeryev/worker.online"
    assert k.fanout_channel("celery.pidbox") == "pfx:/3.celery.pidbox"
    assert k.dead_letters == "pfx:skqueue.dead_letters"


def test_binding_member_uses_custom_sep() -> None:
    assert COLON.binding_member("rk", "q") == "rk::q"


@pytest.mark.parametrize(
    ("keys", "key", "queue"),
    [
        (DEFAULT, "default", "default"),
        (DEFAULT, "default\x06\x163", "default"),
        (DEFAULT, "default\x06\x169", "default"),
        (DEFAULT, "with.dots\x06\x166", "with.dots"),
        (PREFIXED, "pfx:default\x06\x166", "default"),
        (PREFIXED, "pfx:default", "default"),
        (PREFIXED, "other:default", "other:default"),
        (COLON, "q:7", "q"),
        (COLON, "q", "q"),
        (COLON, "a:b", "a:b"),
        (COLON, "a:b:3", "a:b"),
    ],
)
def test_queue_of(keys: BrokerKeys, key: str, queue: str) -> None:
    assert keys.queue_of(key) == queue


@pytest.mark.parametrize("priority", range(10))
def test_queue_of_inverts_queue_for_priority(priority: int) -> None:
    for keys in (DEFAULT, COLON, PREFIXED):
        assert keys.queue_of(keys.queue_for_priority("jobs", priority)) == "jobs"


# ---------------------------------------------------------------- result keys


def test_result_keys_without_prefix() -> None:
    keys = ResultKeys.from_options({})
    assert keys.task("abc") == "celery-task-meta-abc"
    assert keys.group("g") == "celery-taskset-meta-g"
    assert TASK_META == "celery-task-meta-"
    assert GROUP_META == "celery-taskset-meta-"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("rpfx", "rpfx_"), ("rp:", "rp:"), ("rp_", "rp_"), ("rp-", "rp-"), ("rp.", "rp."), ("a/b", "a/b_"),
     ("", ""), (None, "")],
)
def test_result_key_prefix_rule(prefix: str | None, expected: str) -> None:
    keys = ResultKeys.from_options({"global_keyprefix": prefix})
    assert keys.prefix == expected
    assert keys.task("abc") == f"{expected}celery-task-meta-abc"
    assert keys.group("g") == f"{expected}celery-taskset-meta-g"


@pytest.mark.parametrize("prefix", ["rpfx", "rp:", "rp_", "rp-", "rp.", "a/b"])
def test_result_keys_match_celery_backend(prefix: str) -> None:
    capp = Celery("unitkeys", backend="cache+memory://", set_as_current=False)
    capp.conf.result_backend_transport_options = {"global_keyprefix": prefix}
    try:
        backend = capp.backend
        celery_task_key = backend.get_key_for_task("abc").decode()
        celery_group_key = backend.get_key_for_group("g").decode()
    finally:
        capp.close()
    keys = ResultKeys.from_options({"global_keyprefix": prefix})
    assert keys.task("abc") == celery_task_key
    assert keys.group("g") == celery_group_key

