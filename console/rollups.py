"""Hourly statistics kept as conversations change, so a month's report reads a few thousand rows.

An hour's rows (`stat_intervals` per queue and channel, `stat_agents` per answering agent,
`stat_dispositions`) are the figures of console.metrics for the
contacts that arrived in that hour, counted again from the conversations whenever one of them
changed: recounting an hour is idempotent, so an hour counted twice (two nodes, an overlap of the
window below) is still right, and the rows always equal a full recount. Hours are the console's
local hours (CONSOLE_TIMEZONE), stored by their start in UTC: a day of 23 or 25 hours over a
daylight-saving change has 23 or 25 of them.

`sweep` runs on the node that holds the statistics lease, every second: it recounts the hours of
the conversations that changed since its last round (their events, their ratings), and counts a
slice of the history that came before the statistics (an upgraded database), newest first, until
all is counted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from console.db import Database
from console.metrics import NO_QUEUE, Row, Tally, Thresholds, arrived_between, contacts, tally
from console.models import (
    Conversation,
    ConversationEvent,
    Queue,
    RollupCursor,
    StatAgent,
    StatDisposition,
    StatInterval,
    utcnow,
)

CURSOR = "conversations"
HOUR = timedelta(hours=1)
# A change committed this long after its event's time is still seen: the window each round looks
# back over (transactions are short; one that waits longer than this for a lock is rare).
OVERLAP = timedelta(seconds=15)
BACKFILL_HOURS = 24  # hours of history counted per round while an upgraded database catches up
TALLY_FIELDS = tuple(f.name for f in fields(Tally))


def hour_of(at: datetime, zone: ZoneInfo) -> datetime:
    """The start (in UTC) of the local hour `at` falls in."""
    local = at.astimezone(zone)
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


async def thresholds(session: AsyncSession) -> dict[int, Thresholds]:
    rows = await session.execute(select(Queue.id, Queue.service_level_seconds, Queue.short_abandon_seconds))
    return {queue_id: Thresholds(sl, short) for queue_id, sl, short in rows.all()}


async def recount(session: AsyncSession, start: datetime, end: datetime, zone: ZoneInfo) -> int:
    """Count the hours from `start` to `end` (hour starts, end excluded) again; returns the contacts."""
    found = await contacts(session, arrived_between(start, end))
    by_hour: dict[datetime, list[Row]] = {}
    for row in found:
        by_hour.setdefault(hour_of(row.created_at, zone), []).append(row)
    limits = await thresholds(session)
    for table in (StatInterval, StatAgent, StatDisposition):
        await session.execute(delete(table).where(table.start >= start, table.start < end)
                              .execution_options(synchronize_session=False))
    intervals: list[dict[str, object]] = []
    agents: list[dict[str, object]] = []
    codes: list[dict[str, object]] = []
    for hour, rows in by_hour.items():
        figures, dispositions = tally(rows, limits)
        by_queue: dict[tuple[int, str], Tally] = {}
        by_agent: dict[int, Tally] = {}
        for (queue_id, channel, agent_id), t in figures.items():
            by_queue.setdefault((queue_id, channel), Tally()).add(t)
            if agent_id != NO_QUEUE:
                by_agent.setdefault(agent_id, Tally()).add(t)
        intervals += [{"start": hour, "queue_id": q, "channel": c, **_fields(t)} for (q, c), t in by_queue.items()]
        agents += [{"start": hour, "agent_id": a, **_fields(t)} for a, t in by_agent.items()]
        counted: dict[tuple[int, str, str], int] = {}
        for ((q, c, _), code), n in dispositions.items():
            counted[q, c, code[:100]] = counted.get((q, c, code[:100]), 0) + n
        codes += [{"start": hour, "queue_id": q, "channel": c, "code": code, "count": n}
                  for (q, c, code), n in counted.items()]
    for table, values in ((StatInterval, intervals), (StatAgent, agents), (StatDisposition, codes)):
        if values:
            await session.execute(insert(table), values)
    return len(found)


def _fields(t: Tally) -> dict[str, int]:
    return {f: getattr(t, f) for f in TALLY_FIELDS}


@dataclass(frozen=True)
class Progress:
    hours: int  # hours counted again this round
    backfill_left: datetime | None  # the history before this is not counted yet (None: all counted)


async def sweep(db: Database, zone_name: str, now: datetime | None = None) -> Progress:
    """One round: recount the hours that changed (all of today when a queue's thresholds did), then
    a slice of the history not counted yet, newest first (today is right at once after an upgrade)."""
    now = now or utcnow()
    zone = ZoneInfo(zone_name)
    async with db.transaction() as session:
        cursor = await session.get(RollupCursor, CURSOR, with_for_update=True)
        if cursor is None or cursor.zone != zone_name:
            cursor = await _start_over(session, cursor, zone_name, zone, now)
        changed = await _changed_hours(session, cursor.seen_until - OVERLAP, zone)
        limits = _signature(await thresholds(session))
        if cursor.thresholds != limits:
            # A queue's service level or short-abandon time changed: today is counted by the new
            # ones at once; days before keep the thresholds they were counted with.
            day_start = local_midnight(now, zone)
            changed |= {day_start + n * HOUR for n in range(int((now - day_start) / HOUR) + 1)}
            cursor.thresholds = limits
        for hour in sorted(changed):
            await recount(session, hour, hour + HOUR, zone)
        cursor.seen_until = now
        if cursor.backfill_next is not None and cursor.backfill_from is not None:
            start = max(cursor.backfill_from, cursor.backfill_next - BACKFILL_HOURS * HOUR)
            await recount(session, start, cursor.backfill_next, zone)
            cursor.backfill_next = start if start > cursor.backfill_from else None
            if cursor.backfill_next is None:
                cursor.backfill_from = None
        return Progress(len(changed), cursor.backfill_next)


def _signature(limits: dict[int, Thresholds]) -> str:
    return hashlib.sha256(repr(sorted(limits.items())).encode()).hexdigest()[:32]


async def _start_over(session: AsyncSession, cursor: RollupCursor | None, zone_name: str, zone: ZoneInfo,
                      now: datetime) -> RollupCursor:
    """No statistics yet (or they were counted in another time zone's hours): count everything,
    the history in slices from the hour the rounds take over back to its first conversation."""
    for table in (StatInterval, StatAgent, StatDisposition):
        await session.execute(delete(table).execution_options(synchronize_session=False))
    first = await session.scalar(select(func.min(Conversation.created_at)))
    upto = hour_of(now, zone) + HOUR
    if cursor is None:
        cursor = RollupCursor(name=CURSOR)
        session.add(cursor)
    cursor.zone, cursor.seen_until = zone_name, now
    cursor.thresholds = _signature(await thresholds(session))
    oldest = hour_of(first, zone) if first is not None else None
    cursor.backfill_from = oldest if oldest is not None and oldest < upto else None
    cursor.backfill_next = upto if cursor.backfill_from is not None else None
    await session.flush()
    return cursor


async def _changed_hours(session: AsyncSession, since: datetime, zone: ZoneInfo) -> set[datetime]:
    touched = (select(Conversation.created_at)
               .join(ConversationEvent, ConversationEvent.conversation_id == Conversation.id)
               .where(ConversationEvent.at >= since)
               .union(select(Conversation.created_at).where(Conversation.rated_at >= since)))
    return {hour_of(at, zone) for at in (await session.scalars(touched)).all()}


# Reading ---------------------------------------------------------------------------------------

Dimension = str  # "queue", "channel" (together or alone) or "agent" (alone)


def _table(by: tuple[Dimension, ...]) -> tuple[type[StatInterval] | type[StatAgent], list[Any]]:
    if by == ("agent",):
        return StatAgent, [StatAgent.agent_id]
    if not set(by) <= {"queue", "channel"}:
        raise ValueError(f"no statistics per {by}")
    columns = {"queue": StatInterval.queue_id, "channel": StatInterval.channel}
    return StatInterval, [columns[d] for d in by]


async def _summed(session: AsyncSession, start: datetime, end: datetime, by: Iterable[Dimension],
                  per_hour: bool) -> list[tuple[tuple[Any, ...], Tally]]:
    table, dims = _table(tuple(by))
    keys = [table.start, *dims] if per_hour else dims
    rows: Any = await session.execute(
        select(*keys, *(func.sum(getattr(table, f)) for f in TALLY_FIELDS))
        .where(table.start >= start, table.start < end).group_by(*keys))
    n = len(keys)
    return [(tuple(row[:n]), Tally(*(int(v or 0) for v in row[n:]))) for row in rows.all()]


async def totals(session: AsyncSession, start: datetime, end: datetime,
                 by: Iterable[Dimension] = ()) -> list[tuple[datetime, tuple[object, ...], Tally]]:
    """The summed figures of every hour from `start` to `end`, per hour and the dimensions `by`."""
    return [(key[0], key[1:], t) for key, t in await _summed(session, start, end, by, per_hour=True)]


async def sums(session: AsyncSession, start: datetime, end: datetime,
               by: Iterable[Dimension] = ()) -> dict[tuple[object, ...], Tally]:
    """The figures of the contacts that arrived from `start` to `end`, per the dimensions `by`
    (summed by the database)."""
    return dict(await _summed(session, start, end, by, per_hour=False))


async def _codes(session: AsyncSession, start: datetime, end: datetime, by: Iterable[Dimension],
                 per_hour: bool) -> list[tuple[tuple[Any, ...], str, int]]:
    columns = {"queue": StatDisposition.queue_id, "channel": StatDisposition.channel}
    keys = [StatDisposition.start] * per_hour + [columns[d] for d in by]
    rows: Any = await session.execute(
        select(*keys, StatDisposition.code, func.sum(StatDisposition.count))
        .where(StatDisposition.start >= start, StatDisposition.start < end).group_by(*keys, StatDisposition.code))
    n = len(keys)
    return [(tuple(row[:n]), str(row[n]), int(row[n + 1] or 0)) for row in rows.all()]


async def dispositions(session: AsyncSession, start: datetime, end: datetime,
                       by: Iterable[Dimension] = ()) -> list[tuple[datetime, tuple[object, ...], str, int]]:
    """How often each disposition closed the contacts from `start` to `end`, per hour and `by`
    (queue and or channel)."""
    return [(key[0], key[1:], code, n) for key, code, n in await _codes(session, start, end, by, per_hour=True)]


async def disposition_sums(session: AsyncSession, start: datetime, end: datetime,
                           by: Iterable[Dimension] = ()) -> dict[tuple[tuple[object, ...], str], int]:
    """How often each disposition closed the contacts from `start` to `end`, per `by`."""
    return {(key, code): n for key, code, n in await _codes(session, start, end, by, per_hour=False)}


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """The start (in UTC) of the local day `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def local_midnight(at: datetime, zone: ZoneInfo) -> datetime:
    """The start (in UTC) of the local day `at` falls in."""
    return day_start(at.astimezone(zone).date(), zone)


async def counted_from(session: AsyncSession) -> datetime | None:
    """From when on the statistics hold every contact: None before their first round; the end of
    the history still to be counted while an upgraded database catches up; far back once done."""
    cursor = await session.get(RollupCursor, CURSOR)
    if cursor is None:
        return None
    return cursor.backfill_next if cursor.backfill_next is not None else datetime.min.replace(tzinfo=UTC)


def day_of(at: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The start and end (in UTC) of the local day `at` falls in: 23, 24 or 25 hours apart."""
    start = local_midnight(at, zone)
    return start, local_midnight(start + timedelta(hours=25), zone)
