"""Supervisors stepping in on the floor: an agent's status set for them (a stuck agent logged out),
a waiting or ringing contact moved to an agent or another queue, a silent view of an agent's
screen, and for chats a whisper to the operator or taking the chat over.

Every action is recorded in the audit trail under the supervisor's name and told to the agents it
concerns, on their page.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console import audit, auth, changes, handoffs, notes, routing
from console.conversations import cancel_pending_handoffs, pending_offers
from console.errors import Conflict, Forbidden, InvalidInput, NotFound
from console.i18n import N_
from console.lifecycle import move
from console.models import (
    Agent,
    AgentStatus,
    Channel,
    Conversation,
    ConversationEvent,
    Handoff,
    HandoffMode,
    HandoffState,
    OfferState,
    Queue,
    Role,
    State,
    utcnow,
)
from console.ports import Context

STATUS_SET, LOGGED_OUT, REASSIGNED = "status set", "logged out", "reassigned"
ONLY_SUPERVISORS = N_("Only supervisors can step in for an agent.")
NO_AGENT = NotFound("That agent does not exist.", field="agent")
NO_QUEUE = NotFound("That queue does not exist.", field="queue")


async def _name(session: AsyncSession, agent_id: int) -> str:
    name = await session.scalar(select(Agent.name).where(Agent.id == agent_id))
    if name is None:
        raise NO_AGENT
    return name


def tell(session: AsyncSession, agent_id: int, message: str, *, codes: tuple[str, ...] = (), **values: str) -> None:
    changes.emit(session, lambda: changes.Told(agent_id, message, tuple(values.items()), codes))


async def _may_step_in(session: AsyncSession, by: int, agent_id: int) -> tuple[str, str]:
    """The supervisor's and the agent's names; refused unless `by` supervises, and only an admin
    steps in for an admin."""
    rows = {row.id: row for row in (await session.execute(
        select(Agent.id, Agent.name, Agent.role).where(Agent.id.in_((by, agent_id))))).all()}
    if by not in rows or rows[by].role not in auth.SUPERVISING:
        raise Forbidden(ONLY_SUPERVISORS)
    if agent_id not in rows:
        raise NO_AGENT
    if rows[agent_id].role is Role.ADMIN and rows[by].role is not Role.ADMIN:
        raise Forbidden(N_("Only an admin can step in for an admin."))
    return rows[by].name, rows[agent_id].name


async def set_agent_status(ctx: Context, by: int, agent_id: int, status: str, reason: str | None = None, *,
                           log_out: bool = False) -> AgentStatus:
    """Set another agent's presence as they would themselves (their offers go back to the queue
    when they leave); `log_out` also ends their sessions, for an agent who left without it. The
    change, its audit and the word to the agent are one transaction."""
    async with ctx.db.reading() as session:
        who, _ = await _may_step_in(session, by, agent_id)
    if log_out:
        status, reason = AgentStatus.OFFLINE.value, None

    async def record(session: AsyncSession, agent: Agent) -> None:
        if log_out:
            await auth.end_sessions(session, agent_id)
        audit.record(session, by, LOGGED_OUT if log_out else STATUS_SET, audit.AGENT, agent_id,
                     f"{status} ({reason})" if reason else status)
        if log_out:
            tell(session, agent_id, N_("%(name)s logged you out."), name=who)
        elif agent.status.value != status:  # busy with a contact: it applies when that ends
            tell(session, agent_id, N_("%(name)s set your status to %(status)s, from when this contact ends."),
                 codes=("status",), name=who, status=status)
        else:
            tell(session, agent_id, N_("%(name)s set your status to %(status)s."), codes=("status",), name=who,
                 status=status)

    return await routing.set_status(ctx, agent_id, status, reason, also=record)


@dataclass(frozen=True)
class Moved:
    withdrawn_from: frozenset[int]  # agents whose ringing stopped
    offered_to: int | None  # the agent it rings now, if any


async def reassign(ctx: Context, by: int, conversation_id: int, *, agent_id: int | None = None,
                   queue_id: int | None = None) -> Moved:
    """Move a waiting or ringing contact: into `queue_id` (routed there again), and or to ring
    `agent_id` (who must be able to take it now). Its current ringing stops."""
    if agent_id is None and queue_id is None:
        raise InvalidInput("Choose an agent or a queue to move it to.", field="agent")
    async with ctx.transaction() as session:
        await auth.require_supervisor(session, by, ONLY_SUPERVISORS)
        who = await _name(session, by)
        conversation = await session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None:
            raise NotFound("This conversation does not exist.")
        if conversation.state not in (State.QUEUED, State.OFFERED):
            raise Conflict("Only a waiting or ringing contact can be moved; this one is %(state)s.",
                           state=conversation.state.value)
        if not conversation.routed_by_console:
            raise Conflict("The phone system decides where this call rings; move it there.")
        if queue_id is not None and queue_id != conversation.queue_id:
            queue = await session.get(Queue, queue_id)
            if queue is None:
                raise NO_QUEUE
            conversation.queue_id = queue_id
            # An event of its own: the statistics count the hour again, now in the new queue.
            moved = ConversationEvent(conversation_id=conversation.id, from_state=conversation.state,
                                      to_state=conversation.state, agent_id=by, at=utcnow(),
                                      detail=f"moved to queue {queue.name} by a supervisor"[:200])
            session.add(moved)
            changes.event_written(session, moved)
        target = await _able(session, conversation, agent_id) if agent_id is not None else None
        withdrawn = frozenset(await _stop_ringing(session, conversation, by))
        if target is not None:
            await routing.offer(session, conversation, target)
        else:
            routed = await routing.route(session, conversation, exclude=withdrawn)
            target = routed
        where = f"queue {queue_id}" if queue_id is not None else ""
        audit.record(session, by, REASSIGNED, audit.CONVERSATION, conversation.id,
                     " ".join(x for x in (where, f"agent {agent_id}" if agent_id else "") if x))
        for gone in sorted(withdrawn - ({target.id} if target else set())):
            tell(session, gone, N_("%(name)s moved a contact that rang for you to someone else."), name=who)
        if agent_id is not None and target is not None:
            tell(session, target.id, N_("%(name)s gave you a contact: it rings now."), name=who)
        return Moved(withdrawn, target.id if target else None)


async def _able(session: AsyncSession, conversation: Conversation, agent_id: int) -> Agent:
    agent = await routing.lock_agent(session, agent_id)
    if agent is None:
        raise NO_AGENT
    required = await routing.required_skills(session, conversation.queue_id)
    ringing_here = any(o.agent_id == agent_id for o in await pending_offers(session, conversation.id))
    if not ringing_here and not await routing.can_take(session, agent_id, conversation.channel, required):
        raise Conflict("%(name)s cannot take it now: not available, at capacity for %(channel)s, or without "
                       "the queue's skills.", field="agent", name=agent.name, channel=conversation.channel.value)
    return agent


async def _stop_ringing(session: AsyncSession, conversation: Conversation, by: int) -> set[int]:
    """Withdraw its pending offers and put it back in the queue; return whom it rang."""
    now = utcnow()
    rang: set[int] = set()
    for record in await pending_offers(session, conversation.id):
        record.state, record.ended_at = OfferState.WITHDRAWN, now
        rang.add(record.agent_id)
        changes.withdrawn(session, conversation, record.agent_id, "moved by a supervisor")
    if conversation.state is State.OFFERED:
        move(conversation, State.QUEUED, session, agent_id=by, detail="moved by a supervisor")
    conversation.agent_id = None
    await session.flush()
    return rang


WATCHED, WHISPERED, TAKEN_OVER = "watched", "whispered", "took over"


async def watch_target(ctx: Context, by: int, agent_id: int) -> str:
    """The name of the agent `by` may watch (nothing recorded: the watching starts with the socket)."""
    async with ctx.db.reading() as session:
        return (await _may_step_in(session, by, agent_id))[1]


async def watch(ctx: Context, by: int, agent_id: int, *, tell_agent: bool = True) -> str:
    """A supervisor opens a silent, read-only view of the agent's live screen: audited each time,
    and the agent is told (they work with customers' personal data; being watched is no secret).
    Returns the agent's name."""
    async with ctx.transaction() as session:
        who, name = await _may_step_in(session, by, agent_id)
        audit.record(session, by, WATCHED, audit.AGENT, agent_id, "silent view of the live screen")
        if tell_agent:
            tell(session, agent_id, N_("%(name)s is watching your screen (read only)."), name=who)
    return name


async def _live_chat(session: AsyncSession, conversation_id: int, *, lock: bool = True) -> Conversation:
    conversation = await session.get(Conversation, conversation_id, with_for_update=lock)
    if conversation is None:
        raise NotFound("This conversation does not exist.")
    if conversation.channel is not Channel.CHAT or conversation.state is not State.ACTIVE or \
            conversation.agent_id is None:
        raise Conflict("Only a chat an operator is handling now can be whispered into or taken over.")
    return conversation


async def whisper(ctx: Context, by: int, conversation_id: int, text: str) -> None:
    """A note into an operator's chat that only the operator (and colleagues, never the visitor)
    sees, at once in their pop, with who whispered; one transaction with its audit and word."""
    body = notes.check_body(text, "text")
    async with ctx.db.reading() as session:
        operator = (await _live_chat(session, conversation_id, lock=False)).agent_id
        assert operator is not None
        who, _ = await _may_step_in(session, by, operator)

    async def record(session: AsyncSession) -> None:
        audit.record(session, by, WHISPERED, audit.CONVERSATION, conversation_id, None)
        assert operator is not None
        tell(session, operator, N_("%(name)s whispers: %(text)s"), name=who, text=body[:300])

    await notes.add(ctx, by, body, conversation_id=conversation_id, also=record)


async def take_over(ctx: Context, by: int, conversation_id: int) -> int:
    """The supervisor takes the chat over from its operator, as a cold handoff to themselves: the
    visitor chats on with them (in their agent page), the operator wraps up. Returns the new part."""
    async with ctx.transaction() as session:
        await auth.require_supervisor(session, by, ONLY_SUPERVISORS)
        conversation = await _live_chat(session, conversation_id)
        operator = conversation.agent_id
        assert operator is not None
        if operator == by:
            raise Conflict("This chat is yours already.")
        await _may_step_in(session, by, operator)
        # A colleague asked to take it warm meanwhile is asked no longer (their capacity is freed).
        await cancel_pending_handoffs(session, conversation)
        supervisor = await routing.lock_agent(session, by)
        assert supervisor is not None
        handoff = Handoff(conversation_id=conversation.id, from_agent_id=operator, to_agent_id=by,
                          mode=HandoffMode.COLD, state=HandoffState.PENDING,
                          note=f"Taken over by {supervisor.name}"[:2000], created_at=utcnow())
        session.add(handoff)
        await session.flush()
        await handoffs.complete(session, handoff, conversation, supervisor, None)
        audit.record(session, by, TAKEN_OVER, audit.CONVERSATION, conversation.id, f"from agent {operator}")
        tell(session, operator, N_("%(name)s took this chat over; wrap it up."), name=supervisor.name)
        assert handoff.next_conversation_id is not None
        return handoff.next_conversation_id
