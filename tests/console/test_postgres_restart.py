"""PostgreSQL restarted under a node while the phone system posts calls: nothing accepted is lost.

A PostgreSQL server of the test's own (the shared one is never touched), stopped with `pg_ctl -m
fast` (every connection is ended, as in a restart or a failover) and started again while calls
keep arriving. The node must answer each call 200 (stored) or 503 with Retry-After (not stored:
the phone system sends it again), never 500 and never a dropped connection; every call answered
200 must be in the database once; the retries store the rest; the node is ready again by itself,
with no traceback in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from console.db import Database
from console.migrations import upgrade
from console.models import Conversation
from tests.conftest import CLIENT_LIMITS, CTI_TOKEN, IN_CI, LiveServer, free_port, make_settings

BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
CALLS, EVERY = 120, 0.04  # 120 calls, one every 40 ms; the restart comes after the 30th


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = BINARIES[-1]
        self.dir = Path(tempfile.mkdtemp(prefix="console-pg-"))
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/console"

    def _run(self, *command: str) -> None:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "console")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-o", options,
                  "-l", str(self.dir / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if not BINARIES or (os.geteuid() == 0 and not shutil.which("runuser")):
        message = "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) are needed to restart one"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = PrivatePostgres()
    try:
        server.init()
        yield server
    finally:
        server.remove()


async def _traffic(base: str, server: PrivatePostgres) -> tuple[dict[str, int], list[str]]:
    """Post the calls, restarting the database after the 30th; the first answer of each call."""
    answers: dict[str, int] = {}
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=base, limits=CLIENT_LIMITS, timeout=15) as client:

        async def post(call_id: str) -> None:
            try:
                response = await client.post(f"/integrations/cti/{CTI_TOKEN}", data={
                    "event": "newCall", "from": "0612345678", "to": "0201234567", "direction": "in",
                    "callId": call_id})
            except httpx.HTTPError as exc:
                problems.append(f"{call_id}: {exc.__class__.__name__}")
                return
            answers[call_id] = response.status_code
            if response.status_code == 503:
                assert response.headers.get("retry-after"), "a 503 says when to retry"
            elif response.status_code != 200:
                problems.append(f"{call_id}: {response.status_code} {response.text[:200]}")

        async def restart() -> None:
            await asyncio.to_thread(server.stop)
            await asyncio.sleep(1.0)  # down for a while, as a restart with recovery is
            await asyncio.to_thread(server.start)

        posts, restarting = [], None
        for n in range(CALLS):
            if n == 30:
                restarting = asyncio.create_task(restart())
            posts.append(asyncio.create_task(post(f"restart-{n}")))
            await asyncio.sleep(EVERY)
        await asyncio.gather(*posts)
        assert restarting is not None
        await restarting
    return answers, problems


async def _retry_until_stored(base: str, call_ids: list[str]) -> None:
    """What the phone system does with each 503: send the event again after Retry-After."""
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=base, limits=CLIENT_LIMITS, timeout=15) as client:
        for call_id in call_ids:
            while True:
                response = await client.post(f"/integrations/cti/{CTI_TOKEN}", data={
                    "event": "newCall", "from": "0612345678", "to": "0201234567", "direction": "in",
                    "callId": call_id})
                if response.status_code == 200:
                    break
                assert response.status_code == 503 and time.monotonic() < deadline, (call_id, response.text)
                await asyncio.sleep(0.2)


def test_a_database_restart_during_calls_loses_nothing_that_was_accepted(
        private_postgres: PrivatePostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    upgrade(private_postgres.url)
    with caplog.at_level(logging.WARNING), LiveServer(make_settings(private_postgres.url, tmp_path)) as node:
        answers, problems = asyncio.run(_traffic(node.url, private_postgres))
        assert not problems, problems
        refused = sorted(call for call, status in answers.items() if status == 503)
        assert refused, "the restart was noticed (some calls were told to retry)"
        assert len(refused) < CALLS, "calls were stored before and after it"

        async def stored() -> list[str]:
            db = Database(private_postgres.url)
            try:
                async with db.reading() as session:
                    return list(await session.scalars(select(Conversation.external_id)))
            finally:
                await db.close()

        accepted = {call for call, status in answers.items() if status == 200}
        kept = asyncio.run(stored())
        assert accepted <= set(kept), f"accepted, then lost: {sorted(accepted - set(kept))}"
        asyncio.run(_retry_until_stored(node.url, refused))
        kept = asyncio.run(stored())
        assert sorted(kept) == sorted(answers), "every call stored once, the retried ones too"
        ready = httpx.get(f"{node.url}/readyz")
        assert ready.status_code == 200 and ready.json()["database"] == "ok"
    tracebacks = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info]
    assert not tracebacks, tracebacks
