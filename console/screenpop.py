"""What an agent's live view shows: presence, the screen-pops of offered and active contacts."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from console import customers
from console.conversations import CONTACT_KIND, customer_address
from console.errors import NotFound
from console.models import Agent, Conversation, Customer, Offer, OfferState, State


@dataclass
class Pop:
    """One screen-pop: the contact, and the customer picture, the candidates, or neither."""

    conversation: Conversation
    offered: bool
    address: str
    picture: customers.Picture | None = None
    candidates: list[Customer] = field(default_factory=list)

    @property
    def unknown(self) -> bool:
        return self.picture is None and not self.candidates


@dataclass
class AgentView:
    agent: Agent
    pops: list[Pop]

    @property
    def current(self) -> Conversation | None:
        for pop in self.pops:
            if pop.conversation.state is State.ACTIVE:
                return pop.conversation
        return None


async def build_pop(session: AsyncSession, conversation: Conversation, offered: bool, region: str) -> Pop:
    pop = Pop(conversation=conversation, offered=offered, address=customer_address(conversation))
    if conversation.customer_id is not None:
        pop.picture = await customers.picture(session, conversation.customer_id, exclude=conversation.id)
    else:
        kind = CONTACT_KIND[conversation.channel]
        ids = await customers.match(session, kind, pop.address, region)
        pop.candidates = await customers.brief(session, ids)
    return pop


async def agent_view(session: AsyncSession, agent_id: int, region: str) -> AgentView:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("agent not found")
    offered_ids = select(Offer.conversation_id).where(Offer.agent_id == agent_id, Offer.state == OfferState.PENDING)
    rows = await session.scalars(
        select(Conversation)
        .where(or_(Conversation.id.in_(offered_ids),
                   (Conversation.agent_id == agent_id) & (Conversation.state == State.ACTIVE)))
        .order_by(Conversation.created_at, Conversation.id)
    )
    pops = [await build_pop(session, c, c.state is not State.ACTIVE, region) for c in rows]
    return AgentView(agent, pops)
