"""The store and the dashboard figures on PostgreSQL (the local server, trust auth), in a database created
for this run and dropped afterwards. Skipped only when no PostgreSQL answers on 127.0.0.1:5432."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, date
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from skqueue.dashboard import stats
from skqueue.dashboard.periods import PERIOD_TYPES, Period, period_of
from skqueue.dashboard.store import Store, init_schema
from skqueue.errors import UserNotFound
from tests.dashboard_support import Oracle, assert_matches, load, seeded

pytestmark = pytest.mark.timeout(60)

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TODAY = date(2026, 11, 20)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN, timeout=3)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"skqueue_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_figures_on_postgresql_match_the_independent_computation(database: str) -> None:
    async def run() -> None:
        engine, tables = await seeded(database, 2, TODAY)
        try:
            rows = await load(engine, tables)
            assert {r["status"] for r in rows["invoices"]} >= {"paid", "sent", "viewed", "overdue", "cancelled"}
            periods = [period_of(kind, TODAY) for kind in PERIOD_TYPES]
            periods.append(Period("custom", date(2026, 2, 3), date(2026, 5, 17)))
            async with engine.connect() as conn:
                for user in rows["users"]:
                    for period in periods:
                        for tz in (UTC, ZoneInfo("Asia/Kuala_Lumpur")):
                            result = await stats.compute(conn, tables, user["id"], period, today=TODAY, tz=tz)
                            assert_matches(result, Oracle(rows, user["id"], tz, TODAY).figures(period))
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_store_on_postgresql(database: str) -> None:
    from sqlalchemy.engine import make_url

    from skqueue.dashboard.store import create_engine

    async def run() -> dict[str, Any]:
        engine = create_engine(make_url(database))
        try:
            await init_schema(engine)  # idempotent on an existing schema
            store = await Store.open(engine)
            assert store.tables.id_kind == "uuid"
            ids = await store.user_ids()
            user = await store.user(str(ids[0]))
            with pytest.raises(UserNotFound):
                await store.user(uuid.UUID(int=3))
            async with store.connect() as conn:
                summary = await stats.compute(conn, store.tables, user.id, period_of("monthly", TODAY), today=TODAY,
                                              tz=UTC)
            await store.replace_snapshots(user.id, TODAY, [stats.snapshot_row(summary)])
            await store.replace_snapshots(user.id, TODAY, [stats.snapshot_row(summary)])
            async with engine.connect() as conn:
                snapshots = (await conn.execute(select(store.tables.snapshots))).mappings().all()
            return {"email": user.email, "snapshots": [dict(s) for s in snapshots], "revenue": summary["revenue"]}
        finally:
            await engine.dispose()

    found = asyncio.run(run())
    assert "@" in found["email"]
    assert len(found["snapshots"]) == 1
    assert str(found["snapshots"][0]["total_revenue"]) == found["revenue"]
