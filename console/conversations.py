"""The life of a conversation: arrive, answer, hang up, and linking it to a customer."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from console import audit, changes, customers, logs
from console.auth import find_agent, find_agent_id
from console.errors import Conflict, InvalidInput, NotFound
from console.lifecycle import ENDED, choose_after, move, record_arrival, set_presence
from console.models import (
    Agent,
    AgentStatus,
    Author,
    Channel,
    Chat,
    ContactKind,
    ContactPoint,
    Conversation,
    Direction,
    Handoff,
    HandoffState,
    Message,
    Note,
    Offer,
    OfferState,
    Queue,
    State,
    Ticket,
    utcnow,
)
from console.ports import Context
from console.readiness import ELIGIBLE
from console.routing import fill, lock_agent, lock_agents, offer, offer_to_owner, requeue, route
from console.search import reindex
from console.wrapup import begin_wrap_up, end_handling

log = logging.getLogger("console.conversations")

CONTACT_KIND = {Channel.CALL: ContactKind.PHONE, Channel.MAIL: ContactKind.EMAIL, Channel.CHAT: ContactKind.VISITOR,
                Channel.SMS: ContactKind.PHONE}


@dataclass(frozen=True)
class Arrival:
    """What `arrive` did: the conversation, whether it is new, and where the console routed it."""

    conversation_id: int
    state: State
    created: bool
    agent_id: int | None
    target_extension: str | None


def customer_address(conversation: Conversation) -> str:
    """The customer's side of the conversation: the caller, or whom an agent calls."""
    return conversation.to_address if conversation.direction is Direction.OUT else conversation.from_address


# Built once: every call event looks its conversation up. After a handoff the newest part is the
# one that is going on.
_NEWEST = (select(Conversation)
           .where(Conversation.channel == bindparam("channel"), Conversation.external_id == bindparam("external_id"))
           .order_by(Conversation.id.desc()).limit(1))
_NEWEST_LOCKED = _NEWEST.with_for_update().execution_options(populate_existing=True)
_NEWER_PART = select(Conversation.id).where(Conversation.parent_id == bindparam("parent")).limit(1)
_PENDING_OFFERS = select(Offer).where(Offer.conversation_id == bindparam("conversation"),
                                      Offer.state == OfferState.PENDING).order_by(Offer.id)


async def _find(session: AsyncSession, channel: Channel, external_id: str, *, lock: bool = False
                ) -> Conversation | None:
    key = {"channel": channel, "external_id": external_id}
    if not lock:
        return await session.scalar(_NEWEST, key)
    # answer and hangup of one call may race; the row lock makes the second see the first. A
    # handoff may have committed a newer part while this waited for the lock: then take that one.
    if session.get_bind().dialect.name != "postgresql":
        return await session.scalar(_NEWEST_LOCKED, key)  # one writer at a time: it reads the newest part
    for _ in range(20):
        found = await session.scalar(_NEWEST_LOCKED, key)
        if found is None or found.transferred_at is None:
            # A handoff stores the next part and marks this one transferred in one transaction;
            # the lock returned this row's newest version, so unmarked means no newer part.
            return found
        newer = await session.scalar(_NEWER_PART, {"parent": found.id})
        if newer is None:
            return found
    raise Conflict("This conversation keeps changing hands; try again.", field="callId")


async def pending_offers(session: AsyncSession, conversation_id: int) -> list[Offer]:
    """The conversation's ringing offers (read under the conversation's lock to stay true)."""
    return list(await session.scalars(_PENDING_OFFERS, {"conversation": conversation_id}))


async def _routed_target(session: AsyncSession, conversation: Conversation) -> str | None:
    if conversation.agent_id is None or conversation.state not in (State.OFFERED, State.ACTIVE):
        return None
    agent = await session.get(Agent, conversation.agent_id)
    return agent.extension if agent else None


async def arrive(
    ctx: Context,
    *,
    channel: Channel,
    external_id: str,
    from_address: str,
    to_address: str,
    direction: Direction = Direction.IN,
    ringing: list[str] | None = None,
    queue: str | None = None,
    subject: str | None = None,
    chat_id: int | None = None,
    mail_thread_id: int | None = None,
    routed_by_phone_system: bool = False,
) -> Arrival:
    """Store a new conversation, match its customer, and offer it; idempotent on external_id.

    When `ringing` names agents the contact is already ringing them (the phone system routes),
    so they get the offer; otherwise the console picks the longest-idle available agent, or the
    conversation waits in state queued until one becomes available. With `routed_by_phone_system`
    a call that rings nobody yet waits in its queue without the console offering it to anyone:
    the phone system picks whom it rings and says so (`ring`), as Asterisk's queues do.
    """
    if not external_id or len(external_id) > 250:
        raise InvalidInput("external id must have 1 to 250 characters", field="external_id")
    logs.conversation_id.set(f"{channel.value}:{external_id}")
    try:
        async with ctx.transaction() as session:
            arrival = await arrive_in(session, ctx, channel, external_id, from_address, to_address, direction,
                                      ringing or [], queue, subject, chat_id, mail_thread_id,
                                      routed_by_phone_system=routed_by_phone_system)
    except IntegrityError:
        # Another request stored the same external id first: answer with that conversation.
        async with ctx.transaction() as session:
            existing = await _find(session, channel, external_id)
            if existing is None:
                raise
            return Arrival(existing.id, existing.state, False, existing.agent_id,
                           await _routed_target(session, existing))
    return arrival


async def arrive_in(
    session: AsyncSession,
    ctx: Context,
    channel: Channel,
    external_id: str,
    from_address: str,
    to_address: str,
    direction: Direction = Direction.IN,
    ringing: list[str] | tuple[str, ...] = (),
    queue_name: str | None = None,
    subject: str | None = None,
    chat_id: int | None = None,
    mail_thread_id: int | None = None,
    *,
    routed_by_phone_system: bool = False,
) -> Arrival:
    """`arrive` inside the caller's transaction: a mail is stored and becomes a conversation in one
    (a repeated external id answers with the conversation that has it)."""
    address = to_address if direction is Direction.OUT else from_address
    matches = await customers.match(session, CONTACT_KIND[channel], address, ctx.region)
    queue_id = None
    if queue_name:
        queue_id = await session.scalar(select(Queue.id).where(Queue.name == queue_name))
        if queue_id is None:
            log.warning("conversation %s names unknown queue %r; kept without queue", external_id, queue_name)
    conversation = await _insert_new(session, {
        "channel": channel, "direction": direction, "external_id": external_id, "state": State.QUEUED,
        "from_address": from_address[:320], "to_address": to_address[:320], "subject": subject,
        "customer_id": matches[0] if len(matches) == 1 else None, "queue_id": queue_id, "created_at": utcnow(),
        "routed_by_console": not ringing and direction is Direction.IN and not routed_by_phone_system,
        "chat_id": chat_id,
        "mail_thread_id": mail_thread_id,
    })
    if conversation is None:
        # A repeated event (the phone system sent it again, or asks where the call went).
        existing = await _find(session, channel, external_id)
        if existing is None:
            raise Conflict("This conversation keeps changing hands; try again.", field="callId")
        return Arrival(existing.id, existing.state, False, existing.agent_id,
                       await _routed_target(session, existing))
    record_arrival(session, conversation)
    touched: set[int] = set()
    target: str | None = None
    if ringing:
        for reference in dict.fromkeys(ringing):
            agent = await find_agent(session, reference)
            if agent is None:
                log.warning("conversation %s rings unknown agent %r", external_id, reference)
            elif agent.id not in touched:
                await offer(session, conversation, agent)
                touched.add(agent.id)
        if len(touched) > 1:
            conversation.agent_id = None
    elif direction is Direction.IN and not routed_by_phone_system:
        agent = await offer_to_owner(session, conversation) or await route(session, conversation, fresh=True)
        if agent is not None:
            touched.add(agent.id)
            target = agent.extension
    arrival = Arrival(conversation.id, conversation.state, True, conversation.agent_id, target)
    return arrival


async def _insert_new(session: AsyncSession, values: dict[str, object]) -> Conversation | None:
    """Store a conversation unless its channel and external id are taken; None when they are.

    One statement either way (INSERT ... ON CONFLICT DO NOTHING RETURNING), so a repeated newCall
    costs no probe before the insert and raises no error that would end the transaction.
    """
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (insert(Conversation).values(values)
                 .on_conflict_do_nothing(index_elements=["channel", "external_id"],
                                         index_where=Conversation.parent_id.is_(None))
                 .returning(Conversation))
    return await session.scalar(statement, execution_options={"populate_existing": True})


async def _end_offers(session: AsyncSession, conversation: Conversation, keep_agent: int | None,
                      offers: list[Offer] | None = None) -> set[int]:
    """Withdraw the pending offers of a conversation except `keep_agent`'s; return whose ended.

    `offers` are its pending offers when the caller read them under the conversation's lock.
    """
    if offers is None:
        offers = await pending_offers(session, conversation.id)
    ended = _close_offers(offers, keep_agent)
    _tell_withdrawn(session, conversation, ended)
    return ended


def _close_offers(offers: list[Offer], keep_agent: int | None) -> set[int]:
    """Mark the offers accepted (`keep_agent`'s) or withdrawn; return the agents withdrawn from."""
    now = utcnow()
    ended: set[int] = set()
    for record in offers:
        record.ended_at = now
        if record.agent_id == keep_agent:
            record.state = OfferState.ACCEPTED
        else:
            record.state = OfferState.WITHDRAWN
            ended.add(record.agent_id)
    return ended


def _tell_withdrawn(session: AsyncSession, conversation: Conversation, agent_ids: set[int]) -> None:
    for agent_id in sorted(agent_ids):
        changes.withdrawn(session, conversation, agent_id, "offer withdrawn")



# Read without flushing first: a hangup's cause goes out with its move to wrap-up, in one UPDATE.
_PENDING_HANDOFFS = (select(Handoff).where(Handoff.conversation_id == bindparam("conversation"),
                                           Handoff.state == HandoffState.PENDING).order_by(Handoff.id)
                     .execution_options(autoflush=False))


async def cancel_pending_handoffs(session: AsyncSession, conversation: Conversation) -> set[int]:
    """The conversation ended while a colleague was asked to take it: the request lapses."""
    now = utcnow()
    told: set[int] = set()
    for handoff in await session.scalars(_PENDING_HANDOFFS, {"conversation": conversation.id}):
        handoff.state = HandoffState.CANCELLED
        handoff.reason = "the conversation ended"
        handoff.ended_at = now
        if handoff.to_agent_id is not None:
            told.add(handoff.to_agent_id)
        changes.handoff_answered(session, handoff, conversation, accepted=False)
    return told



async def give_freed_agents_work(session: AsyncSession, agent_ids: set[int]) -> set[int]:
    """Agents whose offer or contact just ended pick up waiting work; returns who got some."""
    await session.flush()
    served: set[int] = set()
    for agent_id in sorted(agent_ids):
        agent = await lock_agent(session, agent_id)
        if agent is None or agent.status not in ELIGIBLE:
            continue
        if await fill(session, agent):
            served.add(agent_id)
    return served


async def start_handling(session: AsyncSession, conversation: Conversation, agent: Agent | None,
                         detail: str, *, rang: bool = False) -> None:
    """The conversation is active with `agent`, who is busy from now on."""
    move(conversation, State.ACTIVE, session, agent_id=agent.id if agent else None, detail=detail)
    conversation.agent_id = agent.id if agent else None
    if agent is not None:
        agent.missed_offers = 0
        if agent.status in (AgentStatus.AWAY, AgentStatus.OFFLINE):
            # The phone system says the agent talks: busy, whatever the page said. What they had
            # chosen applies again when this contact ends (they see it on the page meanwhile).
            if agent.after_status is None:
                choose_after(agent, agent.status, agent.away_reason)
            await set_presence(session, agent, AgentStatus.BUSY)
        elif agent.status in (AgentStatus.AVAILABLE, AgentStatus.WRAP_UP):
            await set_presence(session, agent, AgentStatus.BUSY)
        version = changes.conversation_version(session, conversation, detail)
        info, agent_id = changes.ConversationInfo.of(conversation), agent.id
        changes.emit(session, lambda: changes.Answered(info, agent_id, version(), rang))


async def answer(ctx: Context, channel: Channel, external_id: str, answered_by: list[str]) -> Conversation:
    """The contact was answered: active for the agent who answered, withdrawn from the others."""
    logs.conversation_id.set(f"{channel.value}:{external_id}")
    async with ctx.transaction() as session:
        conversation = await _find(session, channel, external_id, lock=True)
        if conversation is None:
            raise NotFound(f"no {channel.value} with id {external_id!r}; send newCall first", field="callId")
        if conversation.state in ENDED:
            raise Conflict("%(channel)s %(id)s has ended already (%(state)s)", field="callId",
                           channel=channel.value, id=external_id, state=conversation.state.value)
        agent_id = None
        for reference in answered_by:
            agent_id = await find_agent_id(session, reference)
            if agent_id is not None:
                break
        # The conversation is locked, and every change of its offers locks it first: these stay true.
        ringing = await pending_offers(session, conversation.id)
        pending = [record.agent_id for record in ringing]
        if agent_id is None:
            agent_id = conversation.agent_id if conversation.agent_id is not None \
                else pending[0] if len(pending) == 1 else None
        agent = None
        if agent_id is None:
            log.warning("%s %s answered by unknown agent %r", channel.value, external_id, answered_by)
        else:
            holder = [conversation.agent_id] if conversation.agent_id is not None else []
            await lock_agents(session, {agent_id, *pending, *holder})
            # Locked after the conversation, like everywhere: presence periods must not interleave.
            agent = await lock_agent(session, agent_id)
        freed: set[int] = set()
        # The offers end before the agent's presence changes, so the presence change stores the
        # agent's readiness from all of it (the commit then has none left to compute).
        withdrawn = _close_offers(ringing, agent.id if agent else None)
        previous = conversation.agent_id if conversation.state is State.ACTIVE else None
        if previous is not None and agent is not None and previous != agent.id:
            # Answered again elsewhere (a pickup): the first agent's view and capacity change too.
            freed.add(previous)
        if conversation.state is not State.ACTIVE or (agent and conversation.agent_id != agent.id):
            rang = agent is not None and agent.id in pending
            await start_handling(session, conversation, agent, "answered", rang=rang)
        if previous is not None and previous in freed:
            await end_handling(session, previous)
            version = changes.conversation_version(session, conversation, "answered elsewhere")
            conversation_id = conversation.id
            changes.emit(session, lambda: changes.Ended(conversation_id, previous, version()))
        _tell_withdrawn(session, conversation, withdrawn)
        freed |= withdrawn
        await give_freed_agents_work(session, freed)
    return conversation


async def hang_up(ctx: Context, channel: Channel, external_id: str, cause: str | None = None) -> Conversation:
    """The contact ended: abandoned when nobody had answered (the pop is withdrawn), else wrap-up."""
    logs.conversation_id.set(f"{channel.value}:{external_id}")
    async with ctx.transaction() as session:
        conversation = await _find(session, channel, external_id, lock=True)
        if conversation is None:
            raise NotFound(f"no {channel.value} with id {external_id!r}", field="callId")
        if conversation.state in ENDED:
            return conversation
        conversation.hangup_cause = (cause or "")[:100] or None
        await customer_left(session, conversation, f"hangup {cause or ''}".strip(), cause)
    return conversation


async def customer_left(session: AsyncSession, conversation: Conversation, detail: str,
                        abandon_detail: str | None) -> None:
    """The customer went (hung up, ended the chat): the agent who had them goes to wrap-up; when
    nobody had answered yet, the conversation is abandoned and its offers are withdrawn."""
    touched = await cancel_pending_handoffs(session, conversation)
    if conversation.state is State.ACTIVE:
        # Nothing rings for an active conversation: offers are made only to queued or offered
        # ones, and answering ended them all.
        touched |= await begin_wrap_up(session, conversation, detail=detail)
    elif conversation.state not in ENDED:
        move(conversation, State.ABANDONED, session, detail=abandon_detail)
        await customers.conversation_ended(session, conversation.id, conversation.customer_id)
        touched |= await _end_offers(session, conversation, None)
    await give_freed_agents_work(session, set(touched))


async def _held_by(session: AsyncSession, conversation_id: int, agent_id: int) -> tuple[Conversation, set[int]]:
    """The conversation if `agent_id` has it offered or active, and every agent who sees it."""
    conversation = await session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise NotFound("This conversation does not exist.")
    viewers = set(await session.scalars(
        select(Offer.agent_id).where(Offer.conversation_id == conversation_id, Offer.state == OfferState.PENDING)))
    if conversation.state is State.ACTIVE and conversation.agent_id is not None:
        viewers.add(conversation.agent_id)
    if agent_id not in viewers:
        raise Conflict("This conversation is not yours (any more).")
    return conversation, viewers


async def parts(session: AsyncSession, conversation: Conversation | changes.ConversationInfo) -> list[int]:
    """The ids of a conversation and of the parts before it (one per handoff), oldest first."""
    ids = [conversation.id]
    parent = conversation.parent_id
    while parent is not None and parent not in ids and len(ids) < 50:
        ids.append(parent)
        parent = await session.scalar(select(Conversation.parent_id).where(Conversation.id == parent))
    return ids[::-1]


async def _attach(session: AsyncSession, conversation: Conversation, customer_id: int) -> None:
    """The conversation, its earlier parts and the notes and tickets written before the caller was
    known now belong to the customer, so they show on the customer's page and timeline."""
    ids = await parts(session, conversation)
    conversation.customer_id = customer_id
    await session.execute(update(Conversation).where(Conversation.id.in_(ids), Conversation.customer_id.is_(None))
                          .values(customer_id=customer_id))
    for model in (Note, Ticket):
        await session.execute(update(model).where(model.conversation_id.in_(ids), model.customer_id.is_(None))
                              .values(customer_id=customer_id))


async def link_customer(ctx: Context, agent_id: int, conversation_id: int, customer_id: int) -> None:
    """Attach the conversation to an existing customer, adding the caller's address to them."""
    async with ctx.transaction() as session:
        conversation, viewers = await _held_by(session, conversation_id, agent_id)
        customer = await customers.for_change(session, customer_id)  # not merged away or erased meanwhile
        await _attach(session, conversation, customer.id)
        audit.record(session, agent_id, audit.UPDATE, audit.CUSTOMER, customer.id,
                     f"linked conversation {conversation_id}")
        kind = CONTACT_KIND[conversation.channel]
        address = customer_address(conversation)
        normalized = customers.normalize(kind, address, ctx.region)
        if normalized is not None:
            known = await session.scalar(select(ContactPoint.id).where(
                ContactPoint.customer_id == customer.id, ContactPoint.kind == kind,
                ContactPoint.normalized == normalized))
            if known is None:
                session.add(ContactPoint(customer_id=customer.id, kind=kind, value=address, normalized=normalized))
                await reindex(session, [customer.id])
        await customers.changed(session, customer.id, also=viewers)


async def create_customer(
    ctx: Context, agent_id: int, conversation_id: int, *, name: str, company: str = "", phone: str = "",
    email: str = "",
) -> int:
    """Create the customer from the pop's form and attach the conversation to them."""
    async with ctx.transaction() as session:
        conversation, viewers = await _held_by(session, conversation_id, agent_id)
        customer = await customers.create(session, name=name, company=company, phones=[phone], emails=[email],
                                          region=ctx.region)
        await _attach(session, conversation, customer.id)
        customer_id = customer.id
        audit.record(session, agent_id, audit.CREATE, audit.CUSTOMER, customer_id,
                     f"from conversation {conversation_id}")
        await customers.changed(session, customer_id, also=viewers)
    return customer_id


async def handled_by(session: AsyncSession, conversation_id: int, agent_id: int) -> Conversation:
    """The conversation, row-locked, when `agent_id` handles it now (it is active with them).
    FOR NO KEY UPDATE: it excludes every other locker as FOR UPDATE does, but lets a visitor's
    message into the chat meanwhile (its reference check takes a key-share lock), so ending a chat
    (conversation, then chat) and a visitor writing (chat, then the message) cannot deadlock."""
    conversation = await session.get(Conversation, conversation_id, with_for_update={"key_share": True})
    if conversation is None:
        raise NotFound("This conversation does not exist.")
    if conversation.agent_id != agent_id or conversation.state is not State.ACTIVE:
        raise Conflict("This conversation is not yours (any more).")
    return conversation


async def end(ctx: Context, agent_id: int, conversation_id: int) -> None:
    """The agent closes a chat or mail they handle: it goes to wrap-up. Calls end by hanging up."""
    async with ctx.transaction() as session:
        conversation = await handled_by(session, conversation_id, agent_id)
        if conversation.channel is Channel.CALL:
            raise Conflict("A call ends when it is hung up.", field="channel")
        await begin_wrap_up(session, conversation, detail="closed by the agent")
        await cancel_pending_handoffs(session, conversation)
        if conversation.chat_id is not None:
            await end_chat(session, conversation, "agent")


CHAT_ENDED = "chat ended"  # the system line a chat ends with (each side shows it in its language)
CHAT_IDLE = "chat idle"  # ... when it ended because the visitor answered nothing for a while
CHAT_LEFT = "chat ended by visitor"  # ... when the visitor ended it from the widget


async def end_chat(session: AsyncSession, conversation: Conversation, by: str, line: str = CHAT_ENDED) -> None:
    """The chat of `conversation` is over: its visitor is told (with `line`), and their next
    message starts a new one."""
    chat = await session.get(Chat, conversation.chat_id, with_for_update=True)
    if chat is None or chat.ended_at is not None:
        return
    chat.ended_at, chat.ended_by = utcnow(), by
    said = Message(chat_id=chat.id, conversation_id=conversation.id, author=Author.SYSTEM, body=line,
                   created_at=utcnow())
    session.add(said)
    await session.flush()
    agents = frozenset(a for a in (conversation.agent_id,) if a is not None)
    chat_id, message_id, conversation_id = chat.id, said.id, conversation.id
    changes.emit(session, lambda: changes.ChatMessage(chat_id, message_id, conversation_id, agents))


# Calls a phone system routes itself and reports ring by ring (integrations.telephony.asterisk):
# the console follows. An agent is named by one reference (an extension, email or name), or by
# alternatives tried in order: ("201", "Anna de Vries") is the agent with extension 201, else the
# one named so.
AgentReference = str | tuple[str, ...]


def _alternatives(reference: AgentReference) -> tuple[str, ...]:
    return (reference,) if isinstance(reference, str) else reference


async def _referenced(session: AsyncSession, reference: AgentReference) -> Agent | None:
    for alternative in _alternatives(reference):
        agent = await find_agent(session, alternative)
        if agent is not None:
            return agent
    return None


def _waits_again(session: AsyncSession, conversation: Conversation, left: int | None, detail: str) -> None:
    """Nobody rings for the conversation any more: it waits in its queue again (the phone system
    decides where it rings next), and shows no agent."""
    if conversation.state not in (State.QUEUED, State.OFFERED):
        return  # answered (or ended) meanwhile: it keeps the agent who has it
    if conversation.state is State.OFFERED:
        move(conversation, State.QUEUED, session, agent_id=left, detail=detail)
    conversation.agent_id = None


async def _ring_ended(session: AsyncSession, conversation: Conversation, left: int, detail: str) -> None:
    """One ring of a conversation the phone system routes ended: it shows the one agent it still
    rings, or none when it rings several, or waits again when it rings nobody."""
    still = await pending_offers(session, conversation.id)
    if not still:
        _waits_again(session, conversation, left, detail)
    elif conversation.state is State.OFFERED:
        conversation.agent_id = still[0].agent_id if len(still) == 1 else None


async def ring(
    ctx: Context,
    channel: Channel,
    external_id: str,
    references: Sequence[AgentReference],
    *,
    from_address: str = "",
    to_address: str = "",
    queue: str | None = None,
    exclusive: bool = False,
) -> Conversation:
    """The phone system rings these agents for the contact: each gets the offer, with the pop,
    unless it rings them already.

    The phone system routes such a contact, so the console offers it to nobody else and its offers
    have no deadline: the phone system says when a ring ends (`stop_ringing`, `answer`, `hang_up`).
    A contact the console does not know yet (its arrival was missed, or came while the connector
    was away) is stored first from `from_address`, `to_address` and `queue`. With `exclusive` the
    references are all it rings now: offers to anyone else are withdrawn, and when it rings nobody
    it waits in its queue again (what a connector's resync after a reconnect says). Conflict when
    the contact was answered or has ended.
    """
    if not external_id or len(external_id) > 250:
        raise InvalidInput("external id must have 1 to 250 characters", field="external_id")
    logs.conversation_id.set(f"{channel.value}:{external_id}")
    async with ctx.transaction() as session:
        conversation = await _find(session, channel, external_id, lock=True)
        if conversation is None:
            await arrive_in(session, ctx, channel, external_id, from_address, to_address, queue_name=queue,
                            routed_by_phone_system=True)
            conversation = await _find(session, channel, external_id, lock=True)
            if conversation is None:  # pragma: no cover - it was stored in this transaction
                raise NotFound(f"no {channel.value} with id {external_id!r}", field="callId")
        if conversation.state in ENDED:
            raise Conflict("%(channel)s %(id)s has ended already (%(state)s)", field="callId",
                           channel=channel.value, id=external_id, state=conversation.state.value)
        if conversation.state is State.ACTIVE:
            raise Conflict("%(channel)s %(id)s is answered already", field="callId", channel=channel.value,
                           id=external_id)
        # The phone system rings it, so it routes it (a contact the console had routed is taken over).
        conversation.routed_by_console = False
        pending = await pending_offers(session, conversation.id)
        wanted: dict[int, Agent] = {}
        for reference in references:
            agent = await _referenced(session, reference)
            if agent is None:
                log.warning("%s %s rings an agent the console does not know (%s)", channel.value, external_id,
                            " or ".join(_alternatives(reference)))
            else:
                wanted.setdefault(agent.id, agent)
        withdrawn: set[int] = set()
        if exclusive:
            withdrawn = _close_offers([record for record in pending if record.agent_id not in wanted], None)
            _tell_withdrawn(session, conversation, withdrawn)
        ringing = {record.agent_id for record in pending} - withdrawn
        for agent_id, agent in wanted.items():
            if agent_id not in ringing:
                await offer(session, conversation, agent)
                ringing.add(agent_id)
        if not ringing:
            _waits_again(session, conversation, None, "ringing stopped")
        else:
            conversation.agent_id = next(iter(ringing)) if len(ringing) == 1 else None
        await give_freed_agents_work(session, withdrawn)
    return conversation


async def stop_ringing(ctx: Context, channel: Channel, external_id: str, reference: AgentReference, *,
                       missed: bool) -> Conversation:
    """The phone system stopped ringing one agent for the contact: that agent's offer ends.

    `missed` (the phone rang and nobody answered) counts as a missed offer, exactly as a console
    offer that rings out (console.offers.ring_out: missing twice in a row sets the agent away);
    otherwise (busy, cancelled) the offer is only withdrawn. When it rings nobody any more it
    waits in its queue again. A repeated or late event (the agent's offer ended already) changes
    nothing.
    """
    logs.conversation_id.set(f"{channel.value}:{external_id}")
    async with ctx.transaction() as session:
        conversation = await _find(session, channel, external_id, lock=True)
        if conversation is None:
            raise NotFound(f"no {channel.value} with id {external_id!r}", field="callId")
        agent = await _referenced(session, reference)
        if agent is None:
            log.info("%s %s stops ringing an agent the console does not know (%s)", channel.value, external_id,
                     " or ".join(_alternatives(reference)))
            return conversation
        agent_id, conversation_id = agent.id, conversation.id
        if not missed:
            record = next((o for o in await pending_offers(session, conversation.id) if o.agent_id == agent_id),
                          None)
            if record is None:
                return conversation
            await lock_agent(session, agent_id)
            _tell_withdrawn(session, conversation, _close_offers([record], None))
            if conversation.routed_by_console:
                await requeue(session, conversation, leaving=agent_id, detail="ringing stopped")
            else:
                await _ring_ended(session, conversation, agent_id, "ringing stopped")
            await give_freed_agents_work(session, {agent_id})
            return conversation
    from console.offers import ring_out  # console.offers builds on this module

    if not await ring_out(ctx, conversation_id, agent_id):
        return conversation
    async with ctx.transaction() as session:
        found = await session.get(Conversation, conversation_id, with_for_update=True, populate_existing=True)
        if found is None:
            raise NotFound(f"no {channel.value} with id {external_id!r}", field="callId")
        if not found.routed_by_console:
            await _ring_ended(session, found, agent_id, "rang out")
    return found


async def open_calls(ctx: Context, prefix: str) -> list[tuple[str, State]]:
    """The calls whose external id starts with `prefix` that are not over for the console
    (waiting, ringing or answered), oldest first: what a phone system's connector compares with
    the calls the phone system has, after it was away."""
    async with ctx.db.reading() as session:
        rows = await session.execute(
            select(Conversation.external_id, Conversation.state)
            .where(Conversation.channel == Channel.CALL,
                   Conversation.external_id.startswith(prefix, autoescape=True),
                   Conversation.state.in_((State.QUEUED, State.OFFERED, State.ACTIVE)))
            .order_by(Conversation.id))
        return [(external_id, state) for external_id, state in rows.all()]
