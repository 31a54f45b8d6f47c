"""Handing a conversation to a colleague or a queue, cold or warm, always with a context note.

    cold to a colleague   the colleague has it at once; the first agent goes to wrap-up
    cold to a queue       it waits in (or is routed from) that queue; the first agent wraps up
    warm                  the colleague (named, or the best free agent of a queue) accepts first;
                          until then the first agent keeps it and may cancel; a decline comes
                          back to the first agent with the colleague's reason

A handoff ends the first agent's part of the conversation and starts the next part as a new
conversation row (parent_id pointing back, same channel and external id), so each agent's part
has its own wrap-up and disposition and the whole chain reads as one history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from console import audit, changes
from console.conversations import start_handling
from console.errors import Conflict, InvalidInput, NotFound
from console.models import (
    Agent,
    AgentStatus,
    Channel,
    Conversation,
    ConversationEvent,
    Handoff,
    HandoffMode,
    HandoffState,
    Queue,
    State,
    utcnow,
)
from console.notes import check_body
from console.ports import Context
from console.readiness import ELIGIBLE, READY
from console.routing import can_take, lock_agent, pick_agent, required_skills, route
from console.wrapup import begin_wrap_up

MAX_NOTE = 2000
MAX_REASON = 500


@dataclass(frozen=True)
class Target:
    """Where a conversation goes: a colleague or a queue (exactly one)."""

    agent_id: int | None = None
    queue_id: int | None = None


async def _held(session: AsyncSession, agent_id: int, conversation_id: int) -> Conversation:
    conversation = await session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise NotFound("This conversation does not exist.")
    if conversation.agent_id != agent_id or conversation.state is not State.ACTIVE:
        raise Conflict("Only a conversation you are handling can be handed off.")
    return conversation


async def _colleague(session: AsyncSession, agent_id: int, colleague_id: int, conversation: Conversation) -> Agent:
    if colleague_id == agent_id:
        raise InvalidInput("Choose a colleague other than yourself.", field="to_agent_id")
    colleague = await lock_agent(session, colleague_id)
    if colleague is None:
        raise NotFound("That colleague does not exist.", field="to_agent_id")
    if colleague.status is AgentStatus.OFFLINE:
        raise InvalidInput("%(name)s is offline. Choose someone who is logged in, or a queue.",
                           field="to_agent_id", name=colleague.name)
    if colleague.status is AgentStatus.AWAY:
        raise InvalidInput("%(name)s is away. Choose someone who is available, or a queue.",
                           field="to_agent_id", name=colleague.name)
    if colleague.after_status is not None:
        raise InvalidInput("%(name)s is finishing their last contact before going away. Choose someone else, or a "
                           "queue.", field="to_agent_id", name=colleague.name)
    if not await can_take(session, colleague.id, conversation.channel, []):
        raise Conflict("%(name)s has no room for another %(channel)s right now.", field="to_agent_id",
                       name=colleague.name, channel=conversation.channel.value)
    return colleague


async def start(ctx: Context, agent_id: int, conversation_id: int, target: Target, mode: str, note: str) -> Handoff:
    """Hand off the conversation the agent is handling; the note tells the next person where it stands."""
    text = check_body(note, "note", MAX_NOTE)
    try:
        how = HandoffMode(mode)
    except ValueError:
        raise InvalidInput("Choose cold or warm, not %(value)s.", field="mode", value=mode) from None
    if (target.agent_id is None) == (target.queue_id is None):
        raise InvalidInput("Choose one colleague or one queue to hand off to.", field="to_agent_id")
    async with ctx.transaction() as session:
        conversation = await _held(session, agent_id, conversation_id)
        waiting = await session.scalar(select(Handoff.id).where(
            Handoff.conversation_id == conversation_id, Handoff.state == HandoffState.PENDING))
        if waiting is not None:
            raise Conflict("This conversation is already waiting for a colleague; cancel that first.")
        queue = None
        if target.queue_id is not None:
            queue = await session.get(Queue, target.queue_id)
            if queue is None:
                raise NotFound("That queue does not exist.", field="to_queue_id")
        colleague = None
        if target.agent_id is not None:
            colleague = await _colleague(session, agent_id, target.agent_id, conversation)
        elif how is HandoffMode.WARM:
            assert queue is not None
            colleague = await pick_agent(session, conversation.channel, {agent_id},
                                         await required_skills(session, queue.id))
            if colleague is None:
                raise Conflict("Nobody in %(queue)s is free to take it warm. Hand it off cold to let it wait "
                               "in the queue.", field="to_queue_id", queue=queue.name)
        handoff = Handoff(conversation_id=conversation.id, from_agent_id=agent_id,
                          to_agent_id=colleague.id if colleague else None, to_queue_id=queue.id if queue else None,
                          mode=how, state=HandoffState.PENDING, note=text, created_at=utcnow())
        session.add(handoff)
        await session.flush()
        asked = ConversationEvent(conversation_id=conversation.id, from_state=State.ACTIVE, to_state=State.ACTIVE,
                                  agent_id=agent_id, at=handoff.created_at,
                                  detail=f"{how.value} handoff to {_name(colleague, queue)}"[:200])
        session.add(asked)
        changes.event_written(session, asked)
        audit.record(session, agent_id, audit.HANDOFF, audit.CONVERSATION, conversation.id,
                     f"{how.value} to {_name(colleague, queue)}")
        if colleague is not None and conversation.customer_id is not None:
            audit.record(session, colleague.id, audit.VIEW, audit.CUSTOMER, conversation.customer_id,
                         f"handoff of conversation {conversation.id}")
        if how is HandoffMode.COLD:
            await complete(session, handoff, conversation, colleague, queue)
        else:
            changes.handoff_asked(session, handoff, conversation)
    return handoff


def arrived_by_handoff(session: AsyncSession, following: Conversation, handoff: Handoff,
                       now: datetime) -> ConversationEvent:
    """The first event of the next part: it arrived by handoff."""
    event = ConversationEvent(conversation_id=following.id, from_state=None, to_state=State.QUEUED, at=now,
                              agent_id=handoff.from_agent_id, detail=f"handed off ({handoff.mode.value})")
    session.add(event)
    return event


def _name(colleague: Agent | None, queue: Queue | None) -> str:
    return colleague.name if colleague else queue.name if queue else "?"


async def complete(session: AsyncSession, handoff: Handoff, conversation: Conversation, colleague: Agent | None,
                    queue: Queue | None) -> set[int]:
    """The handoff takes place: the next part starts with the colleague or in the queue, the first
    agent goes to wrap-up. Returns the agents whose view changed."""
    now = utcnow()
    following = Conversation(
        parent_id=conversation.id, channel=conversation.channel, direction=conversation.direction,
        external_id=conversation.external_id, from_address=conversation.from_address,
        to_address=conversation.to_address, subject=conversation.subject, customer_id=conversation.customer_id,
        queue_id=queue.id if queue else conversation.queue_id, routed_by_console=True, state=State.QUEUED,
        chat_id=conversation.chat_id, mail_thread_id=conversation.mail_thread_id, created_at=now)
    session.add(following)
    await session.flush()
    told: set[int] = set()
    changes.event_written(session, arrived_by_handoff(session, following, handoff, now))
    if colleague is not None:
        await start_handling(session, following, colleague, f"took over by {handoff.mode.value} handoff")
        told.add(colleague.id)
    else:
        picked = await route(session, following, exclude={conversation.agent_id or 0})
        if picked is None and conversation.channel is Channel.CALL:
            # The caller is still on the line with the first agent: nobody may let go of them.
            raise Conflict("Nobody in %(queue)s is free to take the call now. Keep the caller, or try again "
                           "in a moment.", field="to_queue_id", queue=queue.name if queue else "?")
        told |= {picked.id} if picked else set()
    handoff.state = HandoffState.ACCEPTED
    handoff.next_conversation_id = following.id
    handoff.ended_at = now
    conversation.transferred_at = now
    told |= await begin_wrap_up(session, conversation, detail=f"handed off to {_name(colleague, queue)}"[:200])
    return told


async def _pending(session: AsyncSession, handoff_id: int) -> tuple[Handoff, Conversation]:
    """The waiting handoff and its conversation, locked in the order hang-ups lock them:
    the conversation first, then the handoff (the other order deadlocks with a hang-up)."""
    conversation_id = await session.scalar(select(Handoff.conversation_id).where(Handoff.id == handoff_id))
    if conversation_id is None:
        raise NotFound("This handoff does not exist.")
    conversation = await session.get(Conversation, conversation_id, with_for_update=True, populate_existing=True)
    handoff = await session.get(Handoff, handoff_id, with_for_update=True, populate_existing=True)
    if handoff is None or conversation is None:
        raise NotFound("This handoff does not exist.")
    if handoff.state is not HandoffState.PENDING:
        raise Conflict("This handoff is no longer waiting (%(state)s).", field="state", state=handoff.state.value)
    return handoff, conversation


async def accept(ctx: Context, agent_id: int, handoff_id: int) -> int:
    """The colleague takes over a warm handoff; returns the id of their part of the conversation."""
    async with ctx.transaction() as session:
        handoff, conversation = await _pending(session, handoff_id)
        if handoff.to_agent_id != agent_id:
            raise Conflict("This handoff is meant for a colleague.")
        if conversation.state is not State.ACTIVE or conversation.agent_id != handoff.from_agent_id:
            raise Conflict("This conversation ended before the handoff was accepted.")
        # The room the request reserved is the room it takes now: it no longer counts as asked.
        handoff.state = HandoffState.ACCEPTED
        colleague = await _colleague(session, handoff.from_agent_id or 0, agent_id, conversation)
        await complete(session, handoff, conversation, colleague, None)
        changes.handoff_answered(session, handoff, conversation, accepted=True)
        audit.record(session, agent_id, audit.HANDOFF, audit.CONVERSATION, conversation.id, "accepted")
        following = handoff.next_conversation_id
    assert following is not None
    return following


async def decline(ctx: Context, agent_id: int, handoff_id: int, reason: str) -> None:
    """The colleague does not take it; the first agent keeps the conversation and sees why."""
    text = check_body(reason, "reason", MAX_REASON)
    async with ctx.transaction() as session:
        handoff, conversation = await _pending(session, handoff_id)
        if handoff.to_agent_id != agent_id:
            raise Conflict("This handoff is meant for a colleague.")
        handoff.reason = text
        _end(session, handoff, conversation, HandoffState.DECLINED, agent_id, f"declined: {text}")


async def cancel(ctx: Context, agent_id: int, handoff_id: int) -> None:
    """The first agent takes a warm handoff back before the colleague accepted."""
    async with ctx.transaction() as session:
        handoff, conversation = await _pending(session, handoff_id)
        if handoff.from_agent_id != agent_id:
            raise Conflict("Only who started a handoff can cancel it.")
        _end(session, handoff, conversation, HandoffState.CANCELLED, agent_id, "cancelled")


def _end(session: AsyncSession, handoff: Handoff, conversation: Conversation, state: HandoffState,
         agent_id: int | None, detail: str) -> None:
    handoff.state = state
    handoff.ended_at = utcnow()
    event = ConversationEvent(conversation_id=handoff.conversation_id, from_state=conversation.state,
                              to_state=conversation.state, agent_id=agent_id, at=handoff.ended_at,
                              detail=f"handoff {detail}"[:200])
    session.add(event)
    changes.event_written(session, event)
    changes.handoff_answered(session, handoff, conversation, accepted=False)


async def takers(session: AsyncSession, agent_id: int, conversation_id: int | None) -> list[Agent]:
    """Colleagues who can take the agent's conversation over now: ready for its channel (no
    other work in the way), the same test a handoff to them passes."""
    channel = await session.scalar(select(Conversation.channel).where(Conversation.id == conversation_id)) \
        if conversation_id is not None else None
    ready = READY[channel] if channel is not None else Agent.status.in_(ELIGIBLE)
    return list(await session.scalars(select(Agent).where(Agent.id != agent_id, ready, Agent.deactivated_at.is_(None))
                                      .order_by(Agent.name, Agent.id)))


async def incoming(session: AsyncSession, agent_id: int) -> list[Handoff]:
    """Warm handoffs waiting for this agent to accept or decline."""
    rows = await session.scalars(
        select(Handoff).where(Handoff.to_agent_id == agent_id, Handoff.state == HandoffState.PENDING)
        .options(selectinload(Handoff.from_agent)).order_by(Handoff.created_at, Handoff.id))
    return list(rows)


async def latest(session: AsyncSession, conversation_id: int) -> Handoff | None:
    """The newest handoff of a conversation (pending, declined or cancelled), for its first agent."""
    return await session.scalar(
        select(Handoff).where(Handoff.conversation_id == conversation_id)
        .options(selectinload(Handoff.to_agent)).order_by(Handoff.created_at.desc(), Handoff.id.desc()).limit(1))


async def leading_to(session: AsyncSession, conversation_id: int) -> Handoff | None:
    """The handoff that started this part of a conversation, with who handed it over."""
    return await session.scalar(
        select(Handoff).where(Handoff.next_conversation_id == conversation_id)
        .options(selectinload(Handoff.from_agent)).limit(1))



WARM_ANSWER_SECONDS = 60


async def sweep(ctx: Context, limit: int = 50) -> int:
    """Warm handoffs nobody answered within a minute come back to the first agent. Safe on every node."""
    cutoff = utcnow() - timedelta(seconds=WARM_ANSWER_SECONDS)
    async with ctx.transaction() as session:
        stale = list(await session.scalars(select(Handoff.id).where(
            Handoff.state == HandoffState.PENDING, Handoff.created_at < cutoff).order_by(Handoff.id).limit(limit)))
    ended = 0
    for handoff_id in stale:
        async with ctx.transaction() as session:
            conversation_id = await session.scalar(select(Handoff.conversation_id).where(Handoff.id == handoff_id))
            # The conversation first, then the handoff: the order hang-ups and accepts lock in.
            conversation = await session.scalar(select(Conversation).where(Conversation.id == conversation_id)
                                                .with_for_update(skip_locked=True))
            handoff = await session.scalar(select(Handoff).where(
                Handoff.id == handoff_id, Handoff.state == HandoffState.PENDING)
                .with_for_update(skip_locked=True)) if conversation is not None else None
            if handoff is None or conversation is None:
                continue
            handoff.reason = f"no answer within {WARM_ANSWER_SECONDS} s"
            _end(session, handoff, conversation, HandoffState.DECLINED, handoff.to_agent_id, "not answered")
        ended += 1
    return ended
