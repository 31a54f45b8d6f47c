"""Upgrading a database that holds data keeps every row, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from console.db import Database
from console.migrations import upgrade
from tests.conftest import POSTGRES_URL, create_pg_database, drop_pg_database

TABLES = ("agents", "customers", "contact_points", "conversations", "offers", "conversation_events", "notes",
          "tickets", "messages", "status_periods")


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at revision 0002, the last one before the workspace tables."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0002")
        yield url
        return
    name = create_pg_database()
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade(url, "0002")
        yield url
    finally:
        drop_pg_database(name)


async def fill(url: str) -> None:
    db = Database(url)
    now = "2026-11-01 10:00:00+00:00"
    statements = [
        f"INSERT INTO agents (id, email, name, password_hash, role, language, extension, status, status_since, "
        f"session_version, capacity_call, capacity_chat, capacity_mail, missed_offers, created_at) VALUES "
        f"(1, 'a@x.nl', 'Anna', 'x', 'agent', 'nl', '201', 'available', '{now}', 1, 1, 3, 5, 0, '{now}')",
        f"INSERT INTO customers (id, name, company, lifetime_value, owner_id, created_at, updated_at) VALUES "
        f"(1, 'Jan Jansen', 'Bakkerij Jansen', 10, 1, '{now}', '{now}')",
        "INSERT INTO contact_points (id, customer_id, kind, value, normalized) VALUES "
        "(1, 1, 'phone', '0612345678', '+31612345678')",
        f"INSERT INTO conversations (id, channel, direction, state, routed_by_console, external_id, from_address, "
        f"to_address, customer_id, agent_id, created_at) VALUES "
        f"(1, 'call', 'in', 'closed', true, 'c1', '0612345678', '020', 1, 1, '{now}')",
        f"INSERT INTO offers (id, conversation_id, agent_id, state, created_at) VALUES (1, 1, 1, 'accepted', '{now}')",
        f"INSERT INTO conversation_events (id, conversation_id, to_state, agent_id, at) "
        f"VALUES (1, 1, 'queued', 1, '{now}')",
        f"INSERT INTO notes (id, customer_id, conversation_id, agent_id, body, created_at) "
        f"VALUES (1, 1, 1, 1, 'hi', '{now}')",
        f"INSERT INTO tickets (id, subject, description, status, priority, customer_id, conversation_id, assignee_id, "
        f"created_at, updated_at) VALUES (1, 'Broken', '', 'open', 'high', 1, 1, 1, '{now}', '{now}')",
        f"INSERT INTO messages (id, conversation_id, author, agent_id, body, created_at) "
        f"VALUES (1, 1, 'customer', NULL, 'hello', '{now}')",
        f"INSERT INTO status_periods (id, agent_id, status, started_at) VALUES (1, 1, 'available', '{now}')",
    ]
    try:
        async with db.engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await db.close()


async def counts(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        async with db.engine.connect() as connection:
            return {table: int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
                    for table in (*TABLES, "search_terms")}
    finally:
        await db.close()


def test_upgrading_a_database_with_data_keeps_every_row(old_database: str) -> None:
    asyncio.run(fill(old_database))
    upgrade(old_database)
    found = asyncio.run(counts(old_database))
    assert {table: found[table] for table in TABLES} == dict.fromkeys(TABLES, 1)
    assert found["search_terms"] == 5, "jan, jansen, bakkerij and both forms of the number"


async def readiness_after(url: str) -> tuple[tuple[bool, bool, bool], list[object]]:
    from sqlalchemy import select

    from console import readiness
    from console.models import Agent

    db = Database(url)
    try:
        async with db.reading() as session:
            ready = (await session.execute(select(Agent.ready_call, Agent.ready_chat, Agent.ready_mail))).one()
            return (bool(ready[0]), bool(ready[1]), bool(ready[2])), list(await readiness.mismatches(session))
    finally:
        await db.close()


def test_upgrading_computes_who_is_ready_for_new_work(old_database: str) -> None:
    asyncio.run(fill(old_database))
    upgrade(old_database)
    ready, differing = asyncio.run(readiness_after(old_database))
    assert ready == (True, True, True), "an available agent with nothing open is ready for every channel"
    assert differing == []


async def chats_work(url: str) -> tuple[int | None, int]:
    """After 0009: the old message has no chat; a chat's messages go with it (the reference holds)."""
    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            old_chat = (await connection.execute(text("SELECT chat_id FROM messages WHERE id = 1"))).scalar_one()
            await connection.execute(text(
                "INSERT INTO chat_sites (id, key, name, origins, secret, identity_required, timezone, idle_minutes, "
                "created_at) VALUES (1, 'k', 'Shop', 'https://shop.example', 's', false, 'Europe/Amsterdam', 10, "
                "'2026-12-01 10:00:00+00:00')"))
            await connection.execute(text(
                "INSERT INTO chat_visitors (id, site_id, token_hash, identity, created_at, last_seen_at) VALUES "
                "(1, 1, 'h', 'anonymous', '2026-12-01 10:00:00+00:00', '2026-12-01 10:00:00+00:00')"))
            await connection.execute(text("INSERT INTO chats (id, site_id, visitor_id, started_at) VALUES "
                                          "(1, 1, 1, '2026-12-01 10:00:00+00:00')"))
            await connection.execute(text("UPDATE conversations SET chat_id = 1 WHERE id = 1"))
            await connection.execute(text(
                "INSERT INTO messages (id, conversation_id, author, body, created_at, chat_id, client_id) VALUES "
                "(2, 1, 'customer', 'hallo', '2026-12-01 10:00:00+00:00', 1, 'm-1')"))
            await connection.execute(text("DELETE FROM chats WHERE id = 1"))
            left = (await connection.execute(text("SELECT count(*) FROM messages"))).scalar_one()
        return old_chat, int(left)
    finally:
        await db.close()


def test_the_chat_migration_keeps_every_row_and_its_references_hold(old_database: str) -> None:
    asyncio.run(fill(old_database))
    upgrade(old_database, "0008")
    before = asyncio.run(counts(old_database))
    upgrade(old_database)
    assert asyncio.run(counts(old_database)) == before
    old_chat, left = asyncio.run(chats_work(old_database))
    assert old_chat is None and left == 1, "the chat's message went with it; the old one stayed"


async def site_rows(url: str, insert: bool) -> list[tuple[object, ...]]:
    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            if insert:
                await connection.execute(text(
                    "INSERT INTO chat_sites (id, key, name, origins, secret, identity_required, timezone, "
                    "idle_minutes, greeting, created_at) VALUES (1, 'k', 'Shop', 'https://shop.example', 's', true, "
                    "'Europe/Amsterdam', 15, 'Hoi', '2026-12-01 10:00:00+00:00')"))
            columns = "key, name, origins, identity_required, idle_minutes, greeting"
            return [tuple(row) for row in await connection.execute(text(f"SELECT {columns} FROM chat_sites"))]
    finally:
        await db.close()


def test_the_prechat_migration_keeps_the_sites_as_they_were_and_they_do_not_ask(old_database: str) -> None:
    upgrade(old_database, "0009")
    before = asyncio.run(site_rows(old_database, insert=True))
    upgrade(old_database)
    assert asyncio.run(site_rows(old_database, insert=False)) == before

    async def asks() -> object:
        db = Database(old_database)
        try:
            async with db.engine.connect() as connection:
                return (await connection.execute(text("SELECT prechat FROM chat_sites"))).scalar_one()
        finally:
            await db.close()
    assert not asyncio.run(asks())


def test_the_migrated_schema_is_the_models_schema(old_database: str) -> None:
    """Every table, column, index and reference of the models comes from a migration, and no
    migration leaves one the models lack (an index added to a model but not to a migration would
    be missing on every upgraded database)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from console.models import Base

    upgrade(old_database)

    async def differences() -> list[object]:
        db = Database(old_database)
        try:
            async with db.engine.connect() as connection:
                return await connection.run_sync(lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": False}), Base.metadata))
        finally:
            await db.close()

    found = asyncio.run(differences())
    if old_database.startswith("sqlite"):
        # SQLite does not report the names of references declared with their column, so each
        # shows as removed and added under its name; what they refer to is compared on PostgreSQL.
        found = [d for d in found if not (isinstance(d, tuple) and d[0] in ("remove_fk", "add_fk"))]
    assert found == []
