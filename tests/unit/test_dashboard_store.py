"""The data store: URLs, user ids, schema creation on new and existing databases, the seeded data set."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from skqueue.config import Settings
from skqueue.dashboard import stats
from skqueue.dashboard.periods import period_of
from skqueue.dashboard.seed import seed
from skqueue.dashboard.store import Store, database_url, init_schema, parse_user_id
from skqueue.errors import ConfigError, InvalidArguments, UserNotFound
from tests.dashboard_support import Oracle, assert_matches, load, seeded, sqlite_url

TODAY = date(2026, 11, 20)


def test_database_url_default_and_driver_mapping(tmp_path: Path) -> None:
    default = database_url(Settings(skqueue_home=str(tmp_path)))
    assert default.render_as_string() == f"sqlite+aiosqlite:///{tmp_path}/senangkira.db"
    assert database_url(Settings(database_url="postgres://u@db/sk")).drivername == "postgresql+asyncpg"
    assert database_url(Settings(database_url="postgresql+psycopg2://u@db/sk")).drivername == "postgresql+asyncpg"
    assert database_url(Settings(database_url="sqlite:////tmp/x.db")).drivername == "sqlite+aiosqlite"
    with pytest.raises(ConfigError, match="not supported"):
        database_url(Settings(database_url="mysql://root@localhost/sk"))
    with pytest.raises(ConfigError, match="not an SQLAlchemy URL"):
        database_url(Settings(database_url="::nonsense::"))


def test_settings_come_from_the_environment() -> None:
    from skqueue.config import from_environ

    settings = from_environ(Settings(), {"SKQUEUE_DATABASE_URL": "sqlite:///x.db", "SKQUEUE_SMTP_PORT": "2525",
                                         "SKQUEUE_SMTP_USE_TLS": "yes", "CELERY_EXPORT_DIR": "/tmp/exports",
                                         "SKQUEUE_DASHBOARD_CACHE_TTL": "60"})
    assert (settings.database_url, settings.smtp_port, settings.smtp_use_tls) == ("sqlite:///x.db", 2525, True)
    assert (settings.export_dir, settings.dashboard_cache_ttl) == ("/tmp/exports", 60.0)


@pytest.mark.parametrize(("value", "kind", "expected"), [
    ("5f0c6a52-1111-4a2b-9c3d-0123456789ab", "uuid", uuid.UUID("5f0c6a52-1111-4a2b-9c3d-0123456789ab")),
    ("5f0c6a5211114a2b9c3d0123456789ab", "uuid", uuid.UUID("5f0c6a52-1111-4a2b-9c3d-0123456789ab")),
    (uuid.UUID(int=7), "uuid", uuid.UUID(int=7)),
    (42, "int", 42),
    (" 42 ", "int", 42),
])
def test_user_ids_are_uuids_or_integers(value: Any, kind: str, expected: Any) -> None:
    assert parse_user_id(value, kind) == expected


@pytest.mark.parametrize(("value", "kind", "message"), [
    ("not-a-user", "uuid", "neither a UUID nor an integer"),
    (42, "uuid", "user ids are UUIDs"),
    ("5f0c6a52-1111-4a2b-9c3d-0123456789ab", "int", "user ids are integers"),
    (True, "int", "neither"),
])
def test_bad_user_ids_are_invalid_arguments(value: Any, kind: str, message: str) -> None:
    with pytest.raises(InvalidArguments, match=message):
        parse_user_id(value, kind)


def test_seed_is_deterministic_and_consistent(tmp_path: Path) -> None:
    async def rows(name: str, seed_value: int) -> dict[str, list[dict[str, Any]]]:
        engine, tables = await seeded(sqlite_url(tmp_path / name), 2, TODAY, seed_value=seed_value)
        try:
            return await load(engine, tables)
        finally:
            await engine.dispose()

    first, again, other = (asyncio.run(rows(n, s)) for n, s in (("a.db", 3), ("b.db", 3), ("c.db", 4)))
    assert first == again
    assert [u["id"] for u in first["users"]] != [u["id"] for u in other["users"]]
    for invoice in first["invoices"]:
        assert invoice["due_date"] == invoice["issue_date"] + timedelta(days=30)
        assert invoice["tax_rate"] in (Decimal("0.0600"), Decimal("0.0800"))
        tax = (invoice["subtotal"] * invoice["tax_rate"]).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert invoice["tax_amount"] == tax and invoice["total_amount"] == invoice["subtotal"] + tax
        assert (invoice["paid_at"] is not None) == (invoice["status"] == "paid")
        assert invoice["issue_date"] <= TODAY
    for expense in first["expenses"]:
        assert expense["date"] <= TODAY and expense["amount"] > 0
        assert expense["category"] != "meals" or expense["amount"] <= 500


def test_init_keeps_existing_data_and_adds_missing_tables(tmp_path: Path) -> None:
    async def run() -> tuple[int, int]:
        engine, tables = await seeded(sqlite_url(tmp_path / "x.db"), 1, TODAY)
        async with engine.begin() as conn:
            await conn.run_sync(tables.notifications.drop)
        again = await init_schema(engine)
        async with engine.connect() as conn:
            users = len((await conn.execute(select(again.users))).all())
            notes = len((await conn.execute(select(again.notifications))).all())
        await engine.dispose()
        return users, notes

    assert asyncio.run(run()) == (1, 0)


def test_integer_id_databases_work_end_to_end(tmp_path: Path) -> None:
    async def run() -> None:
        engine, tables = await seeded(sqlite_url(tmp_path / "int.db"), 2, TODAY, id_kind="int")
        store = await Store.open(engine)
        assert store.tables.id_kind == "int"
        ids = await store.user_ids()
        assert sorted(ids) == [1, 2]
        assert (await store.user("2")).id == 2
        with pytest.raises(UserNotFound, match="user 99 not found"):
            await store.user(99)
        await seed(engine, tables, 1, seed=9, today=TODAY)  # appends after the existing ids
        assert sorted(await store.user_ids()) == [1, 2, 3]
        rows = await load(engine, tables)
        period = period_of("monthly", TODAY)
        async with engine.connect() as conn:
            result = await stats.compute(conn, tables, 2, period, today=TODAY, tz=UTC)
        assert_matches(result, Oracle(rows, 2, UTC, TODAY).figures(period))
        await engine.dispose()

    asyncio.run(run())


def test_open_without_tables_says_what_to_do(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    from skqueue.dashboard.store import create_engine

    async def run() -> None:
        engine = create_engine(make_url(sqlite_url(tmp_path / "empty.db")))
        try:
            with pytest.raises(ConfigError, match="skqueue db init"):
                await Store.open(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
