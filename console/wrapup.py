"""Wrap-up: the time-boxed after-contact work that ends with a disposition code."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from console import changes, customers
from console.errors import Conflict, InvalidInput, NotFound
from console.lifecycle import HANDLING, choose_after, move, set_presence
from console.models import AgentStatus, Conversation, Disposition, Queue, State, utcnow
from console.ports import Context
from console.routing import fill, lock_agent

DEFAULT_WRAP_UP_SECONDS = 60
TIMEOUT_CODE = "wrap-up timeout"
DEFAULT_DISPOSITIONS = ("resolved", "callback agreed", "sale", "complaint", "information given", "escalated")
MAX_NOTE = 2000


# Built once with bind parameters: each wrap-up reads them.
_QUEUE_CODES = select(Disposition.code).where(Disposition.queue_id == bindparam("queue")).order_by(Disposition.id)
_GENERAL_CODES = select(Disposition.code).where(Disposition.queue_id.is_(None)).order_by(Disposition.id)
_WRAP_UP_SECONDS = select(Queue.wrap_up_seconds).where(Queue.id == bindparam("queue"))
_OPEN_STATES = (select(Conversation.state).where(Conversation.agent_id == bindparam("agent"),
                                                 Conversation.state.in_((State.ACTIVE, State.WRAP_UP))).distinct())


async def dispositions(session: AsyncSession, queue_id: int | None) -> list[str]:
    """The codes the queue allows; queues without a list of their own share the general one."""
    if queue_id is not None:
        codes = list(await session.scalars(_QUEUE_CODES, {"queue": queue_id}))
        if codes:
            return codes
    return list(await session.scalars(_GENERAL_CODES)) or list(DEFAULT_DISPOSITIONS)


async def begin_wrap_up(session: AsyncSession, conversation: Conversation, detail: str) -> set[int]:
    """The contact ended: its agent starts the queue's wrap-up time box. Returns whose view changed."""
    now = utcnow()
    move(conversation, State.WRAP_UP, session, agent_id=conversation.agent_id, detail=detail, at=now)
    if conversation.agent_id is None:
        move(conversation, State.CLOSED, session, detail="nobody to wrap up", at=now)
        await customers.conversation_ended(session, conversation.id, conversation.customer_id)
        return set()
    seconds = DEFAULT_WRAP_UP_SECONDS
    if conversation.queue_id is not None:
        queued = await session.scalar(_WRAP_UP_SECONDS, {"queue": conversation.queue_id})
        seconds = DEFAULT_WRAP_UP_SECONDS if queued is None else queued
    conversation.wrap_up_deadline = now + timedelta(seconds=seconds)
    await end_handling(session, conversation.agent_id)
    changes.ended(session, conversation, conversation.agent_id, detail)
    changes.wrap_up_due(session, conversation, conversation.agent_id)
    return {conversation.agent_id}


async def end_handling(session: AsyncSession, agent_id: int) -> None:
    """The agent's contact is over: available again unless other work is still going on, or what
    they chose for after it (away, offline)."""
    await session.flush()
    agent = await lock_agent(session, agent_id)
    if agent is None or agent.status not in HANDLING:
        return
    # One look at the agent's open work (a partial index holds just those rows).
    handling = set(await session.scalars(_OPEN_STATES, {"agent": agent_id}))
    reason = None
    if State.ACTIVE in handling:
        status = AgentStatus.BUSY
    elif handling:
        status = AgentStatus.WRAP_UP
    else:
        status, reason = agent.after_status or AgentStatus.AVAILABLE, agent.after_reason
        choose_after(agent, None)
    await set_presence(session, agent, status, reason)


async def _close(session: AsyncSession, conversation: Conversation, code: str, note: str | None,
                 detail: str) -> int | None:
    conversation.disposition = code
    conversation.disposition_note = note
    conversation.wrap_up_deadline = None
    move(conversation, State.CLOSED, session, agent_id=conversation.agent_id, detail=detail)
    await customers.conversation_ended(session, conversation.id, conversation.customer_id)
    if conversation.agent_id is None:
        return None
    changes.wrapped_up(session, conversation, conversation.agent_id)
    await end_handling(session, conversation.agent_id)
    agent = await lock_agent(session, conversation.agent_id)
    if agent is not None:
        await fill(session, agent)
    return conversation.agent_id


async def finish(ctx: Context, agent_id: int, conversation_id: int, code: str, note: str = "") -> None:
    """The agent ends wrap-up with a disposition code from the queue's list and an optional note."""
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput("The note is longer than %(limit)s characters.", field="note", limit=MAX_NOTE)
    async with ctx.transaction() as session:
        conversation = await session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None:
            raise NotFound("This conversation does not exist.")
        if conversation.agent_id != agent_id:
            raise Conflict("This conversation is not yours (any more).")
        if conversation.state is not State.WRAP_UP:
            raise Conflict("This conversation is not in wrap-up.", field="state")
        allowed = await dispositions(session, conversation.queue_id)
        if code not in allowed:
            raise InvalidInput("Choose a disposition from the list: %(codes)s.", field="disposition",
                               codes=", ".join(allowed))
        await _close(session, conversation, code, note or None, "wrapped up")


async def sweep(ctx: Context, limit: int = 100) -> int:
    """Close wrap-ups whose time box ended with the disposition 'wrap-up timeout'. Safe on every node."""
    async with ctx.transaction() as session:
        overdue = list(await session.scalars(
            select(Conversation.id).where(Conversation.state == State.WRAP_UP,
                                          Conversation.wrap_up_deadline < utcnow())
            .order_by(Conversation.wrap_up_deadline).limit(limit)))
    closed = 0
    for conversation_id in overdue:
        # One transaction each: a lock conflict costs one item a round, not the whole batch.
        async with ctx.transaction() as session:
            conversation = await session.scalar(select(Conversation).where(
                Conversation.id == conversation_id, Conversation.state == State.WRAP_UP,
                Conversation.wrap_up_deadline < utcnow()).with_for_update(skip_locked=True))
            if conversation is not None:
                await _close(session, conversation, TIMEOUT_CODE, None, "wrap-up time box ended")
                closed += 1
    return closed
