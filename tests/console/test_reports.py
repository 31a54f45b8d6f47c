"""Reports over the scripted day of test_metrics: the same numbers per day, per hour of the day
over the clock change, per queue, channel and agent, and each table as CSV."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from console import reports, rollups
from console.errors import InvalidInput
from console.ports import Context
from console.web.reports import csv_rows
from tests.console.test_metrics import DAY_END, DAY_START, check_sales, scripted_day

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def test_a_range_is_local_days_and_bad_dates_are_said_in_words() -> None:
    span = reports.parse_range("2026-03-29", "2026-03-29", AMSTERDAM, date(2026, 4, 1))
    assert (span.start, span.end) == (DAY_START, DAY_END), "a day of 23 hours"
    week = reports.parse_range("", "", AMSTERDAM, date(2026, 4, 1))
    assert (week.first, week.last) == (date(2026, 3, 26), date(2026, 4, 1))
    with pytest.raises(InvalidInput, match="YYYY-MM-DD") as wrong:
        reports.parse_range("29-03-2026", "", AMSTERDAM, date(2026, 4, 1))
    assert wrong.value.field == "from"
    with pytest.raises(InvalidInput, match="comes after"):
        reports.parse_range("2026-04-02", "2026-04-01", AMSTERDAM, date(2026, 4, 1))
    with pytest.raises(InvalidInput, match="at most 366 days"):
        reports.parse_range("2024-01-01", "2026-04-01", AMSTERDAM, date(2026, 4, 1))


async def test_the_scripted_day_in_a_report_per_day_hour_queue_channel_and_agent(ctx: Context) -> None:
    await scripted_day(ctx)
    progress = await rollups.sweep(ctx.db, "Europe/Amsterdam")
    while progress.backfill_left is not None:
        progress = await rollups.sweep(ctx.db, "Europe/Amsterdam")
    span = reports.parse_range("2026-03-28", "2026-03-29", AMSTERDAM, date(2026, 4, 1))
    async with ctx.db.reading() as session:
        by_day = await reports.build(session, span, "day", AMSTERDAM)
        by_hour = await reports.build(session, reports.parse_range("2026-03-29", "2026-03-29", AMSTERDAM,
                                                                   date(2026, 4, 1)), "hour", AMSTERDAM)
    assert by_day.complete
    assert [line.label for line in by_day.over_time] == ["2026-03-28", "2026-03-29"]
    assert by_day.over_time[0].figures.offered == 1  # contact 11, just before midnight
    assert by_day.total.offered == 10  # 7 sales and 2 service on the 29th, 1 sales on the 28th
    queues = {line.label: line.figures for line in by_day.by_queue}
    assert queues["Sales"].offered == 8 and queues["Service"].offered == 2
    day_sales = {line.label: line.figures for line in by_hour.by_queue}["Sales"]
    check_sales(day_sales)
    hours = {line.label: line.figures.offered for line in by_hour.over_time}
    assert len(hours) == 24 and hours["01:00"] == 1 and hours["02:00"] == 0 and hours["09:00"] == 4
    agents = {line.label: line.figures.handled for line in by_hour.by_agent}
    assert agents == {"Anna": 3, "Bram": 3}
    assert {(line.label, line.figures.satisfaction) for line in by_hour.by_channel} >= {("chat", 4.0)}
    assert ("Sales", "sale", 2) in by_hour.dispositions and ("Sales", "wrap-up timeout", 1) in by_hour.dispositions

    rows = csv_rows(by_hour, "queue")
    assert rows[0][:3] == ["queue", "offered", "answered"]
    sales = next(row for row in rows if row[0] == "Sales")
    assert sales[1:3] == ["7", "4"] and sales[6] == "50.0", "offered, answered; service level in percent"
    assert csv_rows(by_hour, "dispositions")[0] == ["queue", "disposition", "count"]
