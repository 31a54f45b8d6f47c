"""Text messages: SMS and WhatsApp conversations, their delivery, and the customers who opted out.

A message from a customer's phone joins their open text conversation with that number of ours
(the newest part, after a handoff), or arrives as a new conversation of channel `sms`, routed and
popped like a chat. The agent who has it answers from the composer: the reply is stored at once
(queued) and sent by the messaging connector after the commit, again after a failure that may
pass, with Twilio's delivery statuses moving it forward (never back: callbacks come out of order).

Opt-out keywords (STOP and its usual English and Dutch variants) are honoured: the number gets no
text from the console until it sends START (or the like), and a matched customer's phone consent
is recorded as withdrawn. WhatsApp allows free text only within 24 hours of the customer's last
message; after that only an approved template may be sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from console import audit, changes, conversations, customers, logs
from console.errors import Conflict, InvalidInput
from console.i18n import N_
from console.lifecycle import ENDED
from console.models import (
    Author,
    Channel,
    ContactKind,
    Conversation,
    Customer,
    Direction,
    Message,
    Offer,
    OfferState,
    TextEarlyStatus,
    TextMessage,
    TextOptOut,
    utcnow,
)
from console.ports import Context

log = logging.getLogger("console.texts")

MAX_TEXT = 1600  # what an agent's SMS or WhatsApp message may hold
MAX_INCOMING = 4096  # what a customer's may (WhatsApp's limit; an SMS is at most 1,600)
OPTED_OUT_ERROR = "the customer sent STOP before it could be sent"
WINDOW = timedelta(hours=24)  # WhatsApp's customer service window after the customer's last message
WHATSAPP = "whatsapp:"
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE",
                        "STOPPEN", "AFMELDEN", "UITSCHRIJVEN", "AFMELDING"})
START_WORDS = frozenset({"START", "UNSTOP", "YES", "SUBSCRIBE", "AANMELDEN", "INSCHRIJVEN"})
# Delivery, in the order it comes (a later status never goes back to an earlier one).
ORDER = {"accepted": 0, "scheduled": 0, "queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4,
         "receiving": 0, "received": 4}
FAILED = ("failed", "undelivered", "canceled")
FINAL = (*FAILED, "read", "received")
RETRY = timedelta(seconds=30)  # a reply that could not go out is tried again after this
MAX_ATTEMPTS = 5
OPTED_OUT = N_("The customer opted out of text messages: nothing can be sent to them until they send START.")
OPTED_IN = N_("The customer opted in to text messages again.")


def is_whatsapp(address: str) -> bool:
    return address.startswith(WHATSAPP)


def number_of(address: str) -> str:
    """The phone number of an address (WhatsApp's are whatsapp:+31...)."""
    return address.removeprefix(WHATSAPP)


def opt_out_key(address: str, region: str) -> str:
    """One number's opt-out, per medium: whatsapp:+31612345678 or +31612345678."""
    normalized = customers.normalize_phone(number_of(address), region) or number_of(address).strip()
    return (WHATSAPP if is_whatsapp(address) else "") + normalized[:70]


def keyword(body: str) -> str | None:
    """"stop" or "start" when the message is only an opt-out or opt-in keyword."""
    word = body.strip().strip(".!").upper()
    return "stop" if word in STOP_WORDS else "start" if word in START_WORDS else None


def rank(status: str) -> int:
    return 5 if status in FAILED else ORDER.get(status, -1)


def version(lines: list[Message]) -> int:
    """The version of a text transcript: its newest line, then how far its replies' delivery has
    come (each step, and each failed attempt, pushes it again)."""
    newest = lines[-1].id if lines else 0
    moved = sum(rank(m.texted.status) + 1 + m.texted.attempts for m in lines
                if m.texted is not None and m.texted.direction is Direction.OUT)
    return newest * 1_000_000 + min(moved, 999_999)


@dataclass(frozen=True)
class Received:
    conversation_id: int | None  # None: an opt-out or opt-in keyword with no conversation going on
    message_id: int | None
    created: bool  # a new conversation
    repeated: bool  # Twilio sent the same message again
    keyword: str | None


@dataclass(frozen=True)
class Outgoing:
    """A reply to send: what the messaging connector needs, read when it claims it."""

    message_id: int
    body: str
    from_address: str  # our number (or whatsapp:+...)
    to_address: str
    template: str | None
    attempts: int


_OPEN = (select(Conversation).where(Conversation.channel == Channel.SMS, Conversation.from_address == bindparam("c"),
                                    Conversation.to_address == bindparam("us"), Conversation.state.not_in(ENDED))
         .order_by(Conversation.id.desc()).limit(1))


async def receive(ctx: Context, *, sid: str, from_address: str, to_address: str, body: str,
                  queue: str | None = None, media: int = 0) -> Received:
    """A customer's message: into their open conversation with this number, or a new one."""
    body = body.strip()
    if media:
        body = (body + "\n" if body else "") + f"[{media} attachment(s) not shown]"
    if not body:
        raise InvalidInput("the message has no text", field="Body")
    logs.conversation_id.set(f"sms:{sid}")
    found = await _seen(ctx, sid)
    if found is not None:
        return found
    word = keyword(body)
    try:
        async with ctx.transaction() as session:
            if word is not None and not await _opt(session, ctx.region, from_address, word, body.strip().upper()[:40]):
                word = None  # START from a number that never opted out (a "yes"), STOP again: a message
            conversation = await session.scalar(_OPEN.with_for_update(), {"c": from_address, "us": to_address})
            created = False
            if conversation is None:
                if word is not None:
                    return Received(None, None, False, False, word)  # nobody needs to answer a keyword
                arrival = await conversations.arrive_in(session, ctx, Channel.SMS, sid, from_address, to_address,
                                                        Direction.IN, (), queue)
                conversation = await session.get(Conversation, arrival.conversation_id)
                assert conversation is not None
                created = True
            message = await _add(session, conversation, Author.CUSTOMER, body, direction=Direction.IN, sid=sid,
                                 status="received")
            if word is not None:
                await _add(session, conversation, Author.SYSTEM, OPTED_OUT if word == "stop" else OPTED_IN)
            return Received(conversation.id, message.id, created, False, word)
    except IntegrityError:
        found = await _seen(ctx, sid)  # the same message twice at once: the first one stored it
        if found is None:
            raise
        return found


async def _seen(ctx: Context, sid: str) -> Received | None:
    async with ctx.db.reading() as session:
        row = (await session.execute(select(TextMessage.conversation_id, TextMessage.message_id)
                                     .where(TextMessage.sid == sid))).first()
    return Received(row.conversation_id, row.message_id, False, True, None) if row else None


async def _add(session: AsyncSession, conversation: Conversation, author: Author, body: str, *,
               direction: Direction | None = None, sid: str | None = None, status: str = "",
               agent_id: int | None = None, client_id: str | None = None, template: str | None = None) -> Message:
    """Store a line of the conversation (a text when `direction` is given) and tell who shows it."""
    now = utcnow()
    message = Message(conversation_id=conversation.id, author=author, agent_id=agent_id, body=body, created_at=now)
    session.add(message)
    await session.flush()
    if direction is not None:
        session.add(TextMessage(message_id=message.id, conversation_id=conversation.id, direction=direction, sid=sid,
                                client_id=client_id, template=template, status=status, updated_at=now,
                                next_attempt_at=now if direction is Direction.OUT else None))
        await session.flush()
    await _tell(session, conversation, message.id)
    return message


async def _tell(session: AsyncSession, conversation: Conversation, message_id: int) -> None:
    agents = set(await session.scalars(select(Offer.agent_id).where(
        Offer.conversation_id == conversation.id, Offer.state == OfferState.PENDING)))
    if conversation.agent_id is not None:
        agents.add(conversation.agent_id)
    shown, conversation_id = frozenset(agents), conversation.id
    changes.emit(session, lambda: changes.TextMessage(conversation_id, message_id, shown))


async def _opt(session: AsyncSession, region: str, address: str, word: str, said: str) -> bool:
    """Record the opt-out or opt-in, and the matched customers' phone consent with it; False when
    it changes nothing (STOP from a number that opted out already, START from one that never did:
    then "yes" is an answer, not a consent)."""
    key = opt_out_key(address, region)
    if word == "stop":
        if await session.get(TextOptOut, key) is not None:
            return False
        session.add(TextOptOut(address=key, keyword=said, at=utcnow()))
    else:
        removed = await session.execute(delete(TextOptOut).where(TextOptOut.address == key)
                                        .execution_options(synchronize_session=False))
        if not getattr(removed, "rowcount", 0):
            return False
    for customer_id in await customers.match(session, ContactKind.PHONE, number_of(address), region):
        customer = await session.get(Customer, customer_id)
        if customer is not None and customer.consent_phone != (word == "start"):
            customer.consent_phone = word == "start"
            audit.record(session, None, audit.UPDATE, audit.CUSTOMER, customer_id,
                         f"phone consent {'given' if word == 'start' else 'withdrawn'} by text message {said}")
    log.info("a number sent %s: texts to it are %s", said, "allowed again" if word == "start" else "stopped")
    return True


@dataclass(frozen=True)
class Composer:
    """What the agent's composer of a text conversation may send now, and why not."""

    whatsapp: bool
    opted_out_at: datetime | None
    window_ends: datetime | None  # WhatsApp: free text until then (None: outside the window)

    @property
    def free_text(self) -> bool:
        return self.opted_out_at is None and (not self.whatsapp or self.window_ends is not None)


async def composer(session: AsyncSession, conversation: Conversation | changes.ConversationInfo,
                   region: str) -> Composer:
    address = conversation.address if isinstance(conversation, changes.ConversationInfo) else \
        conversations.customer_address(conversation)
    opted = await session.scalar(select(TextOptOut.at).where(TextOptOut.address == opt_out_key(address, region)))
    window_ends = None
    if is_whatsapp(address):
        parts = await conversations.parts(session, conversation)
        last = await session.scalar(select(Message.created_at).join(TextMessage, TextMessage.message_id == Message.id)
                                    .where(TextMessage.conversation_id.in_(parts),
                                           TextMessage.direction == Direction.IN)
                                    .order_by(Message.id.desc()).limit(1))
        if last is not None and last + WINDOW > utcnow():
            window_ends = last + WINDOW
    return Composer(is_whatsapp(address), opted, window_ends)


async def from_agent(ctx: Context, agent_id: int, conversation_id: int, client_id: str, text: str,
                     template: tuple[str, str] | None = None) -> int:
    """The agent who has the conversation writes (or, on WhatsApp, sends the template (name,
    content SID)); stored once per `client_id` and queued for sending. Returns the message's id."""
    from console.chat import check_client_id

    client_id = check_client_id(client_id)
    body = text.strip()
    if template is None and not body:
        raise InvalidInput("Write a message first.", field="text")
    if len(body) > MAX_TEXT:
        raise InvalidInput("A text message has at most %(limit)s characters.", field="text", limit=MAX_TEXT)
    async with ctx.transaction() as session:
        earlier = await session.scalar(select(TextMessage.message_id).where(TextMessage.client_id == client_id))
        if earlier is not None:
            return earlier  # a resend of the same message (the answer was lost)
        conversation = await conversations.handled_by(session, conversation_id, agent_id)
        if conversation.channel is not Channel.SMS:
            raise InvalidInput("This conversation is not a text conversation.", field="text")
        state = await composer(session, conversation, ctx.region)
        if state.opted_out_at is not None:
            raise Conflict("This customer opted out of text messages (they sent STOP); nothing can be sent until "
                           "they send START.", field="text")
        if template is None and not state.free_text:
            raise Conflict("WhatsApp allows free text only within 24 hours of the customer's last message; choose "
                           "an approved template instead.", field="text")
        if template is not None and not state.whatsapp:
            raise InvalidInput("Templates are for WhatsApp conversations.", field="template")
        message = await _add(session, conversation, Author.AGENT, template[0] if template else body,
                             direction=Direction.OUT, status="queued", agent_id=agent_id, client_id=client_id,
                             template=template[1] if template else None)
        return message.id


async def claim(ctx: Context, message_id: int | None = None, limit: int = 20) -> list[Outgoing]:
    """Take replies that are due for sending (one, or the oldest `limit`): each is held for a minute,
    so another node (or this one after a crash) sends it only after that."""
    now = utcnow()
    async with ctx.transaction() as session:
        due = select(TextMessage.message_id).where(
            TextMessage.direction == Direction.OUT, TextMessage.status == "queued", TextMessage.sid.is_(None),
            TextMessage.next_attempt_at <= now)
        if message_id is not None:
            due = due.where(TextMessage.message_id == message_id)
        ids = list(await session.scalars(due.order_by(TextMessage.next_attempt_at).limit(limit)
                                         .with_for_update(skip_locked=True)))
        if message_id is None:  # the sweep: early statuses nobody claimed in a day were not ours
            await session.execute(delete(TextEarlyStatus).where(TextEarlyStatus.at < now - timedelta(days=1))
                                  .execution_options(synchronize_session=False))
        if not ids:
            return []
        await session.execute(update(TextMessage).where(TextMessage.message_id.in_(ids))
                              .values(next_attempt_at=now + timedelta(minutes=1),
                                      attempts=TextMessage.attempts + 1)
                              .execution_options(synchronize_session=False))
        rows = (await session.execute(
            select(TextMessage.message_id, Message.body, Conversation.from_address, Conversation.to_address,
                   Conversation.direction, TextMessage.template, TextMessage.attempts)
            .join(Message, Message.id == TextMessage.message_id)
            .join(Conversation, Conversation.id == TextMessage.conversation_id)
            .where(TextMessage.message_id.in_(ids)))).all()
        found = []
        for row in rows:
            ours, theirs = (row.from_address, row.to_address) if row.direction is Direction.OUT else \
                (row.to_address, row.from_address)
            if await session.get(TextOptOut, opt_out_key(theirs, ctx.region)) is not None:
                # They sent STOP after it was written: it is not sent (Twilio would not stop a WhatsApp).
                text = await session.get(TextMessage, row.message_id)
                if text is not None:
                    text.status, text.next_attempt_at, text.error = "failed", None, OPTED_OUT_ERROR
                    await _tell_about(session, text)
                continue
            found.append(Outgoing(row.message_id, row.body, ours, theirs, row.template, row.attempts))
    return found


async def sent(ctx: Context, message_id: int, sid: str, status: str) -> None:
    """Twilio took the reply: its id, and the status it gave."""
    async with ctx.transaction() as session:
        text = await session.get(TextMessage, message_id, with_for_update=True)
        if text is None:
            return
        text.sid, text.next_attempt_at, text.error = sid, None, None
        early = await session.get(TextEarlyStatus, sid, with_for_update=True)
        if early is not None:  # Twilio called back before its answer to the send was stored
            await session.delete(early)
            if rank(early.status) > rank(status):
                status, text.error = early.status, early.error
        if rank(status) > rank(text.status):
            text.status = status
        text.updated_at = utcnow()
        await _tell_about(session, text)


async def not_sent(ctx: Context, message_id: int, error: str, *, retry: bool) -> None:
    """The reply did not go out: tried again later when the cause may pass, else failed for good."""
    async with ctx.transaction() as session:
        text = await session.get(TextMessage, message_id, with_for_update=True)
        if text is None or text.sid is not None:
            return
        text.error = error[:300]
        if retry and text.attempts < MAX_ATTEMPTS:
            text.next_attempt_at = utcnow() + RETRY * text.attempts
        else:
            text.status, text.next_attempt_at = "failed", None
        text.updated_at = utcnow()
        await _tell_about(session, text)


async def delivery(ctx: Context, sid: str, status: str, error: str | None = None) -> bool:
    """A delivery status from Twilio; False when it changes nothing (repeated, late, or unknown)."""
    if status not in ORDER and status not in FAILED:
        return False
    async with ctx.transaction() as session:
        text = await session.scalar(select(TextMessage).where(TextMessage.sid == sid).with_for_update())
        if text is None:
            # Not stored yet (the send's answer is on its way), or not ours: kept a day for `sent`.
            early = await session.get(TextEarlyStatus, sid, with_for_update=True)
            if early is None:
                session.add(TextEarlyStatus(sid=sid, status=status, error=(error or "")[:300] or None, at=utcnow()))
            elif rank(status) > rank(early.status) and early.status not in FINAL:
                early.status, early.error = status, (error or "")[:300] or early.error
            return False
        if text.status in FINAL or rank(status) <= rank(text.status):
            return False
        text.status, text.updated_at = status, utcnow()
        if error:
            text.error = error[:300]
        await _tell_about(session, text)
        return True


async def _tell_about(session: AsyncSession, text: TextMessage) -> None:
    conversation = await session.get(Conversation, text.conversation_id)
    if conversation is None:
        return
    newest = await session.scalar(select(Conversation).where(
        Conversation.channel == Channel.SMS, Conversation.external_id == conversation.external_id)
        .order_by(Conversation.id.desc()).limit(1))
    await _tell(session, newest or conversation, text.message_id)
