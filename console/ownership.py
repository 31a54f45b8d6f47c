"""Who may work on a conversation: one rule, checked by every service that acts on one.

An agent may write notes on a conversation, open a ticket from it and fill a canned response
with its customer when they hold it (ringing for them, active, in their wrap-up, or a
conversation of theirs that is over), when a colleague asked them to take it over, or when they
are a supervisor or an admin. Anyone else is refused: a conversation's screen is its agent's.
(Answering, ending, handing off and wrap-up ask for more: that the agent holds it *now*; see
console.conversations and console.wrapup.)
"""

from __future__ import annotations

from sqlalchemy import bindparam, exists, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from console.auth import SUPERVISING
from console.errors import Forbidden, NotFound
from console.models import Agent, Conversation, Handoff, HandoffState, Offer, OfferState

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
