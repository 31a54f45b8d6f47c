"""A brief profile of the database side: what the node's connections are doing, sampled from pg_stat_activity."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter

import asyncpg

from benchmarks.common import dsn

NUMBERS = re.compile(r"\b\d+\b")
SPACES = re.compile(r"\s+")


def shape(query: str, width: int = 110) -> str:
    text = SPACES.sub(" ", NUMBERS.sub("N", query)).strip()
    return text[:width]


class DbSampler:
    """Every `interval` seconds, the state and statement of each connection to `database`.

    `active` with a wait event means waiting inside PostgreSQL (Lock = a row lock held by another
    transaction); `idle in transaction` means PostgreSQL waits for the application between two
    statements of an open transaction (the node is busy or waiting on its event loop).
    """

    def __init__(self, database: str, interval: float = 0.05) -> None:
        self.database = database
        self.interval = interval
        self.samples = 0
        self.states: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        conn = await asyncpg.connect(dsn(self.database))
        try:
            while True:
                rows = await conn.fetch(
                    "SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    self.database)
                self.samples += 1
                for row in rows:
                    state = row["state"] or "?"
                    wait = f" waiting {row['wait_event_type']}:{row['wait_event']}" if row["wait_event_type"] \
                        and state == "active" else ""
                    self.states[state + wait] += 1
                    if state == "active":
                        self.statements[shape(row["query"] or "") + wait] += 1
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[str]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if not self.samples:
            return []
        lines = ["connections by state (average over samples): " + ", ".join(
            f"{state} {count / self.samples:.1f}" for state, count in self.states.most_common(6))]
        active = sum(self.statements.values()) or 1
        for statement, count in self.statements.most_common(5):
            lines.append(f"{100 * count / active:4.0f}% of active time: {statement}")
        return lines
