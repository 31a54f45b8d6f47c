"""The database: one async engine, sessions in a transaction, SQLite made safe for one writer.

On SQLite (the embedded default) writes take turns in arrival order inside the process, each
waiting at most `write_wait` seconds for its turn; a write that would wait longer is shed with
Unavailable (503 and Retry-After) instead of holding its request for SQLite's lock timeout.
Reads run beside the writer (WAL) and never wait for a turn.

On PostgreSQL a read (`reading()`) sends its statements without BEGIN and COMMIT (autocommit):
under READ COMMITTED, PostgreSQL's default and the console's, every statement of a transaction
takes its own snapshot anyway, so wrapping reads in one bought no consistency and cost two round
trips per read. What a read shows can be newer in one statement than in the one before; the
fragments it renders carry the versions of what they show, and the newer change's push follows.
"""

from __future__ import annotations

import asyncio
import logging
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
# PostgreSQL going down or coming up (admin_shutdown, crash_shutdown, cannot_connect_now: a
# restart or failover); class 08, a connection that failed.
GONE = {"57P01", "57P02", "57P03"}
SQLITE_FULL = 13
DISK_FULL = "53100"  # PostgreSQL's disk_full
DISK_FULL_RETRY_SECONDS = 30


def _disk_full(exc: DBAPIError) -> bool:
    cause = exc.orig
    return getattr(cause, "sqlite_errorcode", None) == SQLITE_FULL or getattr(cause, "sqlstate", None) == DISK_FULL


READ_ONLY = "console_read_only"
POOL_WAIT_SECONDS = 5  # a request waits this long for a free connection, then gets a 503
POOL_RECYCLE_SECONDS = 300  # a pooled PostgreSQL connection older than this is replaced at checkout
WRITE_WAIT_SECONDS = 2.0  # SQLite: a write waits this long for its turn, then gets a 503
# SQLite: how long a write waits for another process holding the file's lock (a command run
# beside the server); turns inside the process are taken before that.
LOCK_TIMEOUT_SECONDS = 5

log = logging.getLogger("console.db")


def _unreachable(exc: BaseException) -> Unavailable:
    cause = getattr(exc, "orig", None) or exc
    detail = (str(cause).splitlines() or [""])[0][:200]
    return Unavailable(f"database unreachable or failing ({exc.__class__.__name__}: {detail})")


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # A failing statement's error names its SQL, not its values: those are customers' addresses,
    # names and mail text, which do not belong in a log line.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": LOCK_TIMEOUT_SECONDS}, **kwargs)
        _make_sqlite_safe(engine)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    # No pre-ping: it cost a round trip per transaction. A connection that died while idle (the
    # server restarted) fails its first statement instead: that request gets a 503, SQLAlchemy
    # drops every connection of the pool made before, and the next request connects afresh.
    # Connections idle past a firewall's or pooler's timeout are dropped silently; replacing those
    # older than this at checkout (no round trip) keeps most of them from costing a request.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_recycle", POOL_RECYCLE_SECONDS)
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
        cursor.execute(f"PRAGMA busy_timeout={LOCK_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Reads run beside the writer (WAL): they take no write lock.
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


class WriterTurns:
    """One write at a time, in arrival order, with a bounded wait for the turn."""

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.waiting = 0
        self.shed = 0
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop  # asyncio.Lock wakes waiters first come, first served
        lock = self._lock
        self.waiting += 1
        try:
            async with asyncio.timeout(self.wait):
                await lock.acquire()
        except TimeoutError:
            self.shed += 1
            log.warning("write shed after waiting %.1f s for its turn (%d writes waiting); the embedded "
                        "database is past its capacity", self.wait, self.waiting)
            raise Unavailable("The database has more work than it can take right now; try again in a moment.",
                              retry_after=1) from None
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            lock.release()


class Database:
    """Opens sessions; each `transaction()` commits on success and rolls back on error."""

    def __init__(self, url: str, *, write_wait: float = WRITE_WAIT_SECONDS, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.writer = WriterTurns(write_wait) if self.is_sqlite else None
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        reads: dict[str, Any] = {READ_ONLY: True}
        if not self.is_sqlite:
            reads["isolation_level"] = "AUTOCOMMIT"
        self.read_sessions = async_sessionmaker(self.engine.execution_options(**reads), expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        if self.writer is None:
            async with self._translated(self.sessions) as session:
                yield session
            return
        async with self.writer.turn(), self._translated(self.sessions) as session:
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads: on SQLite a transaction beside the writer instead of waiting
        for its turn; on PostgreSQL statements in autocommit, with no BEGIN and COMMIT."""
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
        except DBAPIError as exc:
            if _disk_full(exc):
                # Nothing of this transaction was written. The admin must free space; the agent and
                # the phone system are told so, and try again.
                log.error("the database's disk is full: a write was refused (%s); free space on its server",
                          (str(exc.orig).splitlines() or [""])[0][:200])
                raise Unavailable("The database's disk is full, so nothing was stored. Tell your administrator; "
                                  "try again once there is room.", retry_after=DISK_FULL_RETRY_SECONDS) from exc
            state = str(getattr(exc.orig, "sqlstate", "") or "")
            if isinstance(exc, OperationalError) or state in GONE or state.startswith("08"):
                raise _unreachable(exc) from exc
            if exc.connection_invalidated:
                raise Unavailable("database connection lost") from exc
            if state in RETRYABLE:
                # A deadlock or serialization failure: nothing was written; the caller may retry.
                raise Unavailable("the database was busy; try again") from exc
            raise
        except (OSError, ConnectionError) as exc:
            raise _unreachable(exc) from exc

    async def ping(self) -> None:
        async with self.transaction() as session:
            await session.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
