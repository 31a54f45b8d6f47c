"""Plumbing the benchmarks share: databases, Redis keys, app nodes, sessions, statistics, processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import time
from base64 import b64encode
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import itsdangerous

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("CONSOLE_BENCH_POSTGRES_URL",
                              os.environ.get("CONSOLE_TEST_POSTGRES_URL",
                                             "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"))
REDIS_URL = os.environ.get("CONSOLE_BENCH_REDIS_URL",
                           os.environ.get("CONSOLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
SECRET_KEY = "bench-secret-" + "k" * 32
CTI_TOKEN = "bench-cti-token"
SESSION_COOKIE = "console_session"  # console.web.app names the session cookie so
REGION = "NL"


def dsn(database: str | None = None, url: str = POSTGRES_URL) -> str:
    """A libpq DSN for asyncpg, optionally naming another database on the same server."""
    base = url.replace("postgresql+asyncpg://", "postgresql://")
    if database is None:
        return base
    return base.rsplit("/", 1)[0] + "/" + database


def sa_url(database: str, url: str = POSTGRES_URL) -> str:
    """The SQLAlchemy URL the console takes (CONSOLE_DATABASE_URL) for another database."""
    return url.rsplit("/", 1)[0] + "/" + database


async def pg_admin(sql: str, *args: Any, database: str | None = None) -> Any:
    """The rows of one statement on its own connection (the server's default database unless named)."""
    conn = await asyncpg.connect(dsn(database), timeout=10)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def copy_database(template: str, name: str) -> float:
    """A new database as a file copy of `template`; returns the seconds it took."""
    began = time.perf_counter()
    await pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    return time.perf_counter() - began


async def drop_database(name: str) -> None:
    await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_id() -> str:
    return secrets.token_hex(4)


async def delete_redis_keys(prefix: str) -> int:
    """Remove every key under our own prefix (never anything else on the shared Redis)."""
    import redis.asyncio as aioredis

    assert prefix.startswith("bench-"), prefix
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        for offset in range(0, len(keys), 1000):
            await client.delete(*keys[offset:offset + 1000])
        return len(keys)
    finally:
        await client.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> int:
    """Lift the soft limit on open files to the hard one (10,000 sockets need it); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --- sessions -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Login:
    """What a logged-in browser tab holds: the session cookie and the page's CSRF token."""

    agent_id: int
    cookie: str
    csrf: str


def mint_session(agent_id: int, version: int = 1, secret_key: str = SECRET_KEY) -> Login:
    """A session exactly as logging in makes it, without the argon2 form.

    The session content is made by the console's own `sign_in`; it is signed the way Starlette's
    SessionMiddleware signs it (itsdangerous TimestampSigner over base64 JSON), so the node cannot
    tell it from one made by POST /login.
    """
    from console.web.security import sign_in

    session: dict[str, Any] = {}
    sign_in(session, agent_id, version)
    data = itsdangerous.TimestampSigner(secret_key).sign(b64encode(json.dumps(session).encode()))
    return Login(agent_id, f"{SESSION_COOKIE}={data.decode()}", str(session["csrf"]))


# --- app nodes ------------------------------------------------------------------------------------

@dataclass
class Node:
    """`python -m console serve` in a process of its own."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 5) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_node(database_url: str, var_dir: Path, *, redis_prefix: str | None = None, **env: str) -> Node:
    """A console node on a free port; `redis_prefix` None runs it with the in-process (memory) bus."""
    port = free_port()
    var_dir.mkdir(parents=True, exist_ok=True)
    environ = {**os.environ, "CONSOLE_DATABASE_URL": database_url, "CONSOLE_SECRET_KEY": SECRET_KEY,
               "CONSOLE_CTI_TOKEN": CTI_TOKEN, "CONSOLE_COOKIE_SECURE": "false", "CONSOLE_VAR_DIR": str(var_dir),
               "CONSOLE_DEMO": "", "CONSOLE_DEFAULT_REGION": REGION, **env}
    environ.pop("CONSOLE_REDIS_URL", None)
    if redis_prefix is not None:
        environ["CONSOLE_REDIS_URL"] = REDIS_URL
        environ["CONSOLE_REDIS_PREFIX"] = redis_prefix
    log = var_dir / f"node-{port}.log"
    with open(log, "wb") as handle:
        process = subprocess.Popen([sys.executable, "-m", "console", "serve", "--port", str(port)], env=environ,
                                   stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    return Node(port, process, log)


async def wait_healthy(base: str, process: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    from benchmarks.client import HttpPool

    deadline = time.monotonic() + timeout
    pool = HttpPool(base, size=1)
    try:
        while True:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{base} exited with {process.returncode} before it was healthy")
            try:
                status, _ = await pool.request("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{base} did not come up within {timeout} s")
            await asyncio.sleep(0.2)
    finally:
        await pool.close()


# --- processes ------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def loadavg() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


class LoopLag:
    """How late this process's event loop wakes up: the benchmark client's own share of a latency."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append(time.perf_counter() - began - self.interval)

    def start(self) -> None:
        self.samples.clear()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# --- statistics -----------------------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    if ordered[high] == float("inf"):  # a call that never got its pop counts as infinitely late
        return ordered[high] if rank > low else ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Summary:
    count: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Iterable[float], scale: float = 1000.0) -> Summary:
        data = [v * scale for v in values]
        if not data:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan)
        finite = [v for v in data if v != float("inf")] or [float("nan")]
        return cls(len(data), percentile(data, 50), percentile(data, 95), percentile(data, 99), max(data),
                   statistics.fmean(finite))

    def ms(self) -> str:
        return f"p50 {self.p50:.1f} ms, p95 {self.p95:.1f} ms, p99 {self.p99:.1f} ms (n={self.count})"


@dataclass
class PhaseResult:
    """What one benchmark reports: figures for the table, details, and the command that made them."""

    key: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def note(self, text: str) -> None:
        print(f"  [{self.key}] {text}", flush=True)
        self.details.append(text)


# --- machine --------------------------------------------------------------------------------------

def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as handle:
        total_kib = int(handle.readline().split()[1])
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": f"{total_kib / 1024 / 1024:.1f} GiB",
            "kernel": platform.release(), "os": _os_name()}


def _os_name() -> str:
    try:
        with open("/etc/os-release") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


async def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import redis.asyncio as aioredis

    found = {"python": platform.python_version()}
    rows = await pg_admin("SELECT version()")
    found["postgresql"] = str(rows[0][0]).split(" on ")[0]
    names = ("shared_buffers", "max_connections", "synchronous_commit", "work_mem")
    settings = await pg_admin("SELECT name, current_setting(name) AS value FROM pg_settings WHERE name = ANY($1)",
                              list(names))
    found["postgresql settings"] = ", ".join(f"{r['name']}={r['value']}" for r in settings)
    client = aioredis.from_url(REDIS_URL)
    try:
        info = await client.info("server")
        found["redis server"] = str(info.get("redis_version"))
    finally:
        await client.aclose()
    for package in ("starlette", "uvicorn", "websockets", "sqlalchemy", "asyncpg", "aiosqlite", "redis", "hiredis",
                    "jinja2", "httptools", "uvloop", "phonenumbers"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    import sqlite3

    found["sqlite"] = sqlite3.sqlite_version
    return found


def git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "console", "realtime", "integrations",
                                "templates", "static"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    changed = [line[3:] for line in dirty if line.strip()]
    if not changed:
        return f"{head} (app code clean)"
    return f"{head} + uncommitted changes in {', '.join(sorted(changed))}"
