"""The benchmark databases: a million customers on PostgreSQL (cached as a template) and the embedded one.

PostgreSQL, `bench_1m_template`:
  - the schema made by the console's own migrations;
  - 1,000 agents (agent1..agent1000@bench.example, extensions 100001..101000); B3 adds agents up to
    10,000 to its own copy (ids 9001-10000 supervisors), so the other benchmarks' pages list the
    1,000 agents their scenario has, not 10,000;
  - 12,000 customers made by the console's seeder (`console.seed.seed`), with their history, notes and
    tickets: the benchmark's callers, so the pops show realistic pictures;
  - 988,000 more customers generated inside PostgreSQL (INSERT ... SELECT generate_series), each with
    one or two phone numbers (+31 85 ..., a range the seeder never draws) and 90 % with an email
    address, normalised as console.customers normalises them, and their search terms when the
    schema has a search_terms table. Python would need minutes for these; PostgreSQL needs seconds.
The template is rebuilt when its key (data version, migration head and the migration files' text)
changes; each benchmark then works on a file copy (CREATE DATABASE ... TEMPLATE, a few seconds) that
is dropped afterwards. `python -m benchmarks --rebuild` forces a rebuild.

SQLite: a fresh file per run with 1,000 agents and 10,000 seeded customers.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from benchmarks.common import REGION, dsn, pg_admin, run_id, sa_url

T = TypeVar("T")

TEMPLATE = "bench_1m_template"
DATA_VERSION = "2"
AGENTS = 1_000  # in the template: B1's agents; B5 uses 500 of them; B3 adds 9,000 more
ALL_AGENTS = 10_000  # B3's sockets
SUPERVISORS_FROM = 9_001  # B3's agents with this id and above are supervisors
CUSTOMERS = 1_000_000
SEEDED = 12_000
PASSWORD = "bench-password"

FIRST = ("Anna", "Bram", "Chloe", "Daan", "Emma", "Finn", "Gijs", "Hanna", "Isa", "Jesse", "Julia", "Kees", "Lars",
         "Lotte", "Maud", "Milan", "Noah", "Olivia", "Pieter", "Quinten", "Roos", "Sanne", "Sem", "Tess", "Thijs",
         "Vera", "Wouter", "Yara", "Zoe", "Oliver", "Amelia", "George", "Harry", "Jack", "Lily", "Mia", "Oscar",
         "Poppy", "Sophie", "Thomas")
LAST = ("Jansen", "Bakker", "Visser", "Smit", "Meijer", "Boer", "Mulder", "Groot", "Bos", "Vos", "Peters", "Hendriks",
        "Dekker", "Brouwer", "Dijkstra", "Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "Walker", "Wright",
        "Roberts", "Green", "Hall", "Wood", "Clarke", "Hughes", "Edwards", "Kuipers", "Veenstra", "Postma", "Kramer",
        "Schouten", "Prins", "Huisman", "Wolters", "Kok", "Vermeulen")
SECTORS = ("Logistiek", "Installatietechniek", "Advies", "Transport", "Media", "Software", "Catering", "Bouw",
           "Engineering", "Wholesale")
DOMAINS = ("gmail.example", "outlook.example", "ziggo.example", "kpnmail.example", "hotmail.example",
           "btinternet.example", "xs4all.example", "yahoo.example")


@dataclass(frozen=True)
class Dataset:
    template: str
    built: bool
    seconds: float
    counts: dict[str, int]
    notes: list[str]


def template_key() -> str:
    from console.migrations import HERE, head_revision

    digest = hashlib.sha256(f"{DATA_VERSION}:{head_revision()}".encode())
    for path in sorted((HERE / "versions").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return f"agent-console bench data v{DATA_VERSION} head {head_revision()} {digest.hexdigest()[:16]}"


async def _comment(database: str) -> str | None:
    rows = await pg_admin("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
                          database)
    if not rows:
        return None
    return str(rows[0][0] or "")


async def ensure_template(rebuild: bool = False) -> Dataset:
    key = template_key()
    began = time.perf_counter()
    if not rebuild and await _comment(TEMPLATE) == key:
        counts = await _counts(TEMPLATE)
        return Dataset(TEMPLATE, False, time.perf_counter() - began, counts, [f"cached template {TEMPLATE} ({key})"])
    building = f"bench_build_{run_id()}"
    await pg_admin(f'CREATE DATABASE "{building}"')
    try:
        notes = await _build(building)
        await pg_admin(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await pg_admin(f'ALTER DATABASE "{building}" RENAME TO "{TEMPLATE}"')
    except BaseException:
        await pg_admin(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
        raise
    await pg_admin(f"COMMENT ON DATABASE \"{TEMPLATE}\" IS '{key}'")
    counts = await _counts(TEMPLATE)
    seconds = time.perf_counter() - began
    return Dataset(TEMPLATE, True, seconds, counts, [*notes, f"built template {TEMPLATE} in {seconds:.0f} s ({key})"])


async def _counts(database: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn(database))
    try:
        counts = {}
        for table in ("agents", "customers", "contact_points", "conversations", "notes", "tickets"):
            counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
        if await conn.fetchval("SELECT to_regclass('search_terms') IS NOT NULL"):
            counts["search_terms"] = int(await conn.fetchval("SELECT count(*) FROM search_terms"))
        return counts
    finally:
        await conn.close()


async def add_agents(url: str, count: int, supervisors_from: int | None = None, first: int = 1) -> None:
    """Agents first..count with one shared argon2 hash (hashing 10,000 passwords would take minutes)."""
    from sqlalchemy import insert

    from console.auth import hash_password
    from console.db import Database
    from console.models import Agent

    password_hash = hash_password(PASSWORD)
    db = Database(url)
    try:
        async with db.transaction() as session:
            rows = [{"email": f"agent{i}@bench.example", "name": f"Agent {i}", "password_hash": password_hash,
                     "extension": str(100_000 + i), "language": "nl" if i % 3 else "en",
                     "role": "supervisor" if supervisors_from and i >= supervisors_from else "agent"}
                    for i in range(first, count + 1)]
            for offset in range(0, len(rows), 2000):
                await session.execute(insert(Agent.__table__), rows[offset:offset + 2000])
    finally:
        await db.close()


async def _seed(url: str, customers: int) -> str:
    from console.db import Database
    from console.seed import seed

    db = Database(url)
    try:
        return await seed(db, customers=customers, region=REGION, rng_seed=4)
    finally:
        await db.close()


BULK_CUSTOMERS = """
INSERT INTO customers (id, name, company, tier, lifetime_value, owner_id, language, created_at, updated_at)
SELECT $1::int + g,
       f.first || ' ' || f.last,
       CASE WHEN f.h % 10 < 3 THEN f.last || ' ' || ($3::text[])[1 + (f.h / 7) % array_length($3::text[], 1)] END,
       CASE WHEN f.h % 10 = 0 THEN 'A' WHEN f.h % 10 < 4 THEN 'B' ELSE 'C' END,
       CASE WHEN f.h % 10 = 0 THEN 15000 + f.h % 500000 WHEN f.h % 10 < 4 THEN 2000 + f.h % 13000
            ELSE 50 + f.h % 1450 END,
       CASE WHEN f.h % 10 < 4 AND f.h % 3 = 0 THEN 1 + (f.h / 11) % $6::int END,
       CASE WHEN f.h % 10 < 7 THEN 'nl' ELSE 'en' END,
       now() - make_interval(days => 60 + (f.h % 2000)::int),
       now() - make_interval(days => 10 + (f.h % 50)::int)
FROM (SELECT g, h, ($4::text[])[1 + h % array_length($4::text[], 1)] AS first,
             ($5::text[])[1 + (h / 97) % array_length($5::text[], 1)] AS last
      FROM (SELECT g, (g::bigint * 2654435761) % 4294967296 AS h FROM generate_series(0, $2::int - 1) g) s) f
"""

BULK_PHONES = """
INSERT INTO contact_points (customer_id, kind, value, normalized)
SELECT id, 'phone', '085 ' || substr(n, 1, 3) || ' ' || substr(n, 4), '+3185' || n
FROM (SELECT id, lpad((id - $1::int)::text, 7, '0') AS n FROM customers WHERE id >= $1::int) s
UNION ALL
SELECT id, 'phone', '+31 85 ' || n, '+3185' || n
FROM (SELECT id, lpad((5000000 + id - $1::int)::text, 7, '0') AS n FROM customers
      WHERE id >= $1::int AND ((id - $1::int)::bigint * 2654435761) % 4294967296 % 10 IN (1, 4, 7)) s
"""

BULK_EMAILS = """
INSERT INTO contact_points (customer_id, kind, value, normalized)
SELECT id, 'email', address, lower(address)
FROM (SELECT id, replace(name, ' ', '.') || '.' || (id - $1::int) || '@'
             || ($2::text[])[1 + (id % array_length($2::text[], 1))] AS address
      FROM customers WHERE id >= $1::int AND ((id - $1::int)::bigint * 2654435761) % 4294967296 % 10 <> 9) s
"""

# What console.search.customer_terms makes of these customers: the words of name and company, the
# digits of each phone number (international and national), each email address and its domain.
BULK_TERMS = """
INSERT INTO search_terms (customer_id, term)
SELECT id, lower(split_part(name, ' ', 1)) FROM customers WHERE id >= $1::int
UNION ALL
SELECT id, lower(split_part(name, ' ', 2)) FROM customers WHERE id >= $1::int
UNION ALL
SELECT id, lower(split_part(company, ' ', 2)) FROM customers WHERE id >= $1::int AND company IS NOT NULL
UNION ALL
SELECT customer_id, substr(normalized, 2) FROM contact_points WHERE customer_id >= $1::int AND kind = 'phone'
UNION ALL
SELECT customer_id, '0' || substr(normalized, 4) FROM contact_points WHERE customer_id >= $1::int AND kind = 'phone'
UNION ALL
SELECT customer_id, normalized FROM contact_points WHERE customer_id >= $1::int AND kind = 'email'
UNION ALL
SELECT customer_id, split_part(normalized, '@', 2) FROM contact_points
WHERE customer_id >= $1::int AND kind = 'email'
"""


async def _strip(conn: asyncpg.Connection, table: str) -> list[str]:
    """Drop a table's keys, foreign keys and indexes for a bulk insert; return the statements restoring them.

    Read from the catalog, so whatever the migrations made is restored exactly (keys other tables
    refer to are left alone).
    """
    constraints = await conn.fetch(
        "SELECT c.conname, c.contype::text AS contype, pg_get_constraintdef(c.oid) AS def FROM pg_constraint c "
        "WHERE c.conrelid = $1::regclass AND c.contype IN ('p', 'u', 'f') AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint r WHERE r.confrelid = c.conrelid AND r.conrelid <> c.conrelid "
        " AND r.conindid = c.conindid)", table)
    names = {r["conname"] for r in await conn.fetch(
        "SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass", table)}
    indexes = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                               "AND tablename = $1", table)
    restore: list[str] = []
    for row in indexes:
        if row["indexname"] not in names:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
    for kind in ("f", "u", "p"):
        for row in constraints:
            if row["contype"] == kind:
                await conn.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{row["conname"]}"')
    for kind in ("p", "u", "f"):
        restore += [f'ALTER TABLE "{table}" ADD CONSTRAINT "{r["conname"]}" {r["def"]}'
                    for r in constraints if r["contype"] == kind]
    restore += [r["indexdef"] for r in indexes if r["indexname"] not in names]
    return restore


async def _restore(database: str, statements: list[str]) -> None:
    conn = await asyncpg.connect(dsn(database))
    try:
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _build(database: str) -> list[str]:
    from console.migrations import upgrade

    notes: list[str] = []
    url = sa_url(database)
    step = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal step
        now = time.perf_counter()
        print(f"  [data] {what}: {now - step:.1f} s", flush=True)
        notes.append(f"{what}: {now - step:.1f} s")
        step = now

    await asyncio.to_thread(upgrade, url)
    lap("migrations")
    await add_agents(url, AGENTS)
    lap(f"{AGENTS} agents")
    summary = await _seed(url, SEEDED)
    lap(f"console.seed: {summary}")
    conn = await asyncpg.connect(dsn(database))
    try:
        await conn.execute("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
        start = int(await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM customers"))
        bulk = CUSTOMERS - int(await conn.fetchval("SELECT count(*) FROM customers"))
        async with conn.transaction():
            await conn.execute(BULK_CUSTOMERS, start, bulk, list(SECTORS), list(FIRST), list(LAST), AGENTS)
            await conn.execute("SELECT setval(pg_get_serial_sequence('customers', 'id'), "
                               "(SELECT max(id) FROM customers))")
        lap(f"{bulk} generated customers")
        has_terms = bool(await conn.fetchval("SELECT to_regclass('search_terms') IS NOT NULL"))
        tables = ["contact_points", *(["search_terms"] if has_terms else [])]
        restore = {table: await _strip(conn, table) for table in tables}
        async with conn.transaction():
            await conn.execute(BULK_PHONES, start)
            await conn.execute(BULK_EMAILS, start, list(DOMAINS))
            if has_terms:
                await conn.execute(BULK_TERMS, start)
        lap("their contact points" + (" and search terms" if has_terms else ""))
        # Two cores: the two tables' keys and indexes are built side by side.
        await asyncio.gather(*(_restore(database, restore[table]) for table in tables))
        lap("keys and indexes of " + " and ".join(tables))
        if has_terms:
            notes.extend(await _check_terms(conn, start))
        notes.extend(await _check_normalised(conn, start))
        await conn.execute("VACUUM (ANALYZE)")
        lap("VACUUM ANALYZE")
    finally:
        await conn.close()
    return notes


async def _check_normalised(conn: asyncpg.Connection, start: int) -> list[str]:
    """The generated contact points read as console.customers.normalize reads them."""
    from console.customers import normalize_email, normalize_phone

    rows = await conn.fetch("SELECT kind, value, normalized FROM contact_points WHERE customer_id >= $1 "
                            "ORDER BY random() LIMIT 500", start)
    wrong = [r for r in rows if (normalize_phone(r["value"], REGION) if r["kind"] == "phone"
                                 else normalize_email(r["value"])) != r["normalized"]]
    if wrong:
        raise RuntimeError(f"generated contact points do not normalise as the console does: {wrong[:3]}")
    return [f"checked {len(rows)} generated contact points against console.customers.normalize_*: all equal"]


async def _check_terms(conn: asyncpg.Connection, start: int) -> list[str]:
    try:
        from console.search import customer_terms
    except ImportError:
        return ["console.search.customer_terms not found; generated search terms not checked"]
    ids = [r[0] for r in await conn.fetch("SELECT id FROM customers WHERE id >= $1 ORDER BY random() LIMIT 200",
                                          start)]
    differ = 0
    for customer_id in ids:
        row = await conn.fetchrow("SELECT name, company FROM customers WHERE id = $1", customer_id)
        points = [(r["kind"], r["normalized"]) for r in
                  await conn.fetch("SELECT kind, normalized FROM contact_points WHERE customer_id = $1", customer_id)]
        stored = {r[0] for r in await conn.fetch("SELECT term FROM search_terms WHERE customer_id = $1", customer_id)}
        if stored != customer_terms(row["name"], row["company"], points):
            differ += 1
    if differ:
        return [f"WARNING: {differ} of {len(ids)} sampled generated customers have other search terms than "
                "console.search.customer_terms makes (search is not benchmarked; B1-B5 do not read them)"]
    return [f"checked the search terms of {len(ids)} generated customers against console.search: all equal"]


async def callers(database: str, limit: int, seed: int = 11) -> list[str]:
    """Phone numbers of seeded customers (the ones with history), as a phone system sends them (E.164)."""
    conn = await asyncpg.connect(dsn(database))
    try:
        rows = await conn.fetch("SELECT DISTINCT normalized FROM contact_points WHERE kind = 'phone' AND "
                                "customer_id <= $1", SEEDED)
    finally:
        await conn.close()
    numbers = sorted(str(r[0]) for r in rows)
    random.Random(seed).shuffle(numbers)
    return numbers[:limit]


async def build_sqlite(path: Path, agents: int, customers: int) -> dict[str, Any]:
    """The embedded default: a SQLite file with agents and seeded customers (what `console seed` makes)."""
    from console.migrations import upgrade

    url = f"sqlite+aiosqlite:///{path}"
    began = time.perf_counter()
    await asyncio.to_thread(upgrade, url)
    await add_agents(url, agents)
    summary = await _seed(url, customers)
    return {"url": url, "seconds": time.perf_counter() - began, "seed": summary}


async def sqlite_callers(url: str, limit: int, seed: int = 11) -> list[str]:
    from sqlalchemy import select

    from console.db import Database
    from console.models import ContactKind, ContactPoint

    db = Database(url)
    try:
        async with db.transaction() as session:
            numbers = sorted(set(await session.scalars(
                select(ContactPoint.normalized).where(ContactPoint.kind == ContactKind.PHONE))))
    finally:
        await db.close()
    random.Random(seed).shuffle(numbers)
    return numbers[:limit]


async def available_agents(url: str, count: int, channel: str, each: int,
                           setup: Callable[[Any], Awaitable[T]]) -> T:
    """A migrated database with agents 1..count who take `each` contacts of `channel` at once and
    are available, and whatever else `setup` makes in the same transaction (its result)."""
    from console import config, routing
    from console.db import Database
    from console.migrations import upgrade
    from console.ports import Context, NullNotifier

    await asyncio.to_thread(upgrade, url)
    await add_agents(url, count)
    db = Database(url)
    try:
        async with db.transaction() as session:
            for i in range(1, count + 1):
                await config.configure_agent(session, f"agent{i}@bench.example", capacity={channel: each})
            made = await setup(session)
        ctx = Context(db, NullNotifier(), "NL")
        for i in range(1, count + 1):
            await routing.set_status(ctx, i, "available")
        return made
    finally:
        await db.close()
