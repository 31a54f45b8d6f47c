"""What an agent's live view shows: presence, the screen-pops of offered and active contacts."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from console import customers, handoffs, mail, notes, profile, texts
from console.changes import ConversationInfo
from console.conversations import CONTACT_KIND, parts
from console.errors import NotFound
from console.models import (
    Agent,
    AgentStatus,
    Channel,
    Chat,
    ChatVisitor,
    ContactKind,
    Conversation,
    ConversationEvent,
    Customer,
    Direction,
    Handoff,
    Mail,
    Message,
    Note,
    Offer,
    OfferState,
    Queue,
    State,
    StatusPeriod,
)
from console.profile import CustomerPage
from console.wrapup import dispositions


@dataclass(frozen=True)
class ChatVisitorInfo:
    name: str | None
    email: str | None
    identity: str  # anonymous, typed (in the pre-chat form) or verified (signed by the website)


@dataclass(frozen=True)
class EarlierChat:
    """A chat the same visitor had before this one, with what was said in it."""

    id: int
    started_at: datetime
    messages: list[Message]


EARLIER_CHATS = 5  # the visitor's latest chats before this one
EARLIER_MESSAGES = 200  # at most, over those chats (the newest kept)


async def earlier_chats(session: AsyncSession, visitor_id: int, chat_id: int) -> list[EarlierChat]:
    """The visitor's chats before `chat_id`, newest first, each with its messages in order: a
    returning visitor is recognised by their browser, whether or not they are a known customer."""
    # One statement: every chat starts with a message, so the chats are found through theirs.
    latest = (select(Chat.id).where(Chat.visitor_id == visitor_id, Chat.id < chat_id)
              .order_by(Chat.id.desc()).limit(EARLIER_CHATS))
    rows = (await session.execute(
        select(Message, Chat.started_at).join(Chat, Chat.id == Message.chat_id).where(Message.chat_id.in_(latest))
        .options(joinedload(Message.agent), joinedload(Message.attachment))
        .order_by(Message.id.desc()).limit(EARLIER_MESSAGES))).unique().all()
    chats: dict[int, EarlierChat] = {}
    for message, started_at in reversed(rows):
        key = message.chat_id or 0
        chats.setdefault(key, EarlierChat(key, started_at, [])).messages.append(message)
    return sorted(chats.values(), key=lambda c: c.id, reverse=True)


@dataclass(frozen=True)
class Presence:
    """The agent's state as the status bar shows it; `version` is the id of its status period."""

    agent_id: int
    status: AgentStatus
    reason: str | None
    since: datetime
    version: int
    after: AgentStatus | None = None  # what the agent becomes when their contact ends, when not available
    after_reason: str | None = None
    after_version: int = 0


@dataclass
class Pop:
    """One screen-pop: the contact, and the customer picture, the candidates, or neither."""

    conversation: ConversationInfo
    offered: bool
    address: str
    deadline: datetime | None = None  # when a console offer rings out; None for phone rings
    version: int = 0  # the newest event of the conversation it shows
    revision: int = 0  # of the customer it shows
    queue_name: str | None = None
    picture: customers.Picture | None = None
    candidates: list[Customer] = field(default_factory=list)
    handoff: Handoff | None = None  # the handoff that brought this part of the conversation here
    notes: list[Note] = field(default_factory=list)  # notes on this conversation and its earlier parts
    history: list[ConversationEvent] = field(default_factory=list)  # of the earlier parts, after a handoff
    transcript: list[Message] = field(default_factory=list)
    page: str | None = None  # a chat's: the web page the visitor wrote from
    visitor: ChatVisitorInfo | None = None  # a chat's: who the visitor said or the website confirmed they are
    typed_match: bool = False  # the candidates have the email address the visitor typed
    earlier_chats: list[EarlierChat] = field(default_factory=list)  # the same visitor's, newest first
    sender_name: str | None = None  # a mail's: the display name its sender gave, for a new customer
    texting: texts.Composer | None = None  # a text conversation's: what may be sent now

    @property
    def unknown(self) -> bool:
        return self.picture is None and not self.candidates


@dataclass
class WrapUp:
    conversation: ConversationInfo
    codes: list[str]
    customer_name: str | None = None
    version: int = 0
    reason: str | None = None  # why a chat or mail ended, as its event says it


@dataclass
class Current:
    """A conversation the agent handles now: the note, ticket and handoff forms for it."""

    conversation: ConversationInfo
    handoff: Handoff | None  # its newest handoff, with the colleague
    version: int = 0


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
    currents: list[Current] = field(default_factory=list)
    customer_page: CustomerPage | None = None
    presence: Presence | None = None

    @property
    def current(self) -> ConversationInfo | None:
        return self.currents[0].conversation if self.currents else None

    @property
    def current_handoff(self) -> Handoff | None:
        return self.currents[0].handoff if self.currents else None


async def presence_of(session: AsyncSession, agent: Agent) -> Presence:
    period = await session.scalar(select(func.max(StatusPeriod.id)).where(StatusPeriod.agent_id == agent.id,
                                                                           StatusPeriod.ended_at.is_(None)))
    return Presence(agent.id, agent.status, agent.away_reason, agent.status_since, int(period or 0),
                    agent.after_status, agent.after_reason, agent.after_version)


async def versions(session: AsyncSession, conversation_ids: list[int]) -> dict[int, int]:
    """The newest event of each conversation: the version of the fragments that show it."""
    if not conversation_ids:
        return {}
    rows = await session.execute(select(ConversationEvent.conversation_id, func.max(ConversationEvent.id))
                                 .where(ConversationEvent.conversation_id.in_(conversation_ids))
                                 .group_by(ConversationEvent.conversation_id))
    return {cid: int(v) for cid, v in rows.all()}


async def revision_of(session: AsyncSession, customer_id: int | None) -> int:
    if customer_id is None:
        return 0
    return int(await session.scalar(select(Customer.revision).where(Customer.id == customer_id)) or 0)


async def transcript(session: AsyncSession, conversation: ConversationInfo, earlier: list[int] | None = None,
                     ) -> list[Message]:
    """What the customer and the agents wrote: a chat's messages over all its parts, in order."""
    if conversation.chat_id is not None:
        return await chat_transcript(session, conversation.chat_id)
    if conversation.mail_thread_id is not None:
        return await mail.transcript(session, conversation.mail_thread_id)
    where = Message.conversation_id.in_(earlier if earlier is not None else [conversation.id])
    return list(await session.scalars(select(Message).where(where)
                                      .options(selectinload(Message.agent), joinedload(Message.attachment),
                                               joinedload(Message.texted))
                                      .order_by(Message.id)))


async def chat_transcript(session: AsyncSession, chat_id: int) -> list[Message]:
    """A chat's messages with their agents and files (not their bytes), in one statement (read for
    every message pushed)."""
    return list((await session.scalars(select(Message).where(Message.chat_id == chat_id)
                                       .options(joinedload(Message.agent), joinedload(Message.attachment),
                                                joinedload(Message.mail))
                                       .order_by(Message.id))).unique())


async def build_pop(session: AsyncSession, conversation: Conversation | ConversationInfo, offered: bool,
                    region: str, *, queue_name: str | None = None) -> Pop:
    """Everything one pop shows; `queue_name` when the caller knows it already (the push worker)."""
    if isinstance(conversation, Conversation):
        conversation = ConversationInfo.of(conversation)
    pop = Pop(conversation=conversation, offered=offered, address=conversation.address, queue_name=queue_name)
    if conversation.queue_id is not None and queue_name is None:
        pop.queue_name = await session.scalar(select(Queue.name).where(Queue.id == conversation.queue_id))
    earlier = await parts(session, conversation)  # no query unless it was handed off
    if conversation.chat_id is not None:
        row = (await session.execute(
            select(Chat.page_url, Chat.visitor_id, ChatVisitor.name, ChatVisitor.email, ChatVisitor.identity)
            .join(ChatVisitor, ChatVisitor.id == Chat.visitor_id).where(Chat.id == conversation.chat_id))).first()
        if row is not None:
            pop.page = row.page_url
            pop.visitor = ChatVisitorInfo(row.name, row.email, row.identity)
            pop.earlier_chats = await earlier_chats(session, row.visitor_id, conversation.chat_id)
    if conversation.customer_id is not None:
        pop.picture = await customers.picture(session, conversation.customer_id, exclude=earlier)
        pop.revision = pop.picture.customer.revision if pop.picture else 0
    else:
        kind = CONTACT_KIND[conversation.channel]
        ids = await customers.match(session, kind, pop.address, region)
        if not ids and pop.visitor is not None and pop.visitor.identity == "typed" and pop.visitor.email:
            # What a visitor typed is never linked by itself (anyone can type anyone's address):
            # the customers with that address are offered, and the agent says whether it is them.
            ids = await customers.match(session, ContactKind.EMAIL, pop.visitor.email, region)
            pop.typed_match = bool(ids)
        pop.candidates = await customers.brief(session, ids)
        if conversation.mail_thread_id is not None:  # the new-customer form starts from the sender's name
            pop.sender_name = await session.scalar(
                select(Mail.from_name).where(Mail.thread_id == conversation.mail_thread_id,
                                             Mail.direction == Direction.IN).order_by(Mail.id).limit(1)) or None
    pop.notes = await notes.of_parts(session, earlier)
    if conversation.channel is not Channel.CALL:  # calls have no written messages
        pop.transcript = await transcript(session, conversation, earlier)
    if conversation.channel is Channel.SMS:
        pop.texting = await texts.composer(session, conversation, region)
    if conversation.parent_id is not None:
        pop.handoff = await handoffs.leading_to(session, conversation.id)
        # What happened before this part began: later events of the earlier parts (a colleague's
        # wrap-up) are theirs, and the pop shown since the handoff stays as it is.
        began = select(func.min(ConversationEvent.id)).where(ConversationEvent.conversation_id == conversation.id)
        pop.history = list(await session.scalars(
            select(ConversationEvent).where(ConversationEvent.conversation_id.in_(earlier[:-1]),
                                            ConversationEvent.id < began.scalar_subquery())
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
    rows = list(await session.scalars(
        select(Conversation)
        .where(or_(Conversation.id.in_(list(deadlines)),
                   (Conversation.agent_id == agent_id) & Conversation.state.in_((State.ACTIVE, State.WRAP_UP))))
        .order_by(Conversation.created_at, Conversation.id)
    ))
    incoming = await handoffs.incoming(session, agent_id)
    version = await versions(session, [c.id for c in rows] + [h.conversation_id for h in incoming])
    view = AgentView(agent, [], [], away_reasons, presence=await presence_of(session, agent))
    for c in rows:
        info = ConversationInfo.of(c)
        if c.state is State.WRAP_UP:
            view.wrap_ups.append(await wrap_up_of(session, info, version.get(c.id, 0)))
            continue
        pop = await build_pop(session, info, c.id in deadlines and c.state is not State.ACTIVE, region)
        pop.deadline, pop.version = deadlines.get(c.id), version.get(c.id, 0)
        view.pops.append(pop)
        if c.state is State.ACTIVE and c.agent_id == agent_id:
            view.currents.append(Current(info, await handoffs.latest(session, c.id), pop.version))
    for handoff in incoming:
        handed = await session.get(Conversation, handoff.conversation_id)
        if handed is not None:
            pop = await build_pop(session, handed, False, region)
            pop.version = version.get(handed.id, 0)
            view.handoffs.append(IncomingHandoff(handoff, pop))
    if agent.viewing_customer_id is not None:
        with suppress(NotFound):
            view.customer_page = await profile.page(session, agent_id, agent.viewing_customer_id, audited=False)
    return view


async def wrap_up_of(session: AsyncSession, info: ConversationInfo, version: int,
                     codes: list[str] | None = None) -> WrapUp:
    """The wrap-up form's content; `codes` when the caller knows the queue's dispositions already.
    A chat's or mail's says why it ended (the visitor left, went silent, the agent closed it),
    read with the customer's name; a call's is plain (the agent heard it end)."""
    name = reason = None
    if info.channel is not Channel.CALL:
        why = (select(ConversationEvent.detail).where(ConversationEvent.conversation_id == info.id,
                                                      ConversationEvent.to_state == State.WRAP_UP)
               .order_by(ConversationEvent.id.desc()).limit(1).scalar_subquery())
        name, reason = (await session.execute(select(
            select(Customer.name).where(Customer.id == info.customer_id).scalar_subquery(), why))).one()
    elif info.customer_id is not None:
        name = await session.scalar(select(Customer.name).where(Customer.id == info.customer_id))
    return WrapUp(info, codes if codes is not None else await dispositions(session, info.queue_id), name, version,
                  reason)
