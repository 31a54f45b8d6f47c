"""The database: one async engine, sessions in a transaction, SQLite made safe for one writer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from console import readiness  # noqa: F401  (registers the flush hook that keeps agents' readiness)
from console.errors import Unavailable

RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure


READ_ONLY = "console_read_only"
POOL_WAIT_SECONDS = 5  # a request waits this long for a free connection, then gets a 503


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        _make_sqlite_safe(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_timeout", POOL_WAIT_SECONDS)
    return create_async_engine(url, **kwargs)


def _make_sqlite_safe(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling starts transactions lazily, so two writers can both read
    # a free agent and then race; BEGIN IMMEDIATE takes the write lock up front instead.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Reads run beside the writer (WAL): they take no write lock.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


class Database:
    """Opens sessions; each `transaction()` commits on success and rolls back on error."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.engine.execution_options(**{READ_ONLY: True}),
                                                expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._translated(self.sessions) as session:
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A transaction that only reads: on SQLite it runs beside the writer instead of waiting."""
        async with self._translated(self.read_sessions) as session:
            yield session

    @asynccontextmanager
    async def _translated(self, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
        try:
            async with sessions() as session, session.begin():
                yield session
        except PoolTimeout as exc:
            # Every connection of this node is in use: overloaded, not broken. The phone system
            # retries on 503; holding its request for the pool's full wait would only pile up more.
            raise Unavailable("the database is busy on this node; try again") from exc
        except (OperationalError, OSError, ConnectionError) as exc:
            cause = getattr(exc, "orig", None) or exc
            detail = (str(cause).splitlines() or [""])[0][:200]
            raise Unavailable(f"database unreachable or failing ({exc.__class__.__name__}: {detail})") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise Unavailable("database connection lost") from exc
            if getattr(exc.orig, "sqlstate", None) in RETRYABLE:
                # A deadlock or serialization failure: nothing was written; the caller may retry.
                raise Unavailable("the database was busy; try again") from exc
            raise

    async def ping(self) -> None:
        async with self.transaction() as session:
            await session.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
