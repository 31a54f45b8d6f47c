"""Presence and picking the agent: the longest-idle available agent, atomically.

On PostgreSQL the candidate row is locked with FOR UPDATE SKIP LOCKED, so concurrent arrivals on
several processes pick different agents; after taking the lock the agent's eligibility is checked
again with a fresh statement, which sees offers committed since the first statement's snapshot.
On SQLite every transaction is BEGIN IMMEDIATE, so there is one writer at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import SQLCoreOperations

from console.errors import InvalidInput, NotFound
from console.lifecycle import move, set_presence
from console.models import Agent, AgentStatus, Channel, Conversation, Offer, OfferState, Queue, State, utcnow
from console.ports import Context

SETTABLE = (AgentStatus.AVAILABLE, AgentStatus.AWAY, AgentStatus.OFFLINE)
HANDLING = (AgentStatus.BUSY, AgentStatus.WRAP_UP)
DEFAULT_OFFER_SECONDS = 20
# An agent who declined or let an offer ring out is not offered the same conversation again
# for this long, unless nobody else can take it.
COOL_DOWN = timedelta(seconds=60)


def _has_work(agent_id: SQLCoreOperations[int] | int) -> ColumnElement[bool]:
    pending = exists().where(Offer.agent_id == agent_id, Offer.state == OfferState.PENDING)
    active = exists().where(Conversation.agent_id == agent_id,
                            Conversation.state.in_((State.ACTIVE, State.WRAP_UP)))
    return pending | active


async def is_free(session: AsyncSession, agent_id: int) -> bool:
    busy = await session.scalar(select(_has_work(agent_id)))
    return not busy


async def recently_missed(session: AsyncSession, conversation_id: int) -> set[int]:
    """Agents who declined or let this conversation ring out a moment ago."""
    rows = await session.scalars(select(Offer.agent_id).where(
        Offer.conversation_id == conversation_id,
        Offer.state.in_((OfferState.DECLINED, OfferState.EXPIRED)),
        Offer.ended_at >= utcnow() - COOL_DOWN))
    return set(rows)


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


async def offer_seconds(session: AsyncSession, conversation: Conversation) -> int:
    if conversation.queue_id is None:
        return DEFAULT_OFFER_SECONDS
    seconds = await session.scalar(select(Queue.offer_seconds).where(Queue.id == conversation.queue_id))
    return seconds or DEFAULT_OFFER_SECONDS


async def offer(session: AsyncSession, conversation: Conversation, agent: Agent) -> Offer:
    """Propose the conversation to `agent`; console-routed offers ring out after the queue's time."""
    now = utcnow()
    deadline = None
    if conversation.routed_by_console:
        deadline = now + timedelta(seconds=await offer_seconds(session, conversation))
    record = Offer(conversation_id=conversation.id, agent_id=agent.id, state=OfferState.PENDING, created_at=now,
                   deadline=deadline)
    session.add(record)
    move(conversation, State.OFFERED, session, agent_id=agent.id, at=now)
    conversation.agent_id = agent.id
    await session.flush()
    return record


async def route(session: AsyncSession, conversation: Conversation, exclude: Iterable[int] = ()) -> Agent | None:
    """Offer a queued conversation to the best agent who did not just miss it; None leaves it queued."""
    missed = await recently_missed(session, conversation.id)
    agent = await pick_agent(session, conversation.channel, {*exclude, *missed})
    if agent is not None:
        await offer(session, conversation, agent)
    return agent


async def dispatch_to(session: AsyncSession, agent: Agent) -> Conversation | None:
    """Offer the longest-waiting queued conversation to `agent` if it is free; return it."""
    if agent.status is not AgentStatus.AVAILABLE or not await is_free(session, agent.id):
        return None
    missed_by_agent = select(Offer.conversation_id).where(
        Offer.agent_id == agent.id, Offer.state.in_((OfferState.DECLINED, OfferState.EXPIRED)),
        Offer.ended_at >= utcnow() - COOL_DOWN)
    query = (
        select(Conversation)
        .where(Conversation.state == State.QUEUED, Conversation.routed_by_console.is_(True),
               Conversation.id.not_in(missed_by_agent))
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


def check_status(status: str, reason: str | None, reasons: tuple[str, ...]) -> tuple[AgentStatus, str | None]:
    try:
        new = AgentStatus(status)
    except ValueError:
        new = None
    if new is None or new not in SETTABLE:
        raise InvalidInput("Status must be available, away or offline, not %(value)s.", field="status",
                           value=status)
    if new is not AgentStatus.AWAY:
        return new, None
    reason = (reason or "").strip() or None
    if reason is not None and reason not in reasons:
        raise InvalidInput("Choose a reason from the list: %(reasons)s.", field="reason",
                           reasons=", ".join(reasons))
    return new, reason


async def set_status(ctx: Context, agent_id: int, status: str, reason: str | None = None) -> AgentStatus:
    """Set an agent's presence; going available picks up waiting work at once.

    Choosing available while handling a contact keeps busy or wrap-up: those end by themselves.
    """
    new, reason = check_status(status, reason, ctx.away_reasons)
    async with ctx.db.transaction() as session:
        touched = {agent_id}
        if new is not AgentStatus.AVAILABLE:
            # Conversations before the agent row: the order accept and decline lock in.
            touched |= await release_offers(session, agent_id)
        agent = await session.get(Agent, agent_id, with_for_update=True)
        if agent is None:
            raise NotFound("Agent not found.")
        if not (new is AgentStatus.AVAILABLE and agent.status in HANDLING):
            await set_presence(session, agent, new, reason)
        await session.flush()
        if new is AgentStatus.AVAILABLE:
            await dispatch_to(session, agent)
        status_now = agent.status
    await ctx.notify.agents_changed(touched)
    return status_now


async def requeue(session: AsyncSession, conversation: Conversation, *, leaving: int, detail: str) -> set[int]:
    """Back to the queue after the agent `leaving` did not take it, and on to the next agent."""
    if not conversation.routed_by_console or conversation.state is not State.OFFERED:
        return set()
    still_offered = await session.scalar(select(exists().where(
        Offer.conversation_id == conversation.id, Offer.state == OfferState.PENDING)))
    if still_offered:
        return set()
    move(conversation, State.QUEUED, session, agent_id=leaving, detail=detail)
    conversation.agent_id = None
    await session.flush()
    other = await route(session, conversation, exclude={leaving})
    return {other.id} if other is not None else set()


async def release_offers(session: AsyncSession, agent_id: int) -> set[int]:
    """An agent who leaves gives back what the console offered them: it goes to the next agent.

    Rings the phone system placed itself are only withdrawn from the agent's screen; the phone
    system decides where those calls go. Returns the agents who got an offer instead.
    """
    now = utcnow()
    conversation_ids = list(await session.scalars(
        select(Offer.conversation_id).where(Offer.agent_id == agent_id, Offer.state == OfferState.PENDING)))
    served: set[int] = set()
    for conversation_id in conversation_ids:
        conversation = await session.get(Conversation, conversation_id, with_for_update=True)
        record = await session.scalar(select(Offer).where(
            Offer.conversation_id == conversation_id, Offer.agent_id == agent_id,
            Offer.state == OfferState.PENDING).with_for_update())
        if conversation is None or record is None:
            continue
        record.state = OfferState.WITHDRAWN
        record.ended_at = now
        await session.flush()
        served |= await requeue(session, conversation, leaving=agent_id, detail="agent left")
    return served
