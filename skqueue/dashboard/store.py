"""The data store: an SQLAlchemy async engine on SQLite (the embedded default) or PostgreSQL.

``SKQUEUE_DATABASE_URL`` takes any SQLAlchemy URL of those two; synchronous driver names are mapped to the
asynchronous ones (``postgresql://`` and ``postgres://`` -> ``postgresql+asyncpg://``, ``sqlite://`` ->
``sqlite+aiosqlite://``). Without one, the database is ``<skqueue_home>/senangkira.db``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, insert, inspect, select, update
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from skqueue.config import Settings
from skqueue.dashboard.schema import Schema, schema
from skqueue.errors import ConfigError, InvalidArguments, UserNotFound

UserId = uuid.UUID | int
_ASYNC_DRIVERS = {"postgres": "postgresql+asyncpg", "postgresql": "postgresql+asyncpg",
                  "postgresql+psycopg": "postgresql+asyncpg", "postgresql+psycopg2": "postgresql+asyncpg",
                  "sqlite": "sqlite+aiosqlite"}
_SUPPORTED = ("postgresql+asyncpg", "sqlite+aiosqlite")


def database_url(settings: Settings) -> URL:
    """The configured database as an async SQLAlchemy URL (default: an SQLite file in ``skqueue_home``)."""
    if not settings.database_url:
        return make_url(f"sqlite+aiosqlite:///{Path(settings.skqueue_home).resolve() / 'senangkira.db'}")
    try:
        url = make_url(settings.database_url)
    except Exception as exc:
        raise ConfigError(f"database_url {settings.database_url!r} is not an SQLAlchemy URL: {exc}") from exc
    url = url.set(drivername=_ASYNC_DRIVERS.get(url.drivername, url.drivername))
    if url.drivername not in _SUPPORTED:
        raise ConfigError(f"database_url: {url.drivername!r} is not supported; use postgresql+asyncpg:// "
                          "or sqlite+aiosqlite://")
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard be read while a refresh writes its snapshots; foreign keys as on PostgreSQL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: URL) -> AsyncEngine:
    """An engine for ``url``; no connection is made until first use."""
    if url.drivername.startswith("sqlite"):
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _id_kind(conn: Connection) -> str | None:
    """``"uuid"`` or ``"int"`` from ``auth_user.id``'s type; None if there is no ``auth_user`` table."""
    inspector = inspect(conn)
    if not inspector.has_table("auth_user"):
        return None
    column = next(c for c in inspector.get_columns("auth_user") if c["name"] == "id")
    return "int" if "INT" in str(column["type"]).upper() else "uuid"


async def init_schema(engine: AsyncEngine, id_kind: str = "uuid") -> Schema:
    """Create the tables that are missing. An existing ``auth_user`` decides the id kind."""
    async with engine.begin() as conn:
        found = await conn.run_sync(_id_kind)
        tables = schema(found or id_kind)
        await conn.run_sync(tables.metadata.create_all)
    return tables


def parse_user_id(value: Any, id_kind: str) -> UserId:
    """A user id as given to a task: a UUID (string or object) or, in an integer-id database, an int."""
    if isinstance(value, uuid.UUID):
        parsed: UserId = value
    elif isinstance(value, int) and not isinstance(value, bool):
        parsed = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        parsed = int(value.strip())
    else:
        try:
            parsed = uuid.UUID(str(value).strip())
        except ValueError:
            raise InvalidArguments(f"user_id {value!r} is neither a UUID nor an integer") from None
    if isinstance(parsed, int) and id_kind == "uuid":
        raise InvalidArguments(f"user_id {value!r}: this database's user ids are UUIDs")
    if isinstance(parsed, uuid.UUID) and id_kind == "int":
        raise InvalidArguments(f"user_id {value!r}: this database's user ids are integers")
    return parsed


@dataclass(frozen=True, slots=True)
class User:
    id: UserId
    email: str
    username: str
    company_name: str | None
    first_name: str


class Store:
    """The tables of one database, read and written through one engine."""

    def __init__(self, engine: AsyncEngine, tables: Schema) -> None:
        self.engine = engine
        self.tables = tables

    @classmethod
    async def open(cls, engine: AsyncEngine) -> Store:
        async with engine.connect() as conn:
            kind = await conn.run_sync(_id_kind)
        if kind is None:
            raise ConfigError(f"{engine.url.render_as_string()} has no SenangKira tables: run `skqueue db init`")
        return cls(engine, schema(kind))

    async def user(self, value: Any) -> User:
        """The user ``value`` names; :class:`UserNotFound` if there is none."""
        user_id = parse_user_id(value, self.tables.id_kind)
        u = self.tables.users
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(u.c.id, u.c.email, u.c.username, u.c.company_name, u.c.first_name)
                                      .where(u.c.id == user_id))).first()
        if row is None:
            raise UserNotFound(f"user {value} not found")
        return User(row.id, row.email, row.username, row.company_name, row.first_name)

    async def user_ids(self) -> list[UserId]:
        """Active users, oldest account first."""
        u = self.tables.users
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(u.c.id).where(u.c.is_active.is_(True)).order_by(u.c.date_joined, u.c.id))
            return [row.id for row in rows]

    async def replace_snapshots(self, owner: UserId, day: date, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` as the owner's snapshots of ``day`` (one per period type), replacing old ones."""
        s = self.tables.snapshots
        kinds = [row["period_type"] for row in rows]
        async with self.engine.begin() as conn:
            await conn.execute(delete(s).where(s.c.owner_id == owner, s.c.snapshot_date == day,
                                               s.c.period_type.in_(kinds)))
            await conn.execute(insert(s), [{**_new_id(self.tables), "owner_id": owner, "snapshot_date": day,
                                            **row} for row in rows])

    async def insert(self, table_name: str, row: dict[str, Any]) -> None:
        """Insert one row into one of skqueue's own tables (notifications, exports, reports)."""
        async with self.engine.begin() as conn:
            await conn.execute(insert(getattr(self.tables, table_name)), [row])

    async def update_notification(self, notification_id: uuid.UUID, **values: Any) -> None:
        n = self.tables.notifications
        async with self.engine.begin() as conn:
            await conn.execute(update(n).where(n.c.id == notification_id).values(**values))

    async def notification(self, notification_id: uuid.UUID) -> dict[str, Any] | None:
        n = self.tables.notifications
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(n).where(n.c.id == notification_id))).first()
        return dict(row._mapping) if row is not None else None

    def connect(self) -> AsyncConnection:
        return self.engine.connect()


def _new_id(tables: Schema) -> dict[str, uuid.UUID]:
    """A fresh UUID primary key, or nothing: an integer-id database numbers the row itself."""
    return {"id": uuid.uuid4()} if tables.id_kind == "uuid" else {}


def aware(value: datetime | None) -> datetime | None:
    """Timestamps come back naive from SQLite; they are stored in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
