"""The database wrapper: an exhausted pool or a full embedded writer is 'try again later', not a server
error, and embedded writes take turns in arrival order."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select, text

from console.db import Database
from console.errors import Unavailable
from console.models import Agent


async def test_a_full_pool_is_unavailable_not_an_error(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        async with db.transaction() as first:
            await first.connection()
            with pytest.raises(Unavailable, match="busy"):
                async with db.transaction() as second:
                    await second.connection()
    finally:
        await db.close()


async def test_embedded_writes_take_turns_in_arrival_order(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    order: list[int] = []
    try:
        async with db.transaction():
            async def write(n: int) -> None:
                async with db.transaction() as session:
                    await session.execute(text("SELECT 1"))
                    order.append(n)

            tasks = []
            for n in range(4):
                tasks.append(asyncio.create_task(write(n)))
                await asyncio.sleep(0)  # each one queued before the next arrives
            await asyncio.sleep(0.05)
            assert order == [], "nobody writes while the turn is held"
        await asyncio.gather(*tasks)
        assert order == [0, 1, 2, 3]
    finally:
        await db.close()


async def test_an_embedded_write_past_its_wait_is_shed_and_the_held_one_still_commits(sqlite_url: str) -> None:
    db = Database(sqlite_url, write_wait=0.1)
    try:
        async with db.transaction() as first:
            session_count = await first.scalar(select(func.count()).select_from(Agent))
            first.add(Agent(email="kept@x.nl", name="Kept", password_hash="x"))
            with pytest.raises(Unavailable) as shed:
                async with db.transaction() as second:
                    second.add(Agent(email="shed@x.nl", name="Shed", password_hash="x"))
            assert shed.value.retry_after == 1 and "try again" in shed.value.message
            async with db.reading() as reader:  # reads do not wait for a turn
                assert await reader.scalar(select(func.count()).select_from(Agent)) == session_count
        assert db.writer is not None and db.writer.shed == 1 and db.writer.waiting == 0
        async with db.reading() as session:
            emails = set(await session.scalars(select(Agent.email)))
        assert "kept@x.nl" in emails and "shed@x.nl" not in emails
    finally:
        await db.close()


async def test_a_connection_the_server_dropped_costs_one_503_then_the_pool_reconnects(pg_url: str) -> None:
    db = Database(pg_url, pool_size=2, max_overflow=0)
    try:
        pids = set()
        async with db.transaction() as first, db.transaction() as second:  # two idle connections in the pool
            for session in (first, second):
                pids.add(await session.scalar(text("SELECT pg_backend_pid()")))
        admin = Database(pg_url, pool_size=1, max_overflow=0)
        try:
            async with admin.transaction() as session:
                await session.execute(text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) pid"),
                                      {"pids": list(pids)})
        finally:
            await admin.close()
        with pytest.raises(Unavailable, match=r"lost|unreachable"):
            async with db.transaction() as session:
                await session.scalar(select(func.count()).select_from(Agent))
        # The other dropped connection is not handed out again: the pool replaced both.
        for _ in range(2):
            async with db.transaction() as session:
                assert await session.scalar(select(func.count()).select_from(Agent)) == 0
                assert await session.scalar(text("SELECT pg_backend_pid()")) not in pids
    finally:
        await db.close()
