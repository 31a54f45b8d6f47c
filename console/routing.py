"""Presence and picking the agent: the longest-idle available agent, atomically.

On PostgreSQL the candidate row is locked with FOR UPDATE SKIP LOCKED, so concurrent arrivals on
several processes pick different agents; after taking the lock the agent's eligibility is checked
again with a fresh statement, which sees offers committed since the first statement's snapshot.
On SQLite every transaction is BEGIN IMMEDIATE, so there is one writer at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import SQLCoreOperations

from console.errors import InvalidInput, NotFound
from console.models import Agent, AgentStatus, Channel, Conversation, Offer, OfferState, State, utcnow
from console.ports import Context

SETTABLE = (AgentStatus.AVAILABLE, AgentStatus.AWAY, AgentStatus.OFFLINE)


def _has_work(agent_id: SQLCoreOperations[int] | int) -> ColumnElement[bool]:
    pending = exists().where(Offer.agent_id == agent_id, Offer.state == OfferState.PENDING)
    active = exists().where(Conversation.agent_id == agent_id, Conversation.state == State.ACTIVE)
    return pending | active


async def is_free(session: AsyncSession, agent_id: int) -> bool:
    busy = await session.scalar(select(_has_work(agent_id)))
    return not busy


async def pick_agent(session: AsyncSession, channel: Channel, exclude: Iterable[int] = ()) -> Agent | None:
    """Lock and return the longest-idle available agent with no work, or None."""
    skipped = set(exclude)
    idle_order = func.coalesce(Agent.idle_since, Agent.status_since)
    for _ in range(50):
        conditions = [Agent.status == AgentStatus.AVAILABLE, ~_has_work(Agent.id)]
        if channel is Channel.CALL:
            conditions.append(Agent.extension.is_not(None))
        if skipped:
            conditions.append(Agent.id.not_in(skipped))
        agent = await session.scalar(
            select(Agent).where(and_(*conditions)).order_by(idle_order, Agent.id).limit(1)
            .with_for_update(skip_locked=True)
        )
        if agent is None:
            return None
        if agent.status is AgentStatus.AVAILABLE and await is_free(session, agent.id):
            return agent
        skipped.add(agent.id)
    return None


async def offer(session: AsyncSession, conversation: Conversation, agent: Agent) -> Offer:
    now = utcnow()
    record = Offer(conversation_id=conversation.id, agent_id=agent.id, state=OfferState.PENDING, created_at=now)
    session.add(record)
    conversation.state = State.OFFERED
    conversation.offered_at = conversation.offered_at or now
    conversation.agent_id = agent.id
    await session.flush()
    return record


async def dispatch_to(session: AsyncSession, agent: Agent) -> Conversation | None:
    """Offer the longest-waiting queued conversation to `agent` if it is free; return it."""
    if agent.status is not AgentStatus.AVAILABLE or not await is_free(session, agent.id):
        return None
    query = (
        select(Conversation)
        .where(Conversation.state == State.QUEUED, Conversation.routed_by_console.is_(True))
        .order_by(Conversation.created_at, Conversation.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if agent.extension is None:
        query = query.where(Conversation.channel != Channel.CALL)
    conversation = await session.scalar(query)
    if conversation is None:
        return None
    await offer(session, conversation, agent)
    return conversation


async def set_status(ctx: Context, agent_id: int, status: str) -> AgentStatus:
    """Set an agent's presence; going available picks up waiting work at once."""
    try:
        new = AgentStatus(status)
    except ValueError:
        new = None
    if new not in SETTABLE:
        raise InvalidInput("Status must be available, away or offline, not %(value)s.", field="status",
                           value=status)
    assert new is not None
    async with ctx.db.transaction() as session:
        agent = await session.get(Agent, agent_id, with_for_update=True)
        if agent is None:
            raise NotFound("Agent not found.")
        if agent.status is not new:
            now = utcnow()
            agent.status = new
            agent.status_since = now
            if new is AgentStatus.AVAILABLE:
                agent.idle_since = now
        touched = {agent_id}
        await session.flush()
        if new is AgentStatus.AVAILABLE:
            await dispatch_to(session, agent)
        else:
            touched |= await release_offers(session, agent_id)
    await ctx.notify.agents_changed(touched)
    return new


async def release_offers(session: AsyncSession, agent_id: int) -> set[int]:
    """An agent who leaves gives back what the console offered them: it goes to the next agent.

    Rings the phone system placed itself are only withdrawn from the agent's screen; the phone
    system decides where those calls go. Returns the agents who got an offer instead.
    """
    now = utcnow()
    offers = list(await session.scalars(
        select(Offer).where(Offer.agent_id == agent_id, Offer.state == OfferState.PENDING).with_for_update()))
    served: set[int] = set()
    for record in offers:
        record.state = OfferState.WITHDRAWN
        record.ended_at = now
        conversation = await session.get(Conversation, record.conversation_id, with_for_update=True)
        if conversation is None or not conversation.routed_by_console or conversation.state is not State.OFFERED:
            continue
        await session.flush()
        conversation.state = State.QUEUED
        conversation.agent_id = None
        other = await pick_agent(session, conversation.channel, exclude={agent_id})
        if other is not None:
            await offer(session, conversation, other)
            served.add(other.id)
    return served
