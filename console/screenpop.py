"""What an agent's live view shows: presence, the screen-pops of offered and active contacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from console import customers
from console.conversations import CONTACT_KIND, customer_address
from console.errors import NotFound
from console.models import Agent, Conversation, Customer, Offer, OfferState, Queue, State
from console.wrapup import dispositions


@dataclass
class Pop:
    """One screen-pop: the contact, and the customer picture, the candidates, or neither."""

    conversation: Conversation
    offered: bool
    address: str
    deadline: datetime | None = None  # when a console offer rings out; None for phone rings
    queue_name: str | None = None
    picture: customers.Picture | None = None
    candidates: list[Customer] = field(default_factory=list)

    @property
    def unknown(self) -> bool:
        return self.picture is None and not self.candidates


@dataclass
class WrapUp:
    conversation: Conversation
    codes: list[str]
    customer_name: str | None = None


@dataclass
class AgentView:
    agent: Agent
    pops: list[Pop]
    wrap_ups: list[WrapUp] = field(default_factory=list)
    away_reasons: tuple[str, ...] = ()

    @property
    def current(self) -> Conversation | None:
        for pop in self.pops:
            if pop.conversation.state is State.ACTIVE:
                return pop.conversation
        return None


async def build_pop(session: AsyncSession, conversation: Conversation, offered: bool, region: str) -> Pop:
    pop = Pop(conversation=conversation, offered=offered, address=customer_address(conversation))
    if conversation.queue_id is not None:
        pop.queue_name = await session.scalar(select(Queue.name).where(Queue.id == conversation.queue_id))
    if conversation.customer_id is not None:
        pop.picture = await customers.picture(session, conversation.customer_id, exclude=conversation.id)
    else:
        kind = CONTACT_KIND[conversation.channel]
        ids = await customers.match(session, kind, pop.address, region)
        pop.candidates = await customers.brief(session, ids)
    return pop


async def agent_view(session: AsyncSession, agent_id: int, region: str,
                     away_reasons: tuple[str, ...] = ()) -> AgentView:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("agent not found")
    deadlines = dict((await session.execute(
        select(Offer.conversation_id, Offer.deadline).where(Offer.agent_id == agent_id,
                                                            Offer.state == OfferState.PENDING))).all())
    rows = await session.scalars(
        select(Conversation)
        .where(or_(Conversation.id.in_(list(deadlines)),
                   (Conversation.agent_id == agent_id) & Conversation.state.in_((State.ACTIVE, State.WRAP_UP))))
        .order_by(Conversation.created_at, Conversation.id)
    )
    pops: list[Pop] = []
    wrap_ups: list[WrapUp] = []
    for c in rows:
        if c.state is State.WRAP_UP:
            name = await session.scalar(select(Customer.name).where(Customer.id == c.customer_id)) \
                if c.customer_id is not None else None
            wrap_ups.append(WrapUp(c, await dispositions(session, c.queue_id), name))
        else:
            pop = await build_pop(session, c, c.id in deadlines and c.state is not State.ACTIVE, region)
            pop.deadline = deadlines.get(c.id)
            pops.append(pop)
    return AgentView(agent, pops, wrap_ups, away_reasons)
