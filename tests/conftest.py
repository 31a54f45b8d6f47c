"""Shared test plumbing: databases on SQLite and PostgreSQL, app settings, a real uvicorn server."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher

from console import auth
from console.db import Database
from console.migrations import upgrade
from console.ports import Context, RecordingNotifier
from console.settings import Settings
from realtime import Bus, make_bus

IN_CI = os.environ.get("CI", "").lower() == "true"

# Tests make and check many password hashes. At argon2's production cost (0.1 to 0.2 s each on
# these machines) that alone took minutes of a run. A hash carries its own parameters, so hashes
# made at the lowest cost also verify at it; the console itself (and every node a test starts as a
# process of its own) hashes at the production cost, which console.auth sets.
auth._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
auth._DUMMY_HASH = auth._hasher.hash("not a real password")
POSTGRES_URL = os.environ.get("CONSOLE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
CTI_TOKEN = "test-cti-token"
# Clients that sit idle between requests drop their connections before uvicorn's 5 s keep-alive
# ends: reusing a connection the server is closing at that moment fails with a ReadError.
CLIENT_LIMITS = httpx.Limits(keepalive_expiry=2.0)


def missing(what: str) -> None:
    """Outside CI a test whose service is missing is skipped; in CI that is a failure."""
    message = f"{what} is not available; start it (see README, 'Running the tests')"
    if IN_CI:
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


def _dsn(url: str, database: str | None = None) -> str:
    base = url.replace("postgresql+asyncpg://", "postgresql://")
    if database is None:
        return base
    return base.rsplit("/", 1)[0] + "/" + database


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_dsn(POSTGRES_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database() -> str:
    name = f"console_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except (TimeoutError, OSError) as exc:
        missing(f"PostgreSQL at {POSTGRES_URL} ({exc.__class__.__name__})")
    return name


def drop_pg_database(name: str) -> None:
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# Migrating takes most of a second; each test's database is a copy of one migrated once per run
# (a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL). The migrations themselves
# are tested on their own (tests/console/test_migrations.py).
_templates: dict[str, str] = {}


def _pg_template() -> str:
    if "postgres" not in _templates:
        name = create_pg_database()
        upgrade(POSTGRES_URL.rsplit("/", 1)[0] + "/" + name)
        _templates["postgres"] = name
    return _templates["postgres"]


def migrated_sqlite(path: Path) -> str:
    """A migrated SQLite database at `path`; its URL."""
    if "sqlite" not in _templates:
        import tempfile

        template = Path(tempfile.mkdtemp(prefix="console-template-")) / "template.db"
        upgrade(f"sqlite+aiosqlite:///{template}")
        _templates["sqlite"] = str(template)
    shutil.copyfile(_templates["sqlite"], path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    if "postgres" in _templates:
        drop_pg_database(_templates.pop("postgres"))
    if "sqlite" in _templates:
        shutil.rmtree(Path(_templates.pop("sqlite")).parent, ignore_errors=True)


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards."""
    name = f"console_test_{secrets.token_hex(6)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_template()}"'))
    except (TimeoutError, OSError) as exc:
        missing(f"PostgreSQL at {POSTGRES_URL} ({exc.__class__.__name__})")
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database only (for what SQLite cannot do: several processes)."""
    with pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file, and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield migrated_sqlite(tmp_path / "console.db")
        return
    with pg_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "console.db")


@pytest.fixture
async def ctx(database_url: str) -> AsyncIterator[Context]:
    """Services wired with a recording notifier, on each database."""
    db = Database(database_url)
    try:
        yield Context(db=db, notify=RecordingNotifier(), region="NL")
    finally:
        await db.close()


async def close_app(app: object) -> None:
    """Shut down an app that was served without its lifespan (httpx's ASGI transport): the pushes
    still under way finish first, then the database closes."""
    wiring = app.state.wiring  # type: ignore[attr-defined]
    await wiring.notifier.drain()
    await wiring.notifier.close()
    await wiring.ctx.db.close()


@asynccontextmanager
async def served(settings: Settings, base_url: str = "http://console.test", **client: object
                 ) -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    """The app over httpx's ASGI transport (no lifespan), and a client for it; closed afterwards."""
    from console.web.app import create_app

    app = create_app(settings)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url,
                                     **client) as http:  # type: ignore[arg-type]
            yield app, http
    finally:
        await close_app(app)


REDIS_URL = os.environ.get("CONSOLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@asynccontextmanager
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of the test's own on the shared Redis; its keys are removed afterwards.

    Fails in CI, skips elsewhere, when Redis is not there.
    """
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    prefix = f"console-test-{secrets.token_hex(6)}:"
    admin = aioredis.from_url(REDIS_URL)
    try:
        await admin.ping()
    except (RedisError, OSError) as exc:
        await admin.aclose()
        missing(f"Redis at {REDIS_URL} ({exc.__class__.__name__})")
    try:
        yield prefix
    finally:
        keys = [key async for key in admin.scan_iter(match=prefix + "*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


@contextmanager
def redis_keys() -> Iterator[str]:
    """redis_prefix for synchronous tests and fixtures."""
    import redis
    from redis.exceptions import RedisError

    prefix = f"console-test-{secrets.token_hex(6)}:"
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        admin.ping()
    except (RedisError, OSError) as exc:
        admin.close()
        missing(f"Redis at {REDIS_URL} ({exc.__class__.__name__})")
    try:
        yield prefix
    finally:
        keys = list(admin.scan_iter(match=prefix + "*"))
        if keys:
            admin.delete(*keys)
        admin.close()


@asynccontextmanager
async def redis_bus(backlog: int = 1000) -> AsyncIterator[Bus]:
    """The Redis bus under a key prefix of its own, removed afterwards."""
    async with redis_prefix() as prefix:
        bus = make_bus(REDIS_URL, backlog=backlog, prefix=prefix)
        await bus.start()
        try:
            yield bus
        finally:
            await bus.close()


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    settings = Settings(database_url=database_url, secret_key="test-secret-" + "x" * 20, cti_token=CTI_TOKEN,
                        var_dir=tmp_path, default_region="NL")
    return replace(settings, **overrides)  # type: ignore[arg-type]


def start_node(url: str, port: int, tmp: Path, **env: str) -> subprocess.Popen[bytes]:
    """`python -m console serve` as its own process; its log goes to tmp/node-PORT.log."""
    environ = {**os.environ, "CONSOLE_DATABASE_URL": url, "CONSOLE_SECRET_KEY": "shared-secret-" + "x" * 30,
               "CONSOLE_CTI_TOKEN": CTI_TOKEN, "CONSOLE_COOKIE_SECURE": "false", "CONSOLE_VAR_DIR": str(tmp),
               "CONSOLE_DEMO": "", **env}
    with open(tmp / f"node-{port}.log", "wb") as log:  # the child keeps its own copy of the handle
        return subprocess.Popen([sys.executable, "-m", "console", "serve", "--port", str(port)], env=environ,
                                stdout=log, stderr=subprocess.STDOUT)


async def wait_healthy(base: str) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(base + "/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{base} did not come up"
            await asyncio.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """A real uvicorn serving the app in a thread of its own, on a free port."""

    def __init__(self, settings: Settings) -> None:
        from console.web.app import SERVER_OPTIONS, create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", **SERVER_OPTIONS)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(make_settings(database_url, tmp_path)) as server:
        yield server
