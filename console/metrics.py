"""The definition of every figure supervisors and managers read, in one place.

The wallboard's figures for today and the reports' figures for any range are sums of the same
`Tally`, made by `tally` from the conversations (console.rollups keeps one per hour), so both give
the same numbers for the same interval. README, "Supervisors: the figures", says the same in words.

A **contact** is one part of an incoming conversation that entered a queue: a call, chat or mail
that arrived, or a part that a handoff sent on (so a transfer counts again in the queue it went
to). Outgoing conversations, and mails a machine sent that were kept without being routed, are no
contacts. A contact counts in the hour it **arrived** in (the console's time zone), in its queue and
channel, and for the agent who answered it, whenever its answer or end comes.

- offered: contacts that arrived.
- answered: offered contacts an agent answered (accepted, or picked up the phone).
- answered within threshold: answered at most the queue's `service_level_seconds` after arriving.
- abandoned: contacts the customer gave up before an answer, after the queue's
  `short_abandon_seconds`; short abandoned: those given up sooner (counted apart: a wrong number).
- service level = answered within threshold / (offered - short abandoned). A contact still waiting
  counts in the denominator until it is answered or given up.
- speed of answer (ASA) = the sum of the waits from arrival to answer / answered.
- handled: answered contacts whose work is done (closed, or handed on).
- handle time (AHT) = (talk + wrap-up) / handled; talk runs from the answer to the start of wrap-up
  (or the handoff, or the end), wrap-up from there to the close.
- abandonment rate = abandoned / (offered - short abandoned).
- wrap-up timeouts: handled contacts closed with the disposition 'wrap-up timeout'.
- satisfaction = the sum of ratings (1 to 5) / rated contacts.
- longest wait (live): the age of the oldest contact waiting for an agent now.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import ColumnElement, and_, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from console.models import Conversation, Direction, State
from console.wrapup import TIMEOUT_CODE

NO_QUEUE = 0  # the key of contacts without a queue, and of `agent_id` for contacts nobody answered


@dataclass(frozen=True)
class Thresholds:
    service_level_seconds: int = 20
    short_abandon_seconds: int = 5


class Row(NamedTuple):
    """What a contact's figures are made of: the columns of `ROWS`, in order."""

    queue_id: int | None
    channel: str
    agent_id: int | None
    created_at: datetime
    answered_at: datetime | None
    wrap_up_at: datetime | None
    closed_at: datetime | None
    abandoned_at: datetime | None
    transferred_at: datetime | None
    disposition: str | None
    rating: int | None


@dataclass
class Tally:
    """Counts and summed milliseconds that add up over hours, queues, channels and agents."""

    offered: int = 0
    answered: int = 0
    answered_in_threshold: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    answer_wait_ms: int = 0
    handled: int = 0
    talk_ms: int = 0
    wrap_ms: int = 0
    wrap_timeouts: int = 0
    rated: int = 0
    rating_sum: int = 0

    def add(self, other: Tally) -> Tally:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def counted(self) -> int:
        """The denominator of service level and abandonment rate."""
        return self.offered - self.short_abandoned

    @property
    def service_level(self) -> float | None:
        return self.answered_in_threshold / self.counted if self.counted > 0 else None

    @property
    def abandonment_rate(self) -> float | None:
        return self.abandoned / self.counted if self.counted > 0 else None

    @property
    def speed_of_answer(self) -> float | None:
        """Seconds."""
        return self.answer_wait_ms / self.answered / 1000 if self.answered else None

    @property
    def handle_time(self) -> float | None:
        """Seconds."""
        return (self.talk_ms + self.wrap_ms) / self.handled / 1000 if self.handled else None

    @property
    def satisfaction(self) -> float | None:
        return self.rating_sum / self.rated if self.rated else None


# A machine's mail kept on its thread is closed the moment it is stored, never offered, answered,
# given up or handed on: that is what sets it apart from every contact.
_KEPT_ONLY = and_(Conversation.state == State.CLOSED, Conversation.offered_at.is_(None),
                  Conversation.answered_at.is_(None), Conversation.abandoned_at.is_(None),
                  Conversation.transferred_at.is_(None))
IS_CONTACT: ColumnElement[bool] = and_(Conversation.direction == Direction.IN, not_(_KEPT_ONLY))

ROWS = (
    select(Conversation.queue_id, Conversation.channel, Conversation.agent_id, Conversation.created_at,
           Conversation.answered_at, Conversation.wrap_up_at, Conversation.closed_at, Conversation.abandoned_at,
           Conversation.transferred_at, Conversation.disposition, Conversation.rating)
    .where(IS_CONTACT))


async def contacts(session: AsyncSession, *where: ColumnElement[bool]) -> list[Row]:
    """The contacts (see the top of this module) that meet `where`."""
    return [Row(*found) for found in (await session.execute(ROWS.where(*where))).all()]


def arrived_between(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(Conversation.created_at >= start, Conversation.created_at < end)


def _ms(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


def figures_of(row: Row, thresholds: Thresholds) -> Tally:
    """One contact's part of the figures."""
    t = Tally(offered=1)
    if row.answered_at is not None:
        wait = _ms(row.created_at, row.answered_at)
        t.answered, t.answer_wait_ms = 1, wait
        t.answered_in_threshold = int(wait <= thresholds.service_level_seconds * 1000)
        done = row.closed_at or row.transferred_at
        if done is not None:
            talk_end = row.wrap_up_at or row.transferred_at or done
            t.handled, t.talk_ms = 1, _ms(row.answered_at, talk_end)
            if row.wrap_up_at is not None and row.closed_at is not None:
                t.wrap_ms = _ms(row.wrap_up_at, row.closed_at)
            t.wrap_timeouts = int(row.disposition == TIMEOUT_CODE)
    elif row.abandoned_at is not None:
        if _ms(row.created_at, row.abandoned_at) < thresholds.short_abandon_seconds * 1000:
            t.short_abandoned = 1
        else:
            t.abandoned = 1
    if row.rating is not None:
        t.rated, t.rating_sum = 1, row.rating
    return t


Key = tuple[int, str, int]  # queue id (NO_QUEUE), channel, answering agent id (NO_QUEUE: none)


def key_of(row: Row) -> Key:
    # A contact that only rang for an agent (and was given up, or moved on) is not theirs: the
    # conversation names the agent it rings for from the offer on.
    answered_by = row.agent_id if row.answered_at is not None else None
    return (row.queue_id or NO_QUEUE, str(getattr(row.channel, "value", row.channel)), answered_by or NO_QUEUE)


def tally(rows: list[Row], thresholds: dict[int, Thresholds]) -> tuple[dict[Key, Tally], dict[tuple[Key, str], int]]:
    """The figures of these contacts per queue, channel and agent, and how often each disposition
    closed them (a queue not in `thresholds` gets the defaults)."""
    out: dict[Key, Tally] = {}
    codes: dict[tuple[Key, str], int] = {}
    default = Thresholds()
    for row in rows:
        key = key_of(row)
        out.setdefault(key, Tally()).add(figures_of(row, thresholds.get(key[0], default)))
        if row.disposition and (row.closed_at is not None):
            codes[key, row.disposition] = codes.get((key, row.disposition), 0) + 1
    return out, codes


def waiting_now() -> ColumnElement[bool]:
    """Contacts waiting for an agent or ringing one now."""
    return and_(Conversation.state.in_((State.QUEUED, State.OFFERED)), Conversation.direction == Direction.IN)
