"""Reports over a range of days: the figures of console.metrics per day or hour of the day, per
queue, channel and agent, with dispositions, read from the hourly statistics (console.rollups).

Days are the console's local days (CONSOLE_TIMEZONE): a range from 1 to 31 March holds the hours
from local midnight on the 1st to local midnight after the 31st, whatever the clocks did between.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console import rollups
from console.errors import InvalidInput
from console.metrics import NO_QUEUE, Tally
from console.models import Agent, Queue

MAX_DAYS = 366
INTERVALS = ("day", "hour")
TABLES = ("time", "queue", "channel", "agent", "dispositions")


@dataclass(frozen=True)
class Range:
    first: date
    last: date  # included
    start: datetime  # UTC: local midnight before `first`
    end: datetime  # UTC: local midnight after `last`


def parse_range(first: str, last: str, zone: ZoneInfo, today: date) -> Range:
    """The days from `first` to `last` (YYYY-MM-DD, both included); empty: the last 7 days."""
    def day(text: str, name: str, default: date) -> date:
        if not text.strip():
            return default
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            raise InvalidInput("Give the date as YYYY-MM-DD, such as %(example)s.", field=name,
                               example=today.isoformat()) from None

    end_day = day(last, "to", today)
    start_day = day(first, "from", end_day - timedelta(days=6))
    if start_day > end_day:
        raise InvalidInput("The first day comes after the last.", field="from")
    if (end_day - start_day).days >= MAX_DAYS:
        raise InvalidInput("A report covers at most %(days)s days.", field="from", days=MAX_DAYS)
    return Range(start_day, end_day, rollups.day_start(start_day, zone),
                 rollups.day_start(end_day + timedelta(days=1), zone))


@dataclass(frozen=True)
class Line:
    label: str
    figures: Tally


@dataclass(frozen=True)
class Report:
    range: Range
    interval: str  # "day": a line per day; "hour": a line per hour of the day, summed over the days
    total: Tally
    over_time: tuple[Line, ...]
    by_queue: tuple[Line, ...]
    by_channel: tuple[Line, ...]
    by_agent: tuple[Line, ...]
    dispositions: tuple[tuple[str, str, int], ...]  # queue, code, how often
    complete: bool  # False while the history of an upgraded database is still being counted


async def build(session: AsyncSession, span: Range, interval: str, zone: ZoneInfo) -> Report:
    if interval not in INTERVALS:
        raise InvalidInput("Show the figures per day or per hour.", field="interval")
    hours = await rollups.totals(session, span.start, span.end)
    over_time = _over_time(hours, span, interval, zone)
    total = Tally()
    for line in over_time:
        total.add(line.figures)
    queues: dict[int, str] = {i: n for i, n in (await session.execute(select(Queue.id, Queue.name))).all()}
    agents: dict[int, str] = {i: n for i, n in (await session.execute(select(Agent.id, Agent.name))).all()}
    by_queue = await rollups.sums(session, span.start, span.end, ("queue",))
    by_channel = await rollups.sums(session, span.start, span.end, ("channel",))
    by_agent = await rollups.sums(session, span.start, span.end, ("agent",))
    codes: dict[tuple[str, str], int] = {}
    for ((queue_id,), code), count in (await rollups.disposition_sums(session, span.start, span.end,
                                                                       ("queue",))).items():
        name = _name(queues, queue_id)
        codes[name, code] = codes.get((name, code), 0) + count
    counted = await rollups.counted_from(session)
    return Report(
        span, interval, total, over_time,
        _lines({_name(queues, k[0]): t for k, t in by_queue.items()}),
        _lines({str(k[0]): t for k, t in by_channel.items()}),
        tuple(Line(_name(agents, k[0], none=""), t) for k, t in
              sorted(by_agent.items(), key=lambda item: _name(agents, item[0][0], none="~").casefold())
              if k[0] != NO_QUEUE),
        tuple(sorted(((q, c, n) for (q, c), n in codes.items()), key=lambda r: (r[0].casefold(), -r[2], r[1]))),
        counted is not None and counted <= span.start)


def _name(names: dict[int, str], key: object, none: str = "") -> str:
    ident = int(str(key))
    return none if ident == NO_QUEUE else names.get(ident, f"#{ident}")


def _lines(named: dict[str, Tally]) -> tuple[Line, ...]:
    ordered = sorted(named.items(), key=lambda item: (item[0] == "", item[0].casefold()))
    return tuple(Line(name, t) for name, t in ordered)


def _over_time(hours: list[tuple[datetime, tuple[object, ...], Tally]], span: Range, interval: str,
               zone: ZoneInfo) -> tuple[Line, ...]:
    if interval == "day":
        days = (span.last - span.first).days + 1
        slots = {(span.first + timedelta(days=n)).isoformat(): Tally() for n in range(days)}
        for start, _, figures in hours:
            slots.setdefault(start.astimezone(zone).date().isoformat(), Tally()).add(figures)
    else:
        slots = {f"{h:02d}:00": Tally() for h in range(24)}
        for start, _, figures in hours:  # a zone half an hour off UTC has its hours at :30
            slots.setdefault(start.astimezone(zone).strftime("%H:%M"), Tally()).add(figures)
    return tuple(Line(label, figures) for label, figures in sorted(slots.items()))
