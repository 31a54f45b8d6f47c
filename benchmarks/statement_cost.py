"""What one statement and one transaction cost in CPU, through each layer, on one database.

    .venv/bin/python -m benchmarks.statement_cost --database-url postgresql+asyncpg://... [--runs N]

The same primary-key select of an agent id, run N times each way: an ORM select built per call,
built once with a bind parameter, the same through Core on the session's connection, and the
bare driver (asyncpg); then a whole transaction around one select, with and without the pool's
pre-ping. The database needs the console's tables (run the migrations first).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import bindparam, select


async def _cpu_ms(action: Callable[[], Awaitable[object]], runs: int) -> float:
    for _ in range(min(100, runs)):
        await action()
    began = time.process_time()
    for _ in range(runs):
        await action()
    return 1000 * (time.process_time() - began) / runs


async def measure(url: str, runs: int) -> dict[str, float]:
    from console.db import Database
    from console.models import Agent

    found: dict[str, float] = {}
    for pre_ping in (True, False):
        db = Database(url, pool_pre_ping=pre_ping)

        async def one_transaction(db: Database = db) -> None:
            async with db.transaction() as session:
                await session.scalar(select(Agent.id).where(Agent.id == 1))

        found[f"transaction with one select, pre-ping {'on' if pre_ping else 'off'}"] = \
            await _cpu_ms(one_transaction, runs // 4)
        await db.close()
    db = Database(url, pool_pre_ping=False)
    prebuilt = select(Agent.id).where(Agent.id == bindparam("id"))
    async with db.transaction() as session:
        connection = await session.connection()
        ways: dict[str, Callable[[], Awaitable[object]]] = {
            "ORM select built per call": lambda: session.scalar(select(Agent.id).where(Agent.id == 1)),
            "ORM select built once": lambda: session.scalar(prebuilt, {"id": 1}),
            "Core select built once": lambda: connection.scalar(prebuilt, {"id": 1}),
        }
        if url.startswith("postgresql"):
            driver = (await connection.get_raw_connection()).driver_connection
            assert driver is not None
            ways["bare asyncpg"] = lambda: driver.fetchval("SELECT id FROM agents WHERE id = $1", 1)
        for name, way in ways.items():
            found[name] = await _cpu_ms(way, runs)
    await db.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    for name, ms in asyncio.run(measure(args.database_url, args.runs)).items():
        print(f"{name}: {ms:.3f} ms CPU")


if __name__ == "__main__":
    main()
