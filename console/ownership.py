"""Who may work on a conversation, and on a ticket: one rule each, checked by the services.

Conversations:

An agent may write notes on a conversation, open a ticket from it and fill a canned response
with its customer when they hold it (ringing for them, active, in their wrap-up, or a
conversation of theirs that is over), when a colleague asked them to take it over, or when they
are a supervisor or an admin. Anyone else is refused: a conversation's screen is its agent's.
(Answering, ending, handing off and wrap-up ask for more: that the agent holds it *now*; see
console.conversations and console.wrapup.)

Tickets: anyone signed in may read a ticket (it is part of the customer's history every agent
sees in a pop). Changing it or commenting on it is for its assignee, the members of its queue
(agents with every skill the queue requires; with a queue that requires none, every agent),
supervisors and admins. A ticket with neither assignee nor queue is nobody's yet: any agent may
take it.
"""

from __future__ import annotations

from sqlalchemy import and_, bindparam, exists, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from console.auth import SUPERVISING
from console.customers import ERASED
from console.errors import Conflict, Forbidden, NotFound
from console.models import (
    Agent,
    AgentSkill,
    Conversation,
    Customer,
    Handoff,
    HandoffState,
    Offer,
    OfferState,
    QueueSkill,
    Ticket,
)

_MAY_WORK_ON = select(
    Conversation,
    # coalesce: with nobody holding it, agent_id = :agent is NULL, and the answer must still be false.
    func.coalesce(or_(Conversation.agent_id == bindparam("agent"),
        exists().where(Offer.conversation_id == Conversation.id, Offer.agent_id == bindparam("agent"),
                       Offer.state == OfferState.PENDING),
        exists().where(Handoff.conversation_id == Conversation.id, Handoff.to_agent_id == bindparam("agent"),
                       Handoff.state == HandoffState.PENDING),
        exists().where(Agent.id == bindparam("agent"), Agent.role.in_(SUPERVISING))), false()),
).where(Conversation.id == bindparam("conversation"))


async def conversation_for(session: AsyncSession, conversation_id: int, agent_id: int) -> Conversation:
    """The conversation, when `agent_id` may work on it; NotFound or Forbidden otherwise."""
    row = (await session.execute(_MAY_WORK_ON, {"agent": agent_id, "conversation": conversation_id})).first()
    if row is None:
        raise NotFound("This conversation does not exist.")
    conversation, allowed = row
    if not allowed:
        raise Forbidden("This conversation is handled by a colleague; only they (or a supervisor) can do this.")
    return conversation


_MAY_CHANGE = func.coalesce(or_(
    Ticket.assignee_id == bindparam("agent"),
    and_(Ticket.assignee_id.is_(None), Ticket.queue_id.is_(None)),
    # A member of the queue: no skill the queue requires is missing (or too low) for the agent.
    and_(Ticket.queue_id.is_not(None), ~exists().where(
        QueueSkill.queue_id == Ticket.queue_id,
        ~exists().where(AgentSkill.agent_id == bindparam("agent"), AgentSkill.skill_id == QueueSkill.skill_id,
                        AgentSkill.level >= QueueSkill.level))),
    exists().where(Agent.id == bindparam("agent"), Agent.role.in_(SUPERVISING))), false())
_TICKET_IF_ALLOWED = select(Ticket, _MAY_CHANGE).where(Ticket.id == bindparam("ticket")).with_for_update(of=Ticket)
_ALLOWED = select(_MAY_CHANGE).where(Ticket.id == bindparam("ticket"))


async def may_change_ticket(session: AsyncSession, ticket_id: int, agent_id: int) -> bool:
    """Whether `agent_id` may change or comment on the ticket (to show the forms or not)."""
    return bool(await session.scalar(_ALLOWED, {"agent": agent_id, "ticket": ticket_id}))


async def ticket_for(session: AsyncSession, ticket_id: int, agent_id: int) -> Ticket:
    """The ticket under its row lock, when `agent_id` may change it; NotFound or Forbidden otherwise."""
    row = (await session.execute(_TICKET_IF_ALLOWED, {"agent": agent_id, "ticket": ticket_id})).first()
    if row is None:
        raise NotFound("This ticket does not exist.")
    ticket, allowed = row
    if not allowed:
        raise Forbidden("This ticket is assigned to a colleague; only they, its queue's members or a supervisor "
                        "can change it.")
    if ticket.customer_id is not None:
        # Read after the ticket's lock, so an erasure that held it is seen (privacy.erase locks the
        # customer's tickets): an erased person's ticket takes no new text.
        erased = await session.scalar(select(Customer.erased_at).where(Customer.id == ticket.customer_id))
        if erased is not None:
            raise Conflict(ERASED)
    return ticket
