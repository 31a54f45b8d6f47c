"""What the supervisors' wallboard shows: the queues today and now, the agents, who waits.

`board` reads it in a handful of statements; today's figures are the hourly statistics of
console.rollups (the definitions of console.metrics), so the wallboard and a report of today give
the same numbers. A `Board` holds times, not ages (the page counts ages up by itself), so two reads
of an unchanged console are equal, and the web layer pushes a board only when it changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from console import rollups
from console.metrics import NO_QUEUE, Tally, waiting_now
from console.models import Agent, AgentStatus, Conversation, Offer, OfferState, Queue, State
from console.routing import RINGS_SOMEONE

MAX_WAITING = 100  # contacts listed one by one; the queue rows count all of them


@dataclass(frozen=True)
class QueueLine:
    """One queue and channel: today's figures and what waits now."""

    queue_id: int
    name: str
    channel: str
    today: Tally
    waiting: int
    ringing: int
    oldest: datetime | None  # the arrival of the contact that has waited longest, of those waiting now
    service_level_seconds: int
    service_level_goal: int  # percent
    longest_wait_seconds: int
    short_abandon_seconds: int
    wait_breached: bool  # the oldest has waited longer than the queue allows
    level_breached: bool  # today's service level is under the queue's goal, out of reach now

    @property
    def breached(self) -> bool:
        return self.wait_breached or self.level_breached


@dataclass(frozen=True)
class AgentLine:
    id: int
    name: str
    status: str  # an AgentStatus value
    since: datetime
    reason: str | None
    open: tuple[tuple[int, str, str], ...]  # (conversation id, channel, state) they handle now
    handled_today: int


@dataclass(frozen=True)
class Waiting:
    conversation_id: int
    channel: str
    queue: str
    party: str  # who waits: a number, an address, a chat visitor
    since: datetime
    ringing: tuple[str, ...]  # the agents it rings now


@dataclass(frozen=True)
class Board:
    day_start: datetime
    queues: tuple[QueueLine, ...]
    agents: tuple[AgentLine, ...]
    waiting: tuple[Waiting, ...]
    waiting_total: int


async def board(session: AsyncSession, zone: ZoneInfo, now: datetime) -> Board:
    day_start, day_end = rollups.day_of(now, zone)
    today = await rollups.sums(session, day_start, day_end, by=("queue", "channel"))
    handled = await rollups.sums(session, day_start, day_end, by=("agent",))
    counts = await _waiting_counts(session)
    listed = await _waiting_list(session)
    queues = await _queues(session, today, counts, now)
    agents = await _agents(session, {int(str(key[0])): t.handled for key, t in handled.items()})
    return Board(day_start, queues, agents, listed, sum(w.waiting + w.ringing for w in counts.values()))


@dataclass
class Waits:
    """What waits now in one queue and channel."""

    waiting: int = 0
    ringing: int = 0
    arrivals: list[datetime] = field(default_factory=list)  # of all of them, waiting or ringing


WaitCounts = dict[tuple[int, str], Waits]


async def _waiting_counts(session: AsyncSession) -> WaitCounts:
    ringing = (Conversation.state == State.OFFERED) & RINGS_SOMEONE
    rows = await session.execute(
        select(Conversation.queue_id, Conversation.channel, ringing.label("ringing"), Conversation.created_at)
        .where(waiting_now()))
    out: WaitCounts = {}
    for queue_id, channel, rings, arrived in rows.all():
        waits = out.setdefault((queue_id or NO_QUEUE, str(getattr(channel, "value", channel))), Waits())
        if rings:
            waits.ringing += 1
        else:
            waits.waiting += 1
        waits.arrivals.append(arrived)
    return out


async def _waiting_list(session: AsyncSession) -> tuple[Waiting, ...]:
    rows = (await session.execute(
        select(Conversation.id, Conversation.channel, func.coalesce(Queue.name, ""), Conversation.from_address,
               Conversation.created_at)
        .outerjoin(Queue, Queue.id == Conversation.queue_id)
        .where(waiting_now()).order_by(Conversation.created_at, Conversation.id).limit(MAX_WAITING))).all()
    ringing: dict[int, list[str]] = {}
    if rows:
        offers = await session.execute(
            select(Offer.conversation_id, Agent.name).join(Agent, Agent.id == Offer.agent_id)
            .where(Offer.state == OfferState.PENDING, Agent.status != AgentStatus.OFFLINE,
                   Offer.conversation_id.in_([r[0] for r in rows])).order_by(Agent.name))
        for conversation_id, name in offers.all():
            ringing.setdefault(conversation_id, []).append(name)
    return tuple(Waiting(cid, str(channel.value), queue, party, since, tuple(ringing.get(cid, ())))
                 for cid, channel, queue, party, since in rows)


async def _queues(session: AsyncSession, today: dict[tuple[object, ...], Tally], counts: WaitCounts,
                  now: datetime) -> tuple[QueueLine, ...]:
    queues = {row.id: row for row in (await session.execute(
        select(Queue.id, Queue.name, Queue.service_level_seconds, Queue.service_level_goal,
               Queue.longest_wait_seconds, Queue.short_abandon_seconds))).all()}
    keys = {(int(str(q)), str(c)) for q, c in today} | set(counts)
    keys |= {(queue_id, "") for queue_id in queues if not any(k[0] == queue_id for k in keys)}
    lines = []
    for queue_id, channel in keys:
        q = queues.get(queue_id)
        figures = today.get((queue_id, channel), Tally())
        waits = counts.get((queue_id, channel), Waits())
        oldest = min(waits.arrivals, default=None)
        sl_seconds, goal, longest, short = ((q.service_level_seconds, q.service_level_goal, q.longest_wait_seconds,
                                             q.short_abandon_seconds) if q is not None else (20, 80, 60, 5))
        # The goal is missed only when it is out of reach: even if every contact still within the
        # threshold were answered in time (a first caller ringing for two seconds is no alarm).
        in_time = sum(1 for arrived in waits.arrivals if (now - arrived).total_seconds() <= sl_seconds)
        reachable = figures.answered_in_threshold + in_time
        lines.append(QueueLine(
            queue_id, q.name if q is not None else "", channel, figures, waits.waiting, waits.ringing, oldest,
            sl_seconds, goal, longest, short,
            wait_breached=oldest is not None and (now - oldest).total_seconds() > longest,
            level_breached=figures.counted > 0 and reachable * 100 < goal * figures.counted))
    return tuple(sorted(lines, key=lambda line: (line.name == "", line.name.casefold(), line.channel)))


async def _agents(session: AsyncSession, handled: dict[int, int]) -> tuple[AgentLine, ...]:
    open_rows = (await session.execute(
        select(Conversation.agent_id, Conversation.id, Conversation.channel, Conversation.state)
        .where(Conversation.state.in_((State.ACTIVE, State.WRAP_UP)), Conversation.agent_id.is_not(None))
        .order_by(Conversation.id))).all()
    handling: dict[int, list[tuple[int, str, str]]] = {}
    for agent_id, cid, channel, state in open_rows:
        assert agent_id is not None
        handling.setdefault(agent_id, []).append((cid, str(channel.value), str(state.value)))
    agents = (await session.execute(
        select(Agent.id, Agent.name, Agent.status, Agent.status_since, Agent.away_reason)
        .where((Agent.status != AgentStatus.OFFLINE) | Agent.id.in_(list(handling) or [0]))
        .order_by(Agent.name, Agent.id))).all()
    return tuple(AgentLine(a.id, a.name, str(a.status.value), a.status_since,
                           a.away_reason if a.status == AgentStatus.AWAY else None,
                           tuple(handling.get(a.id, ())), handled.get(a.id, 0)) for a in agents)
