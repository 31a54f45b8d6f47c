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
from typing import Any

from sqlalchemy import Boolean, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from console import changes
from console.errors import Conflict
from console.models import Agent, AgentStatus, Channel, Conversation, ConversationEvent, State, StatusPeriod, utcnow
from console.readiness import ELIGIBLE, READY, RETURNED, apply, computed, flush_inputs, stored

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


def _presence_statements() -> tuple[Any, Any, Any, Any]:
    """The statements of a presence change, built once with bind parameters.

    The agent's UPDATE stores the new status and the readiness that follows from it (computed from
    the offers and conversations this transaction already wrote), so the commit has nothing left to
    recompute for the agent. PostgreSQL runs the whole change as one statement: closing the open
    period and opening the next are data-modifying CTEs of the agent's UPDATE. SQLite runs the
    three one after the other (in process, so they cost no round trips).
    """
    agent: Any = bindparam("p_agent")
    now = bindparam("p_now", type_=StatusPeriod.started_at.type)
    status = bindparam("p_status", type_=StatusPeriod.status.type)
    reason = bindparam("p_reason", type_=StatusPeriod.reason.type)
    idle = bindparam("p_idle", type_=Agent.idle_since.type)  # now when going available, else NULL
    eligible = bindparam("p_eligible", type_=Boolean())
    end_period = (update(StatusPeriod).where(StatusPeriod.agent_id == agent, StatusPeriod.ended_at.is_(None))
                  .values(ended_at=now))
    start_period = (insert(StatusPeriod).values(agent_id=agent, status=status, reason=reason, started_at=now)
                    .returning(StatusPeriod.id))
    values: dict[Any, Any] = {READY[channel]: computed(channel, eligible) for channel in RETURNED}
    values.update({
        Agent.status: bindparam("p_agent_status", type_=Agent.status.type),
        Agent.away_reason: bindparam("p_away_reason", type_=Agent.away_reason.type),
        Agent.status_since: now, Agent.idle_since: func.coalesce(idle, Agent.idle_since),
        Agent.ready_since: func.coalesce(idle, Agent.idle_since, now)})
    columns = (Agent.id, Agent.ready_call, Agent.ready_chat, Agent.ready_mail, Agent.ready_since)
    set_agent = (update(Agent).where(Agent.id == agent).values(values)
                 .execution_options(synchronize_session=False))
    ended, opened = end_period.cte("ended"), start_period.cte("opened")
    in_one = set_agent.add_cte(ended, opened).returning(select(opened.c.id).scalar_subquery(), *columns)
    return end_period.execution_options(synchronize_session=False), start_period, \
        set_agent.returning(*columns), in_one


_END_PERIOD, _START_PERIOD, _SET_AGENT, _PRESENCE_IN_ONE = _presence_statements()


async def set_presence(session: AsyncSession, agent: Agent, status: AgentStatus, reason: str | None = None,
                       *, at: datetime | None = None) -> bool:
    """Put the agent in `status`, closing the period of the previous one; False when unchanged.

    The agent is row-locked by the caller. Its readiness is stored with the status, from what this
    transaction changed so far (pending changes are flushed first).
    """
    if agent.status is status and agent.away_reason == reason:
        return False
    now = at or utcnow()
    shown_reason = reason if status is AgentStatus.AWAY else None
    idle = now if status is AgentStatus.AVAILABLE else None
    await flush_inputs(session)
    params = {"p_agent": agent.id, "p_now": now, "p_status": status, "p_reason": reason, "p_idle": idle,
              "p_eligible": status in ELIGIBLE, "p_agent_status": status, "p_away_reason": shown_reason}
    if session.get_bind().dialect.name == "postgresql":
        period_id, *row = (await session.execute(_PRESENCE_IN_ONE, params)).one()
    else:
        await session.execute(_END_PERIOD, params)
        period_id = (await session.execute(_START_PERIOD, params)).scalar_one()
        row = list((await session.execute(_SET_AGENT, params)).one())
    sync = session.sync_session
    apply(sync, [row])
    for key, value in (("status", status), ("away_reason", shown_reason), ("status_since", now)):
        set_committed_value(agent, key, value)
    if idle is not None:
        set_committed_value(agent, "idle_since", idle)
    stored(session, agent.id)
    agent_id, after = agent.id, (agent.after_status, agent.after_reason, agent.after_version)
    changes.emit(session, lambda: changes.StatusChanged(agent_id, status, shown_reason, now, period_id, *after))
    return True


HANDLING = (AgentStatus.BUSY, AgentStatus.WRAP_UP)
_OPEN_PERIOD = select(func.max(StatusPeriod.id)).where(StatusPeriod.agent_id == bindparam("agent"),
                                                      StatusPeriod.ended_at.is_(None))
_ON_CALL = select(Conversation.id).where(Conversation.agent_id == bindparam("agent"),
                                         Conversation.channel == Channel.CALL,
                                         Conversation.state.in_((State.ACTIVE, State.WRAP_UP))).limit(1)


def choose_after(agent: Agent, status: AgentStatus | None, reason: str | None = None) -> bool:
    """Note what the agent is to become when their last contact ends (None: available, as usual).

    The caller holds the agent's row lock and tells the page (`after_changed`) or changes the
    presence next (`set_presence` shows it). False when nothing changed.
    """
    reason = reason if status is not None else None
    if agent.after_status is status and agent.after_reason == reason:
        return False
    agent.after_status, agent.after_reason = status, reason
    agent.after_version = (agent.after_version or 0) + 1
    return True


async def after_changed(session: AsyncSession, agent: Agent) -> None:
    """Only the agent's choice for after the contact changed: the status line shows it, at the
    version of the status period it already shows."""
    period = await session.scalar(_OPEN_PERIOD, {"agent": agent.id})
    values = (agent.id, agent.status, agent.away_reason, agent.status_since, int(period or 0), agent.after_status,
              agent.after_reason, agent.after_version)
    changes.emit(session, lambda: changes.StatusChanged(*values))


async def step_away(session: AsyncSession, agent: Agent, status: AgentStatus, reason: str | None = None) -> bool:
    """The agent stops taking new work (away or offline): at once, unless they are on a call or
    wrapping one up. The phone system says when the talking ends, not the page: until then they
    stay busy or in wrap-up, and the choice applies when their last contact ends. Chats and mails
    need the page, so leaving it stops them at once. The agent is row-locked. False when nothing
    changed."""
    if agent.status in HANDLING and await session.scalar(_ON_CALL, {"agent": agent.id}) is not None:
        if not choose_after(agent, status, reason):
            return False
        await after_changed(session, agent)
        return True
    cleared = choose_after(agent, None)
    changed = await set_presence(session, agent, status, reason)
    if cleared and not changed:
        await after_changed(session, agent)
    return changed or cleared


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
