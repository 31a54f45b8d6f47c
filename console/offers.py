"""An agent's answer to an offer: accept, decline, or letting it ring out."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console import changes
from console.conversations import start_handling
from console.errors import Conflict, NotFound
from console.i18n import N_
from console.lifecycle import step_away
from console.models import Agent, AgentStatus, Conversation, Offer, OfferState, utcnow
from console.ports import Context
from console.readiness import ELIGIBLE
from console.routing import fill, lock_agent, lock_agents, release_offers, requeue

MISSED_IN_A_ROW = 2
MISSED_REASON = N_("Missed offers")  # the console sets it; agents do not pick it


async def _pending(session: AsyncSession, agent_id: int, conversation_id: int) -> tuple[Conversation, Offer]:
    conversation = await session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise NotFound("This conversation does not exist.")
    record = await session.scalar(select(Offer).where(
        Offer.conversation_id == conversation_id, Offer.agent_id == agent_id, Offer.state == OfferState.PENDING))
    if record is None or (record.deadline is not None and record.deadline <= utcnow()):
        raise Conflict("This offer has expired or was made to someone else.", field="conversation")
    return conversation, record


async def accept(ctx: Context, agent_id: int, conversation_id: int) -> None:
    async with ctx.transaction() as session:
        conversation, record = await _pending(session, agent_id, conversation_id)
        now = utcnow()
        others = list(await session.scalars(select(Offer).where(
            Offer.conversation_id == conversation_id, Offer.state == OfferState.PENDING, Offer.id != record.id)))
        await lock_agents(session, {agent_id, *(other.agent_id for other in others)})
        record.state, record.ended_at = OfferState.ACCEPTED, now
        for other in others:
            other.state, other.ended_at = OfferState.WITHDRAWN, now
        agent = await lock_agent(session, agent_id)
        await start_handling(session, conversation, agent, "accepted", rang=True)
        for other in others:
            changes.withdrawn(session, conversation, other.agent_id, "accepted by a colleague")


async def decline(ctx: Context, agent_id: int, conversation_id: int) -> None:
    """The agent says no: the conversation goes to the next agent, never straight back to them."""
    async with ctx.transaction() as session:
        conversation, record = await _pending(session, agent_id, conversation_id)
        record.state, record.ended_at = OfferState.DECLINED, utcnow()
        await session.flush()
        await requeue(session, conversation, leaving=agent_id, detail="declined")
        changes.withdrawn(session, conversation, agent_id, "declined")
        agent = await lock_agent(session, agent_id)
        if agent is not None and agent.status in ELIGIBLE:
            await fill(session, agent)  # room for other waiting work, not this conversation


async def _rang_out(session: AsyncSession, record: Offer, agent: Agent) -> bool:
    """Expire the offer and move the conversation on; True when the agent must now be set away."""
    record.state, record.ended_at = OfferState.EXPIRED, utcnow()
    agent.missed_offers += 1
    away = agent.missed_offers >= MISSED_IN_A_ROW and agent.status in ELIGIBLE
    if away:
        # Ring-no-answer twice: the agent is evidently not at the desk.
        await step_away(session, agent, AgentStatus.AWAY, MISSED_REASON)
        agent.missed_offers = 0
    await session.flush()
    conversation = await session.get(Conversation, record.conversation_id)
    if conversation is not None:
        await requeue(session, conversation, leaving=agent.id, detail="rang out")
        changes.withdrawn(session, conversation, agent.id, "rang out")
    return away


async def ring_out(ctx: Context, conversation_id: int, agent_id: int) -> bool:
    """The phone system says the agent's phone rang without an answer (busy, no answer): their
    offer rings out now, as at its deadline, and the conversation moves on. False when no offer of
    theirs was ringing any more (it rang out here first, or was taken)."""
    away = False
    async with ctx.transaction() as session:
        conversation = await session.get(Conversation, conversation_id, with_for_update=True)
        record = await session.scalar(select(Offer).where(
            Offer.conversation_id == conversation_id, Offer.agent_id == agent_id,
            Offer.state == OfferState.PENDING)) if conversation is not None else None
        agent = await lock_agent(session, agent_id) if record is not None else None
        if record is None or agent is None:
            return False
        away = await _rang_out(session, record, agent)
    if away:
        async with ctx.transaction() as session:
            await release_offers(session, agent_id)
    return True


async def sweep(ctx: Context, limit: int = 100) -> int:
    """Offers past their deadline ring out and move on. Safe to run on every node at once.

    One transaction per offer, locking conversation, offer and agent in the order accept and
    decline use, and skipping what another transaction holds: it is taken next round.
    """
    async with ctx.transaction() as session:
        candidates = (await session.execute(
            select(Offer.id, Offer.conversation_id, Offer.agent_id).where(
                Offer.state == OfferState.PENDING, Offer.deadline < utcnow())
            .order_by(Offer.deadline).limit(limit))).all()
    expired = 0
    for offer_id, conversation_id, agent_id in candidates:
        away = False
        async with ctx.transaction() as session:
            locked = await session.scalar(select(Conversation.id).where(Conversation.id == conversation_id)
                                          .with_for_update(skip_locked=True))
            record = await session.scalar(select(Offer).where(
                Offer.id == offer_id, Offer.state == OfferState.PENDING, Offer.deadline < utcnow())
                .with_for_update(skip_locked=True)) if locked else None
            agent = await session.scalar(select(Agent).where(Agent.id == agent_id)
                                         .with_for_update(skip_locked=True)) if record else None
            if record is not None and agent is not None:
                away = await _rang_out(session, record, agent)
                expired += 1
        if away:
            async with ctx.transaction() as session:
                await release_offers(session, agent_id)
    return expired
