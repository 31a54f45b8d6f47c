"""What an agent's live view shows: presence, the screen-pops of offered and active contacts."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from console import customers, handoffs, notes, profile
from console.conversations import CONTACT_KIND, customer_address, parts
from console.errors import NotFound
from console.models import (
    Agent,
    AgentStatus,
    Channel,
    Conversation,
    ConversationEvent,
    Customer,
    Handoff,
    Message,
    Note,
    Offer,
    OfferState,
    Queue,
    State,
)
from console.profile import CustomerPage
from console.wrapup import dispositions

# Colleagues a conversation can be handed to: logged in and not away.
REACHABLE = (AgentStatus.AVAILABLE, AgentStatus.BUSY, AgentStatus.WRAP_UP)


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
    handoff: Handoff | None = None  # the handoff that brought this part of the conversation here
    notes: list[Note] = field(default_factory=list)  # notes on this conversation and its earlier parts
    history: list[ConversationEvent] = field(default_factory=list)  # of the earlier parts, after a handoff
    transcript: list[Message] = field(default_factory=list)

    @property
    def unknown(self) -> bool:
        return self.picture is None and not self.candidates


@dataclass
class WrapUp:
    conversation: Conversation
    codes: list[str]
    customer_name: str | None = None


@dataclass
class IncomingHandoff:
    """A colleague asks this agent to take over (warm): the note, and the pop of the conversation."""

    handoff: Handoff
    pop: Pop

    @property
    def note(self) -> str:
        return self.handoff.note

    @property
    def notes(self) -> list[Note]:
        return self.pop.notes


@dataclass
class AgentView:
    agent: Agent
    pops: list[Pop]
    wrap_ups: list[WrapUp] = field(default_factory=list)
    away_reasons: tuple[str, ...] = ()
    handoffs: list[IncomingHandoff] = field(default_factory=list)
    current_handoff: Handoff | None = None  # the newest handoff of the conversation being handled
    customer_page: CustomerPage | None = None

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
    earlier = await parts(session, conversation)  # no query unless it was handed off
    if conversation.customer_id is not None:
        pop.picture = await customers.picture(session, conversation.customer_id, exclude=earlier)
    else:
        kind = CONTACT_KIND[conversation.channel]
        ids = await customers.match(session, kind, pop.address, region)
        pop.candidates = await customers.brief(session, ids)
    pop.notes = await notes.of_parts(session, earlier)
    if conversation.channel is not Channel.CALL:  # calls have no written messages
        pop.transcript = list(await session.scalars(
            select(Message).where(Message.conversation_id.in_(earlier)).order_by(Message.created_at, Message.id)))
    if conversation.parent_id is not None:
        pop.handoff = await handoffs.leading_to(session, conversation.id)
        pop.history = list(await session.scalars(
            select(ConversationEvent).where(ConversationEvent.conversation_id.in_(earlier[:-1]))
            .options(selectinload(ConversationEvent.agent)).order_by(ConversationEvent.at, ConversationEvent.id)))
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
    view = AgentView(agent, pops, wrap_ups, away_reasons)
    for handoff in await handoffs.incoming(session, agent_id):
        handed = await session.get(Conversation, handoff.conversation_id)
        if handed is not None:
            view.handoffs.append(IncomingHandoff(handoff, await build_pop(session, handed, False, region)))
    current = view.current
    if current is not None:
        view.current_handoff = await handoffs.latest(session, current.id)
    if agent.viewing_customer_id is not None:
        with suppress(NotFound):
            view.customer_page = await profile.page(session, agent_id, agent.viewing_customer_id, audited=False)
    return view
