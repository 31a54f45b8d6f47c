"""Opening hours of a chat site, as people write them: "mon-fri 09:00-17:00; sat 10:00-14:00".

Days are mon, tue, wed, thu, fri, sat, sun (a range like mon-fri, or a list like mon,wed); each
part gives one or more time ranges separated by commas. The hours hold in the site's time zone,
so they stay right over daylight-saving changes. No hours at all means always open.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from console.errors import InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")

Hours = dict[int, list[tuple[time, time]]]  # weekday (Monday 0) to its open ranges


def _days(text: str) -> list[int]:
    found: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise InvalidInput("%(days)s are not days; write mon, tue, ... sun, or a range like mon-fri",
                               field="hours", days=text[:40])
        start, end = DAYS.index(first), DAYS.index(last or first)
        found += list(range(start, end + 1)) if start <= end else [*range(start, 7), *range(0, end + 1)]
    return found


def _clock(hour: str, minute: str) -> time:
    h, m = int(hour), int(minute)
    if h == 24 and m == 0:
        return time.max
    if not (0 <= h < 24 and 0 <= m < 60):
        raise InvalidInput("%(value)s is not a time of day", field="hours", value=f"{hour}:{minute}")
    return time(h, m)


def parse(text: str | None) -> Hours:
    """The hours in `text`; an empty text is an empty table (always open)."""
    table: Hours = {}
    for part in (text or "").split(";"):
        part = part.strip().lower()
        if not part:
            continue
        days, _, ranges = part.partition(" ")
        if not ranges.strip():
            raise InvalidInput("%(part)s gives days but no hours, like mon-fri 09:00-17:00", field="hours",
                               part=part[:40])
        spans = []
        for span in ranges.split(","):
            match = _RANGE.match(span.strip())
            if match is None:
                raise InvalidInput("%(span)s is not a time range like 09:00-17:00", field="hours", span=span[:40])
            start, end = _clock(match[1], match[2]), _clock(match[3], match[4])
            if end <= start:
                raise InvalidInput("%(span)s ends before it starts", field="hours", span=span.strip()[:40])
            spans.append((start, end))
        for day in _days(days):
            table.setdefault(day, []).extend(spans)
    return table


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("%(zone)s is not a time zone; write it like Europe/Amsterdam", field="timezone",
                           zone=name[:60]) from None
    return name.strip()


def is_open(text: str | None, zone: str, at: datetime) -> bool:
    """Whether the hours in `text` hold at `at` (an aware datetime) in time zone `zone`."""
    table = parse(text)
    if not table:
        return True
    local = at.astimezone(ZoneInfo(zone))
    now = local.time()
    return any(start <= now < end for start, end in table.get(local.weekday(), []))
