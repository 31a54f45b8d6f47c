"""B4 matching: customer lookup by phone and by email at 1,000,000 customers, p99.

What is timed is `console.customers.match(session, kind, raw, region)`, the call `arrive` makes for
every newCall: normalising the number or address as received, and the indexed query, through the
console's own Database (SQLAlchemy async, asyncpg). Lookups run one after the other inside open
transactions of 100, as `arrive` runs it inside its transaction. Then the same lookups are split
into their parts (normalising alone; the bare query through asyncpg, prepared) to show where the
time goes, and EXPLAIN ANALYZE shows the plan.
"""

from __future__ import annotations

import random
import time

import asyncpg

from benchmarks.common import REGION, PhaseResult, Summary, dsn, sa_url

LOOKUPS = 3000
WARM_UP = 300
PER_TRANSACTION = 100


def _phone_forms(value: str, normalized: str, rng: random.Random) -> str:
    """How a phone system or a person may send the number: as stored, E.164, national, 00-international."""
    national = "0" + normalized[3:] if normalized.startswith("+31") else None
    forms = [value, normalized, normalized.lstrip("+")]
    if national:
        forms += [national, f"{national[:3]} {national[3:6]} {national[6:]}"]
    forms.append("00" + normalized[1:])
    return rng.choice(forms)


def _email_form(value: str, rng: random.Random) -> str:
    return rng.choice([value, value.lower(), value.upper(), f" {value} "])


async def _sample(database: str, rng: random.Random) -> dict[str, list[tuple[str, int]]]:
    conn = await asyncpg.connect(dsn(database))
    try:
        top = int(await conn.fetchval("SELECT max(id) FROM customers"))
        ids = rng.sample(range(1, top + 1), LOOKUPS * 3)
        rows = await conn.fetch("SELECT customer_id, kind, value, normalized FROM contact_points "
                                "WHERE customer_id = ANY($1::int[]) AND kind IN ('phone', 'email')", ids)
    finally:
        await conn.close()
    phones = [(_phone_forms(r["value"], r["normalized"], rng), r["customer_id"]) for r in rows if r["kind"] == "phone"]
    emails = [(_email_form(r["value"], rng), r["customer_id"]) for r in rows if r["kind"] == "email"]
    rng.shuffle(phones)
    rng.shuffle(emails)
    return {"phone": phones[:LOOKUPS + WARM_UP], "email": emails[:LOOKUPS + WARM_UP]}


async def run(database: str, result: PhaseResult) -> None:
    from console.customers import match, normalize
    from console.db import Database
    from console.models import ContactKind

    rng = random.Random(44)
    samples = await _sample(database, rng)
    db = Database(sa_url(database))
    try:
        for kind_name, lookups in samples.items():
            kind = ContactKind(kind_name)
            timings: list[float] = []
            misses = 0
            for offset in range(0, len(lookups), PER_TRANSACTION):
                async with db.transaction() as session:
                    for index, (raw, expected) in enumerate(lookups[offset:offset + PER_TRANSACTION], offset):
                        began = time.perf_counter()
                        found = await match(session, kind, raw, REGION)
                        spent = time.perf_counter() - began
                        if index >= WARM_UP:
                            timings.append(spent)
                            misses += expected not in found
            summary = Summary.of(timings)
            result.figures[f"B4 {kind_name} p99 ms"] = round(summary.p99, 3)
            result.figures[f"B4 {kind_name} p50 ms"] = round(summary.p50, 3)
            result.note(f"match by {kind_name}: p50 {summary.p50:.3f} ms, p95 {summary.p95:.3f} ms, "
                        f"p99 {summary.p99:.3f} ms, max {summary.max:.2f} ms over {summary.count} lookups "
                        f"({misses} did not find the expected customer)")
            # Where the time goes: normalising alone, and the bare query through asyncpg.
            normalising = []
            for raw, _ in lookups[WARM_UP:]:
                began = time.perf_counter()
                normalize(kind, raw, REGION)
                normalising.append(time.perf_counter() - began)
            norm = Summary.of(normalising)
            conn = await asyncpg.connect(dsn(database))
            try:
                query = await conn.prepare(
                    "SELECT DISTINCT customer_id FROM contact_points WHERE kind = $1 AND normalized = $2 "
                    "ORDER BY customer_id LIMIT 20")
                values = [normalize(kind, raw, REGION) or "" for raw, _ in lookups]
                bare = []
                for index, value in enumerate(values):
                    began = time.perf_counter()
                    await query.fetch(kind_name, value)
                    if index >= WARM_UP:
                        bare.append(time.perf_counter() - began)
                plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) SELECT DISTINCT customer_id FROM contact_points "
                                        "WHERE kind = $1 AND normalized = $2 ORDER BY customer_id LIMIT 20",
                                        kind_name, values[-1])
            finally:
                await conn.close()
            raw_q = Summary.of(bare)
            result.note(f"  parts ({kind_name}): normalising p50 {norm.p50:.3f} / p99 {norm.p99:.3f} ms; "
                        f"bare prepared query via asyncpg p50 {raw_q.p50:.3f} / p99 {raw_q.p99:.3f} ms; "
                        f"the rest is SQLAlchemy (statement building, result processing)")
            result.figures[f"B4 {kind_name} parts p99 ms"] = {"normalise": round(norm.p99, 3),
                                                             "bare query": round(raw_q.p99, 3)}
            lines = [str(r[0]) for r in plan]
            result.details.append(f"  plan ({kind_name}): " + " | ".join(line.strip() for line in lines))
    finally:
        await db.close()
