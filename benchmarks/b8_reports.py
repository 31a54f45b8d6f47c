"""B8 reports: a 30-day report over 1,000,000 conversations, from the hourly statistics.

A fresh PostgreSQL database gets 5 queues, 100 agents and CONVERSATIONS contacts spread evenly
over 30 days (generated inside PostgreSQL: calls, chats and mails; about 8 % abandoned, the rest
answered after 0 to 59 s, talked 1 to 8 minutes, wrapped up, with dispositions and some ratings).
Then, as after an upgrade, the statistics are counted from that history by console.rollups.sweep
(timed: the rounds the node holding the wallboard lease would run, a day per round), and checked
against a full recount of every conversation with console.metrics (per queue and channel, every
figure). The report the page shows (console.reports.build: per day, per queue, channel and agent,
and dispositions) is then built REPEATS times for the 30 days; the figure is the time per report.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from benchmarks.common import PhaseResult, drop_database, percentile, pg_admin, sa_url
from benchmarks.dataset import add_agents

CONVERSATIONS = 1_000_000
DAYS = 30
QUEUES = 5
AGENTS = 100
REPEATS = 20
ZONE = "Europe/Amsterdam"

# One row per contact, spread evenly over the days; a multiplicative hash of its number decides the
# rest, so every run has the same data.
CONTACTS = """
INSERT INTO conversations (channel, direction, state, routed_by_console, external_id, from_address, to_address,
                           queue_id, agent_id, created_at, offered_at, answered_at, wrap_up_at, closed_at,
                           abandoned_at, disposition, rating)
SELECT CASE WHEN h % 100 < 60 THEN 'call' WHEN h % 100 < 85 THEN 'chat' ELSE 'mail' END, 'in',
       CASE WHEN abandons THEN 'abandoned' ELSE 'closed' END, true, 'b8-' || g, '', '',
       1 + g % $3::int, CASE WHEN abandons THEN NULL ELSE 1 + h % $4::int END, created,
       CASE WHEN abandons THEN NULL ELSE created + make_interval(secs => wait / 2) END,
       CASE WHEN abandons THEN NULL ELSE created + make_interval(secs => wait) END,
       CASE WHEN abandons THEN NULL ELSE created + make_interval(secs => wait + talk) END,
       CASE WHEN abandons THEN NULL ELSE created + make_interval(secs => wait + talk + wrap) END,
       CASE WHEN abandons THEN created + make_interval(secs => 1 + h % 120) END,
       CASE WHEN abandons THEN NULL ELSE (ARRAY['sale', 'solved', 'callback', 'wrap-up timeout'])[1 + h % 4] END,
       CASE WHEN NOT abandons AND h % 7 = 0 THEN 1 + h % 5 END
FROM (SELECT g, h, (h / 7) % 100 < 8 AS abandons, (h / 11) % 60 AS wait, 60 + (h / 13) % 420 AS talk,
             10 + (h / 17) % 50 AS wrap,
             $1::timestamptz + (g - 1) * ($2::interval / $5::int) AS created
      FROM (SELECT g, (g::bigint * 2654435761) % 4294967296 AS h FROM generate_series(1, $5::int) g) numbers) s
"""


async def run(result: PhaseResult, run_id: str, conversations: int = CONVERSATIONS) -> None:
    import asyncpg

    from benchmarks.common import dsn
    from console import metrics, reports, rollups
    from console.db import Database
    from console.migrations import upgrade

    database = f"bench_{run_id}_b8"
    await pg_admin(f'CREATE DATABASE "{database}"')
    url = sa_url(database)
    zone = ZoneInfo(ZONE)
    try:
        await asyncio.to_thread(upgrade, url)
        await add_agents(url, AGENTS)
        now = datetime.now(UTC)
        first_day = (now.astimezone(zone) - timedelta(days=DAYS)).date()
        start = rollups.day_start(first_day, zone)
        conn = await asyncpg.connect(dsn(database))
        try:
            await conn.execute("INSERT INTO queues (name, offer_seconds, wrap_up_seconds, owner_first_seconds, "
                               "weight_a, weight_b, weight_c, created_at) SELECT 'queue ' || q, 20, 60, 15, 3, 2, "
                               "1, now() FROM generate_series(1, $1::int) q", QUEUES)
            began = time.perf_counter()
            await conn.execute(CONTACTS, start, timedelta(days=DAYS), QUEUES, AGENTS, conversations)
            await conn.execute("ANALYZE conversations")
            result.note(f"{conversations:,} conversations over {DAYS} days from {first_day} inserted in "
                        f"{time.perf_counter() - began:.0f} s")
        finally:
            await conn.close()

        db = Database(url)
        try:
            began = time.perf_counter()
            rounds = 1
            progress = await rollups.sweep(db, ZONE)
            while progress.backfill_left is not None:
                progress = await rollups.sweep(db, ZONE)
                rounds += 1
            counted = time.perf_counter() - began
            async with db.reading() as session:
                hours = await session.scalar(_count("stat_intervals"))
            result.figures["B8 statistics counted s"] = round(counted, 1)
            result.note(f"statistics counted from the history in {counted:.1f} s ({rounds} rounds of a day; "
                        f"{hours:,} hourly rows)")

            span = reports.parse_range(first_day.isoformat(), (first_day + timedelta(days=DAYS - 1)).isoformat(),
                                       zone, now.date())
            times: list[float] = []
            for _ in range(REPEATS):
                t0 = time.perf_counter()
                async with db.reading() as session:
                    report = await reports.build(session, span, "day", zone)
                times.append(time.perf_counter() - t0)
            p50, p95 = statistics.median(times), percentile(times, 95)
            result.figures["B8 report p50 ms"] = round(1000 * p50, 1)
            result.figures["B8 report max ms"] = round(1000 * max(times), 1)
            result.note(f"30-day report (per day, queue, channel, agent, dispositions) over "
                        f"{report.total.offered:,} contacts: p50 {1000 * p50:.1f} ms, p95 {1000 * p95:.1f} ms, "
                        f"max {1000 * max(times):.1f} ms over {REPEATS} builds")

            began = time.perf_counter()
            async with db.reading() as session:
                rows = await metrics.contacts(session, metrics.arrived_between(span.start, span.end))
                limits = await rollups.thresholds(session)
            full, _ = metrics.tally(rows, limits)
            recount: dict[tuple[int, str], metrics.Tally] = {}
            for (queue, channel, _agent), t in full.items():
                recount.setdefault((queue, channel), metrics.Tally()).add(t)
            async with db.reading() as session:
                kept = await rollups.sums(session, span.start, span.end, ("queue", "channel"))
            kept_by = {(int(str(k[0])), str(k[1])): t for k, t in kept.items()}
            same = kept_by == recount
            result.figures["B8 equals recount"] = "yes" if same else "NO"
            result.note(f"full recount of {len(rows):,} contacts with console.metrics in "
                        f"{time.perf_counter() - began:.0f} s: the hourly statistics "
                        + ("equal it in every figure, per queue and channel" if same else "DIFFER from it"))
            if not same:
                raise RuntimeError("the hourly statistics differ from a full recount")
        finally:
            await db.close()
    finally:
        if os.environ.get("B8_KEEP"):  # to look at the database afterwards
            result.note(f"kept database {database} (B8_KEEP is set); drop it when done")
        else:
            await drop_database(database)


def _count(table: str) -> object:
    from sqlalchemy import text

    return text(f"SELECT count(*) FROM {table}")
