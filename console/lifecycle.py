"""The states a conversation and an agent move through, each move checked and recorded.

    queued -> offered -> active -> wrap_up -> closed
       |         |          \\-> transferred
       |         \\-> queued (declined, rang out, agent left)
       \\---------\\-> abandoned (the customer left before anyone answered)

Every move of a conversation is stored as a ConversationEvent, every presence change as a
StatusPeriod, so wait, talk, wrap-up and time-in-state can be computed later.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from console import changes
from console.errors import Conflict
from console.models import Agent, AgentStatus, Conversation, ConversationEvent, State, StatusPeriod, utcnow

MOVES: dict[State, frozenset[State]] = {
    State.QUEUED: frozenset({State.OFFERED, State.ACTIVE, State.ABANDONED}),
    State.OFFERED: frozenset({State.OFFERED, State.QUEUED, State.ACTIVE, State.ABANDONED}),
    State.ACTIVE: frozenset({State.ACTIVE, State.WRAP_UP, State.TRANSFERRED}),
    State.WRAP_UP: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
    State.ABANDONED: frozenset(),
    State.TRANSFERRED: frozenset(),
}
ENDED = (State.WRAP_UP, State.CLOSED, State.ABANDONED, State.TRANSFERRED)
STAMP = {
    State.OFFERED: "offered_at",
    State.ACTIVE: "answered_at",
    State.WRAP_UP: "wrap_up_at",
    State.CLOSED: "closed_at",
    State.ABANDONED: "abandoned_at",
    State.TRANSFERRED: "transferred_at",
}


def can_move(frm: State, to: State) -> bool:
    return to in MOVES[frm]


def record_arrival(session: AsyncSession, conversation: Conversation) -> None:
    event = ConversationEvent(conversation_id=conversation.id, from_state=None, to_state=conversation.state,
                              at=conversation.created_at, detail="arrived")
    session.add(event)
    changes.event_written(session, event)


def move(conversation: Conversation, to: State, session: AsyncSession, *, agent_id: int | None = None,
         detail: str | None = None, at: datetime | None = None) -> None:
    """Move the conversation to `to`, or raise Conflict naming both states."""
    frm = conversation.state
    if not can_move(frm, to):
        raise Conflict("This conversation cannot go from %(frm)s to %(to)s.", field="state",
                       frm=frm.value, to=to.value)
    now = at or utcnow()
    conversation.state = to
    stamp = STAMP.get(to)
    if stamp and getattr(conversation, stamp) is None:
        setattr(conversation, stamp, now)
    event = ConversationEvent(conversation_id=conversation.id, from_state=frm, to_state=to, agent_id=agent_id,
                              detail=(detail or "")[:200] or None, at=now)
    session.add(event)
    changes.event_written(session, event)


# Built once: every presence change runs it.
_END_PERIOD = (update(StatusPeriod)
               .where(StatusPeriod.agent_id == bindparam("agent"), StatusPeriod.ended_at.is_(None))
               .values(ended_at=bindparam("now")).execution_options(synchronize_session=False))


async def set_presence(session: AsyncSession, agent: Agent, status: AgentStatus, reason: str | None = None,
                       *, at: datetime | None = None) -> bool:
    """Put the agent in `status`, closing the period of the previous one; False when unchanged."""
    if agent.status is status and agent.away_reason == reason:
        return False
    now = at or utcnow()
    await session.execute(_END_PERIOD, {"agent": agent.id, "now": now})
    period = StatusPeriod(agent_id=agent.id, status=status, reason=reason, started_at=now)
    session.add(period)
    changes.period_started(session, period)
    agent.status = status
    agent.away_reason = reason if status is AgentStatus.AWAY else None
    agent.status_since = now
    if status is AgentStatus.AVAILABLE:
        agent.idle_since = now
    agent_id, shown_reason = agent.id, agent.away_reason
    changes.emit(session, lambda: changes.StatusChanged(agent_id, status, shown_reason, now, period.id))
    return True


async def time_in_states(session: AsyncSession, agent_id: int, until: datetime | None = None
                         ) -> dict[AgentStatus, float]:
    """Seconds the agent spent in each presence state (open periods count up to `until`)."""
    end = until or utcnow()
    totals: dict[AgentStatus, float] = {}
    periods = await session.execute(
        select(StatusPeriod.status, StatusPeriod.started_at, StatusPeriod.ended_at)
        .where(StatusPeriod.agent_id == agent_id))
    for status, started, ended in periods.all():
        totals[status] = totals.get(status, 0.0) + ((ended or end) - started).total_seconds()
    return totals
