"""Who can take new work now, per channel, kept on the agent row.

An agent is ready for a channel when they are available or busy, on no call, not deactivated, and
have room for one more contact of that channel (a call also needs an extension). Counting an agent's ringing
offers and open conversations for every candidate made picking cost grow with the floor, so the
answer is stored in three plain columns, `ready_call`, `ready_chat` and `ready_mail`, beside
`ready_since` (the idle order), with a partial index each. Picking is then one indexed statement
that stops at the first ready agent and locks them (`FOR UPDATE SKIP LOCKED`).

The columns are recomputed from the offers and conversations themselves, in one UPDATE, for
every agent whose work or presence a transaction changed: an offer made or ended, a
conversation taken, handed on or ended, a warm handoff asked of them or answered, a status,
capacity or extension changed. A flush notes
those agents; routing recomputes them before it reads readiness (`refresh`), and the commit
recomputes what is left. The UPDATE takes the agents' row locks (routing holds them already), so
readiness always changes under the agent's lock, and a transaction that picks an agent by these
columns sees either the committed value or a locked row it skips. Code that changes those
tables with Core statements instead of the ORM must pass the agents to `refresh` itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, event, func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.orm.attributes import set_committed_value

from console.models import Agent, AgentStatus, Channel, Conversation, Handoff, HandoffState, Offer, OfferState, State

ELIGIBLE = (AgentStatus.AVAILABLE, AgentStatus.BUSY)
OPEN = (State.ACTIVE, State.WRAP_UP)
# Text messages (SMS, WhatsApp) are written like chats and share the chat's capacity and readiness:
# an operator with three chats open has no room for a text, and the other way round.
READY: dict[Channel, InstrumentedAttribute[bool]] = {
    Channel.CALL: Agent.ready_call, Channel.CHAT: Agent.ready_chat, Channel.MAIL: Agent.ready_mail,
    Channel.SMS: Agent.ready_chat}
CAPACITY: dict[Channel, InstrumentedAttribute[int]] = {
    Channel.CALL: Agent.capacity_call, Channel.CHAT: Agent.capacity_chat, Channel.MAIL: Agent.capacity_mail,
    Channel.SMS: Agent.capacity_chat}
# The channels whose contacts count against each channel's capacity.
SHARED: dict[Channel, tuple[Channel, ...]] = {Channel.CALL: (Channel.CALL,), Channel.CHAT: (Channel.CHAT, Channel.SMS),
                                              Channel.MAIL: (Channel.MAIL,), Channel.SMS: (Channel.CHAT, Channel.SMS)}
# What readiness is computed from, on each table; a change to any of these refreshes the agent.
AGENT_INPUTS = ("status", "extension", "capacity_call", "capacity_chat", "capacity_mail", "idle_since",
                "status_since", "deactivated_at")
OFFER_INPUTS = ("state", "agent_id", "conversation_id")
CONVERSATION_INPUTS = ("state", "agent_id", "channel")
HANDOFF_INPUTS = ("state", "to_agent_id")


def open_work(agent_id: Any, channel: Channel) -> ColumnElement[int]:
    """Contacts of `channel` the agent has: ringing offers, handled or in wrap-up, and those a
    colleague asks them to take over (a warm handoff reserves the room for it)."""
    offered = (select(func.count()).select_from(Offer).join(Conversation, Conversation.id == Offer.conversation_id)
               .where(Offer.agent_id == agent_id, Offer.state == OfferState.PENDING,
                      Conversation.channel.in_(SHARED[channel]))
               .scalar_subquery())
    handling = (select(func.count()).select_from(Conversation)
                .where(Conversation.agent_id == agent_id, Conversation.state.in_(OPEN),
                       Conversation.channel.in_(SHARED[channel])).scalar_subquery())
    asked = (select(func.count()).select_from(Handoff).join(Conversation, Conversation.id == Handoff.conversation_id)
             .where(Handoff.to_agent_id == agent_id, Handoff.state == HandoffState.PENDING,
                    Conversation.channel.in_(SHARED[channel])).scalar_subquery())
    return offered + handling + asked


def computed(channel: Channel, eligible: ColumnElement[bool] | None = None) -> ColumnElement[bool]:
    """Readiness for `channel` counted from the offers and conversations (per agent row).

    `eligible` replaces the agent's status test: a presence change stores the new status and its
    readiness in one UPDATE, where the row's status column still holds the old value.
    """
    conditions: list[ColumnElement[bool]] = [Agent.status.in_(ELIGIBLE) if eligible is None else eligible,
                                             Agent.deactivated_at.is_(None), open_work(Agent.id, Channel.CALL) == 0]
    if channel is Channel.CALL:
        # A call excludes other new work; with no call going on, room means a capacity of one.
        conditions += [CAPACITY[channel] >= 1, Agent.extension.is_not(None)]
    else:
        conditions.append(open_work(Agent.id, channel) < CAPACITY[channel])
    return and_(*conditions)


# The channels with a ready column of their own, in the order of the ready columns RETURNING gives.
RETURNED = (Channel.CALL, Channel.CHAT, Channel.MAIL)


def _refresh_statement() -> Any:
    values: dict[Any, Any] = {READY[channel]: computed(channel) for channel in RETURNED}
    values[Agent.ready_since] = func.coalesce(Agent.idle_since, Agent.status_since)
    return (update(Agent).where(Agent.id.in_(bindparam("ids", expanding=True))).values(values)
            .returning(Agent.id, Agent.ready_call, Agent.ready_chat, Agent.ready_mail, Agent.ready_since)
            .execution_options(synchronize_session=False))


# Built once: composing its subqueries took longer than running it.
REFRESH = _refresh_statement()


def apply(session: Session, rows: Iterable[Any]) -> None:
    """Bring loaded agents up to date with what the refresh stored, without marking them changed."""
    for agent_id, call, chat, mail, since in rows:
        agent = session.identity_map.get(session.identity_key(Agent, agent_id))
        if isinstance(agent, Agent):
            for key, value in (("ready_call", call), ("ready_chat", chat), ("ready_mail", mail),
                               ("ready_since", since)):
                set_committed_value(agent, key, value)


DUE = "readiness_due"  # session.info key: agents whose readiness this transaction changed


def _inputs_pending(session: Session) -> bool:
    """Whether unflushed changes include what readiness is computed from (other rows can wait)."""
    pending = (*session.new, *session.deleted, *session.dirty)
    return any(isinstance(obj, Offer | Conversation | Agent | Handoff) for obj in pending)


async def flush_inputs(session: AsyncSession) -> None:
    """Write what readiness is computed from, so a statement that computes it sees all of it."""
    if _inputs_pending(session.sync_session):
        await session.flush()  # the flush hook notes whose readiness the pending changes touch


def stored(session: AsyncSession, agent_id: int) -> None:
    """The agent's readiness was just computed and stored by a statement that saw every change of
    this transaction (after `flush_inputs`): the commit need not compute it again."""
    due: set[int] = session.info.get(DUE, set())
    due.discard(agent_id)


async def ready_channels(session: AsyncSession, agent: Agent) -> set[Channel]:
    """The channels a locked agent is ready for; computed again only when this transaction changed
    what it depends on (otherwise the loaded row, read under the lock, holds it already)."""
    await flush_inputs(session)
    if agent.id in session.info.get(DUE, ()):
        return (await refresh(session, [agent.id])).get(agent.id, set())
    return _channels({READY[channel].key for channel in RETURNED if getattr(agent, READY[channel].key)})


async def refresh(session: AsyncSession, agent_ids: Iterable[int] = ()) -> dict[int, set[Channel]]:
    """Recompute readiness now for the agents this transaction changed (and `agent_ids`).

    Routing calls this before it reads the columns; the commit does it for whatever is left.
    Returns the channels each recomputed agent is ready for.
    """
    await flush_inputs(session)
    due = sorted(session.info.pop(DUE, set()) | set(agent_ids))
    if not due:
        return {}
    rows = (await session.execute(REFRESH, {"ids": due})).all()
    apply(session.sync_session, rows)
    return {row[0]: _channels({READY[channel].key for channel, ready in zip(RETURNED, row[1:4], strict=True)
                               if ready}) for row in rows}


def _channels(ready_columns: set[str]) -> set[Channel]:
    """The channels whose ready column is among `ready_columns` (texts ride on the chat's)."""
    return {channel for channel in Channel if READY[channel].key in ready_columns}


def _changed(obj: Any, keys: tuple[str, ...], who: str = "agent_id") -> tuple[bool, set[int]]:
    """Whether any of `keys` changed on `obj`, and the agent ids (`who`) it had before the change."""
    state = inspect(obj)
    touched = any(state.attrs[key].history.has_changes() for key in keys)
    before = {value for value in state.attrs[who].history.deleted if isinstance(value, int)} \
        if who in keys else set()
    return touched, before


def _touched_agents(session: Session) -> set[int]:
    """The agents whose readiness the pending flush may change."""
    ids: set[int] = set()
    for obj in (*session.new, *session.deleted):
        if isinstance(obj, Offer | Conversation) and obj.agent_id is not None:
            ids.add(obj.agent_id)
        elif isinstance(obj, Handoff) and obj.to_agent_id is not None:
            ids.add(obj.to_agent_id)
        elif isinstance(obj, Agent) and obj.id is not None:
            ids.add(obj.id)
    for obj in session.dirty:
        if isinstance(obj, Handoff):
            touched, before = _changed(obj, HANDOFF_INPUTS, "to_agent_id")
            if touched:
                ids |= before
                if obj.to_agent_id is not None:
                    ids.add(obj.to_agent_id)
        elif isinstance(obj, Offer | Conversation):
            touched, before = _changed(obj, OFFER_INPUTS if isinstance(obj, Offer) else CONVERSATION_INPUTS)
            if touched:
                ids |= before
                if obj.agent_id is not None:
                    ids.add(obj.agent_id)
        elif isinstance(obj, Agent) and _changed(obj, AGENT_INPUTS)[0]:
            ids.add(obj.id)
    return ids


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    # new, dirty and their attribute histories still show what this flush wrote.
    touched = _touched_agents(session)
    if touched:
        session.info.setdefault(DUE, set()).update(touched)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    # One UPDATE for everything the transaction changed, in id order, before it commits.
    session.flush()
    due = sorted(session.info.pop(DUE, set()))
    if due:
        apply(session, session.connection().execute(REFRESH, {"ids": due}).all())


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(DUE, None)


async def mismatches(session: AsyncSession) -> list[tuple[int, Channel, bool, bool]]:
    """Agents whose stored readiness differs from a fresh count: (agent, channel, stored, counted)."""
    found: list[tuple[int, Channel, bool, bool]] = []
    for channel in RETURNED:
        rows = await session.execute(select(Agent.id, READY[channel], computed(channel)))
        found += [(agent_id, channel, bool(stored), bool(counted)) for agent_id, stored, counted in rows.all()
                  if bool(stored) != bool(counted)]
    return found
