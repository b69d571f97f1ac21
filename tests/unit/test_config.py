"""skqueue.config: merging, coercion of environment strings, read_object, validation, transport options."""

from __future__ import annotations

import logging
import types
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from skqueue import config
from skqueue.app import App
from skqueue.config import Settings, TransportOptions, from_environ, load_environ, merge, read_object
from skqueue.errors import ConfigError


def _route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> str | None:
    return "routed" if name.startswith("proj.") else None


class CeleryConfig:
    """A settings class, the kind ``config_from_object("pkg.mod:CeleryConfig")`` names."""

    CELERY_TASK_DEFAULT_QUEUE = "from-class"
    CELERY_TASK_ACKS_LATE = True
    task_default_queue = "lowercase-from-class"


# ---------------------------------------------------------------- defaults and merge


def test_defaults() -> None:
    s = Settings()
    assert s.task_default_queue == "celery"
    assert s.task_serializer == s.result_serializer == "json"
    assert s.accept_content == ("json",)
    assert s.result_expires == 86400.0
    assert s.worker_prefetch_multiplier == 4
    assert s.broker_transport_options == TransportOptions()
    assert s.tz() == ZoneInfo("UTC")


def test_merge_returns_new_settings_and_keeps_base() -> None:
    base = Settings()
    merged = merge(base, {"task_default_queue": "q", "task_acks_late": True}, source="test")
    assert merged.task_default_queue == "q"
    assert merged.task_acks_late is True
    assert base.task_default_queue == "celery"
    assert base.task_acks_late is False


def test_merge_with_nothing_known_returns_base() -> None:
    base = Settings()
    assert merge(base, {}, source="test") is base


@pytest.mark.parametrize(("alias", "name"), [("broker", "broker_url"), ("backend", "result_backend"),
                                             ("home", "skqueue_home")])
def test_aliases(alias: str, name: str) -> None:
    assert getattr(merge(Settings(), {alias: "x://y"}, source="t"), name) == "x://y"


def test_replace_coerces_like_merge() -> None:
    s = Settings().replace(task_acks_late="yes", worker_prefetch_multiplier="2")
    assert s.task_acks_late is True
    assert s.worker_prefetch_multiplier == 2


# ---------------------------------------------------------------- coercion


@pytest.mark.parametrize("text", ["1", "true", "True", "YES", "on", " true "])
def test_true_strings(text: str) -> None:
    assert merge(Settings(), {"task_acks_late": text}, source="env").task_acks_late is True


@pytest.mark.parametrize("text", ["0", "false", "FALSE", "no", "off", ""])
def test_false_strings(text: str) -> None:
    base = Settings(task_track_started=True)
    assert merge(base, {"task_track_started": text}, source="env").task_track_started is False


def test_bad_bool_is_config_error() -> None:
    with pytest.raises(ConfigError, match="task_acks_late"):
        merge(Settings(), {"task_acks_late": "maybe"}, source="env")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("worker_prefetch_multiplier", "8", 8),
        ("worker_concurrency", "4", 4),
        ("worker_concurrency", "", None),
        ("task_default_priority", "5", 5),
        ("task_default_priority", "", None),
        ("result_expires", "3600", 3600.0),
        ("result_expires", "none", None),
        ("result_expires", "", None),
        ("task_time_limit", "30", 30.0),
        ("task_soft_time_limit", "null", None),
        ("task_default_queue", "work", "work"),
        ("timezone", "Europe/Berlin", "Europe/Berlin"),
        ("broker_url", "redis://h:1/2", "redis://h:1/2"),
    ],
)
def test_env_string_coercion(name: str, text: str, expected: Any) -> None:
    assert getattr(merge(Settings(), {name: text}, source="env"), name) == expected


def test_timedelta_seconds() -> None:
    assert merge(Settings(), {"result_expires": timedelta(hours=2)}, source="t").result_expires == 7200.0


@pytest.mark.parametrize(("text", "expected"), [("json", ("json",)), ("json, yaml", ("json", "yaml")),
                                                ('["json", "msgpack"]', ("json", "msgpack"))])
def test_accept_content(text: str, expected: tuple[str, ...]) -> None:
    assert merge(Settings(), {"accept_content": text}, source="env").accept_content == expected


@pytest.mark.parametrize(("name", "text"), [("worker_prefetch_multiplier", "eight"),
                                            ("worker_concurrency", "x"), ("result_expires", "soon")])
def test_bad_numbers_are_config_errors(name: str, text: str) -> None:
    with pytest.raises(ConfigError, match=name):
        merge(Settings(), {name: text}, source="env")


def test_prefetch_multiplier_below_one_is_config_error() -> None:
    with pytest.raises(ConfigError, match="prefetch"):
        merge(Settings(), {"worker_prefetch_multiplier": "0"}, source="env")


def test_task_routes_json_from_env() -> None:
    s = merge(Settings(), {"task_routes": '{"proj.add": {"queue": "math"}, "proj.*": "proj"}'}, source="env")
    assert s.task_routes == {"proj.add": {"queue": "math"}, "proj.*": "proj"}


def test_task_routes_bad_json_is_config_error() -> None:
    with pytest.raises(ConfigError, match="task_routes"):
        merge(Settings(), {"task_routes": "{not json"}, source="env")


def test_task_routes_objects_are_kept() -> None:
    routes = ({"a": "b"}, _route_task)
    assert merge(Settings(), {"task_routes": routes}, source="t").task_routes is routes


def test_broker_transport_options_json_from_env() -> None:
    text = '{"visibility_timeout": "7200", "priority_steps": [9, 0, 6, 3], "sep": ":", "global_keyprefix": "p:"}'
    opts = merge(Settings(), {"broker_transport_options": text}, source="env").broker_transport_options
    assert opts.visibility_timeout == 7200.0
    assert opts.priority_steps == (0, 3, 6, 9)
    assert opts.sep == ":"
    assert opts.global_keyprefix == "p:"


def test_broker_transport_options_dict_and_instance() -> None:
    opts = TransportOptions(sep=":")
    assert merge(Settings(), {"broker_transport_options": opts}, source="t").broker_transport_options is opts
    merged = merge(Settings(), {"broker_transport_options": {"polling_interval": 2}}, source="t")
    assert merged.broker_transport_options.polling_interval == 2.0


def test_result_backend_transport_options_json_from_env() -> None:
    s = merge(Settings(), {"result_backend_transport_options": '{"global_keyprefix": "rp"}'}, source="env")
    assert dict(s.result_backend_transport_options) == {"global_keyprefix": "rp"}


# ---------------------------------------------------------------- environment


def test_load_environ_reads_celery_and_skqueue_prefixes() -> None:
    env = {
        "CELERY_BROKER_URL": "redis://celery/0",
        "CELERY_TASK_ACKS_LATE": "true",
        "SKQUEUE_RESULT_BACKEND": "redis://sk/1",
        "SKQUEUE_HOME": "/tmp/skq",
        "CELERY_NOT_A_SETTING": "x",
        "PATH": "/bin",
    }
    assert load_environ(env) == {
        "broker_url": "redis://celery/0",
        "task_acks_late": "true",
        "result_backend": "redis://sk/1",
        "skqueue_home": "/tmp/skq",
    }


def test_skqueue_env_beats_celery_env() -> None:
    env = {"CELERY_TASK_DEFAULT_QUEUE": "from-celery", "SKQUEUE_TASK_DEFAULT_QUEUE": "from-skqueue",
           "CELERY_WORKER_PREFETCH_MULTIPLIER": "2", "SKQUEUE_WORKER_PREFETCH_MULTIPLIER": "7"}
    s = from_environ(Settings(), env)
    assert s.task_default_queue == "from-skqueue"
    assert s.worker_prefetch_multiplier == 7


def test_skqueue_alias_beats_celery_name() -> None:
    s = from_environ(Settings(), {"CELERY_BROKER_URL": "redis://celery/0", "SKQUEUE_BROKER": "redis://sk/0"})
    assert s.broker_url == "redis://sk/0"


def test_from_environ_coerces_everything() -> None:
    env = {
        "CELERY_TASK_ROUTES": '{"proj.add": {"queue": "math"}}',
        "CELERY_BROKER_TRANSPORT_OPTIONS": '{"visibility_timeout": 60, "queue_order_strategy": "priority"}',
        "SKQUEUE_TASK_TRACK_STARTED": "on",
        "CELERY_RESULT_EXPIRES": "120",
    }
    s = from_environ(Settings(), env)
    assert s.task_routes == {"proj.add": {"queue": "math"}}
    assert s.broker_transport_options.visibility_timeout == 60.0
    assert s.broker_transport_options.queue_order_strategy == "priority"
    assert s.task_track_started is True
    assert s.result_expires == 120.0


def test_from_environ_bad_value_names_the_source() -> None:
    with pytest.raises(ConfigError, match="environment"):
        from_environ(Settings(), {"CELERY_TASK_ACKS_LATE": "perhaps"})


def test_app_config_from_env() -> None:
    app = App("t")
    app.config_from_env({"CELERY_TASK_DEFAULT_QUEUE": "envq", "CELERY_TASK_ROUTES": '{"a.b": "ab"}'})
    assert app.conf.task_default_queue == "envq"
    assert app.queue_for("a.b") == "ab"


# ---------------------------------------------------------------- read_object


def _settings_module() -> types.ModuleType:
    module = types.ModuleType("unit_celeryconfig")
    module.CELERY_BROKER_URL = "redis://h/0"
    module.CELERY_TASK_ROUTES = {"proj.add": "math"}
    module.CELERY_TASK_ALWAYS_EAGER = False
    module.DEBUG = True
    module.broker_url = "redis://lower/0"
    module.task_default_queue = "lowerq"
    module.route_task = _route_task
    module._private = 1
    return module


def test_read_object_celery_namespace_on_module() -> None:
    assert read_object(_settings_module(), namespace="CELERY") == {
        "broker_url": "redis://h/0",
        "task_routes": {"proj.add": "math"},
        "task_always_eager": False,
    }


def test_read_object_without_namespace_on_module() -> None:
    assert read_object(_settings_module(), namespace=None) == {
        "broker_url": "redis://lower/0",
        "task_default_queue": "lowerq",
    }


def test_read_object_on_dict() -> None:
    data = {"CELERY_TASK_ACKS_LATE": True, "task_default_queue": "q", "OTHER": 1}
    assert read_object(data, namespace="CELERY") == {"task_acks_late": True}
    assert read_object(data, namespace=None) == {"task_default_queue": "q"}


def test_read_object_dotted_path() -> None:
    found = read_object(f"{__name__}:CeleryConfig", namespace="CELERY")
    assert found == {"task_default_queue": "from-class", "task_acks_late": True}
    assert read_object(f"{__name__}:CeleryConfig", namespace=None) == {"task_default_queue": "lowercase-from-class"}


def test_read_object_bad_path_is_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot import"):
        read_object("no_such_module_for_skqueue_tests:X")


def test_read_object_keeps_a_single_router_function_without_namespace() -> None:
    # Celery accepts ``task_routes = route_task`` (a single router). read_object(namespace=None) skips every
    # callable value, so the router silently disappears (with namespace="CELERY" it is kept).
    module = types.ModuleType("unit_routes")
    module.task_routes = _route_task
    module.CELERY_TASK_ROUTES = _route_task
    assert read_object(module, namespace="CELERY") == {"task_routes": _route_task}
    assert read_object(module, namespace=None) == {"task_routes": _route_task}


def test_app_config_from_object() -> None:
    app = App("t")
    app.config_from_object(_settings_module(), namespace="CELERY")
    assert app.conf.broker_url == "redis://h/0"
    assert app.queue_for("proj.add") == "math"


def test_unknown_settings_are_logged_by_name(caplog: pytest.LogCaptureFixture) -> None:
    values = read_object({"CELERY_TASK_DEFUALT_QUEUE": "typo", "CELERY_WORKER_FROBNICATE": 1,
                          "CELERY_TASK_CREATE_MISSING_QUEUES": True, "CELERY_TASK_ACKS_LATE": True})
    with caplog.at_level(logging.WARNING, logger="skqueue.config"):
        merged = merge(Settings(), values, source="settings-module")
    assert merged.task_acks_late is True
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "task_defualt_queue" in warnings[0]
    assert "worker_frobnicate" in warnings[0]
    assert "settings-module" in warnings[0]
    assert "task_create_missing_queues" not in warnings[0]  # a known Celery setting, accepted silently


def test_known_celery_settings_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="skqueue.config"):
        merge(Settings(), {"task_always_eager": False, "beat_schedule": {}, "task_protocol": 2}, source="t")
    assert caplog.records == []


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("name", ["task_serializer", "result_serializer"])
@pytest.mark.parametrize("serializer", ["pickle", "msgpack", "yaml"])
def test_non_json_serializer_is_config_error(name: str, serializer: str) -> None:
    with pytest.raises(ConfigError, match=name):
        merge(Settings(), {name: serializer}, source="t")


def test_app_with_pickle_is_config_error() -> None:
    with pytest.raises(ConfigError):
        App("t", task_serializer="pickle")


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "../../etc/passwd", "Not A Zone"])
def test_bad_timezone_is_config_error(tz: str) -> None:
    with pytest.raises(ConfigError, match="timezone"):
        merge(Settings(), {"timezone": tz}, source="t")
    with pytest.raises(ConfigError):
        Settings(timezone=tz).tz()


def test_good_timezone() -> None:
    assert merge(Settings(), {"timezone": "Asia/Kuala_Lumpur"}, source="t").tz() == ZoneInfo("Asia/Kuala_Lumpur")


# ---------------------------------------------------------------- TransportOptions


def test_transport_option_defaults_match_kombu() -> None:
    from kombu.transport import redis as kombu_redis

    opts = TransportOptions()
    assert opts.sep == kombu_redis.Channel.sep
    assert list(opts.priority_steps) == list(kombu_redis.PRIORITY_STEPS)
    assert opts.visibility_timeout == kombu_redis.Channel.visibility_timeout
    assert opts.unacked_key == kombu_redis.Channel.unacked_key
    assert opts.unacked_index_key == kombu_redis.Channel.unacked_index_key
    assert opts.unacked_mutex_key == kombu_redis.Channel.unacked_mutex_key
    assert opts.unacked_mutex_expire == kombu_redis.Channel.unacked_mutex_expire
    assert opts.queue_order_strategy == "round_robin"
    assert config.DEFAULT_SEP == "\x06\x16"


@pytest.mark.parametrize(("steps", "expected"), [([9, 0, 6, 3], (0, 3, 6, 9)), (range(10), tuple(range(10))),
                                                 (["6", "0"], (0, 6))])
def test_priority_steps_sorted(steps: Any, expected: tuple[int, ...]) -> None:
    assert TransportOptions.from_mapping({"priority_steps": steps}).priority_steps == expected


@pytest.mark.parametrize("strategy", ["round_robin", "priority", "sorted"])
def test_queue_order_strategy_valid(strategy: str) -> None:
    assert TransportOptions.from_mapping({"queue_order_strategy": strategy}).queue_order_strategy == strategy


def test_queue_order_strategy_invalid() -> None:
    with pytest.raises(ConfigError, match="queue_order_strategy"):
        TransportOptions.from_mapping({"queue_order_strategy": "random"})


def test_ack_emulation_false_is_config_error() -> None:
    with pytest.raises(ConfigError, match="ack_emulation"):
        TransportOptions.from_mapping({"ack_emulation": False})
    with pytest.raises(ConfigError, match="ack_emulation"):
        merge(Settings(), {"broker_transport_options": {"ack_emulation": False}}, source="t")
    assert TransportOptions.from_mapping({"ack_emulation": True}) == TransportOptions()


def test_numeric_transport_options_become_floats() -> None:
    opts = TransportOptions.from_mapping({"visibility_timeout": "10", "unacked_mutex_expire": 5,
                                          "polling_interval": "0.5"})
    assert (opts.visibility_timeout, opts.unacked_mutex_expire, opts.polling_interval) == (10.0, 5.0, 0.5)


def test_unknown_transport_options_logged_known_ones_not(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="skqueue.config"):
        opts = TransportOptions.from_mapping({"visibilty_timeout": 5, "fanout_prefix": True,
                                              "socket_timeout": 3, "max_connections": 10})
    assert opts == TransportOptions()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "visibilty_timeout" in messages
    assert "fanout_prefix" not in messages
    assert "socket_timeout" not in messages


def test_from_mapping_none() -> None:
    assert TransportOptions.from_mapping(None) == TransportOptions()
