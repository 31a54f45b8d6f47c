"""Live chat: the sites that embed the widget, their visitors, and the messages of a chat.

A site is known by a public key and may be embedded only on the origins listed for it. A visitor
is known by a random token kept in their browser (only its hash is stored), so a visitor can
only ever read their own chats. A chat becomes a conversation of channel `chat`, routed and
popped like a call; every part of it after a handoff shares the chat and its messages. Each
message carries the sender's own id, so a message sent again after a reconnect is stored once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import inspect, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from console import attachments, changes, conversations, customers, mail, wrapup
from console.errors import Conflict, Forbidden, InvalidInput, NotFound
from console.models import (
    Attachment,
    Author,
    Channel,
    Chat,
    ChatSite,
    ChatVisitor,
    ContactKind,
    ContactPoint,
    Conversation,
    Customer,
    Direction,
    Mail,
    MailThread,
    Message,
    Queue,
    State,
    utcnow,
)
from console.ports import Context

log = logging.getLogger("console.chat")


class IdentityRefused(Forbidden):
    """The site requires its visitors' identity, and this one's is missing or forged."""

MAX_MESSAGE = 4000  # characters of one message
MAX_CLIENT_ID = 64
TOKEN_BYTES = 24
VERIFIED, TYPED, ANONYMOUS = "verified", "typed", "anonymous"
OVER = (State.WRAP_UP, State.CLOSED, State.ABANDONED)


def chat_stream(chat_id: int) -> str:
    """The bus stream of a chat's frames for the visitor's widget."""
    return f"chat:{chat_id}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def visitor_address(site_key: str, visitor_id: int) -> str:
    """The chat's customer address: a contact point of kind visitor, so a returning visitor matches."""
    return f"{site_key}:{visitor_id}"


# Sites -------------------------------------------------------------------------------------------

def normalize_origin(raw: str) -> str:
    """`https://shop.example.nl` as a browser sends it in Origin: scheme, host and a port other
    than the scheme's own; anything else is a clear error."""
    text = raw.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.username:
        raise InvalidInput("%(origin)s is not an origin; write it as https://www.example.nl", field="origins",
                           origin=raw.strip()[:100])
    default = {"http": 80, "https": 443}[parts.scheme]
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("%(origin)s has a port that is not a number", field="origins",
                           origin=raw.strip()[:100]) from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


@dataclass(frozen=True)
class SiteSettings:
    """What a chat site's command line or admin form sets; None leaves a setting as it is."""

    origins: list[str] | None = None
    queue: str | None = None  # a queue name; "" for none
    greeting: str | None = None
    identity_required: bool | None = None
    hours: str | None = None
    timezone: str | None = None
    idle_minutes: int | None = None
    prechat: bool | None = None


async def configure_site(session: AsyncSession, name: str, values: SiteSettings) -> tuple[ChatSite, bool]:
    """Create the site called `name`, or change it; returns it and whether it is new."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("a chat site needs a name of 1 to 200 characters", field="name")
    site = await session.scalar(select(ChatSite).where(ChatSite.name == name).with_for_update())
    created = site is None
    if site is None:
        site = ChatSite(name=name, key=secrets.token_urlsafe(18), secret=secrets.token_urlsafe(32), origins="")
        session.add(site)
    if values.origins is not None:
        site.origins = "\n".join(dict.fromkeys(normalize_origin(o) for o in values.origins if o.strip()))
    if values.queue is not None:
        if values.queue.strip():
            queue_id = await session.scalar(select(Queue.id).where(Queue.name == values.queue.strip()))
            if queue_id is None:
                raise NotFound("no queue called %(queue)s", field="queue", queue=values.queue.strip())
            site.queue_id = queue_id
        else:
            site.queue_id = None
    if values.greeting is not None:
        if len(values.greeting) > 500:
            raise InvalidInput("a greeting has at most 500 characters", field="greeting")
        site.greeting = values.greeting.strip() or None
    if values.identity_required is not None:
        site.identity_required = values.identity_required
    if values.prechat is not None:
        site.prechat = values.prechat
    if values.hours is not None:
        from console import hours as opening

        if len(values.hours) > 500:
            raise InvalidInput("opening hours have at most 500 characters", field="hours")

        opening.parse(values.hours)  # a clear error now, not at the first visitor
        site.hours = values.hours.strip() or None
    if values.timezone is not None:
        from console import hours as opening

        site.timezone = opening.check_timezone(values.timezone)
    if values.idle_minutes is not None:
        if not 1 <= values.idle_minutes <= 24 * 60:
            raise InvalidInput("the idle time is 1 to 1440 minutes", field="idle_minutes")
        site.idle_minutes = values.idle_minutes
    if not site.origins:
        raise InvalidInput("a chat site needs at least one origin, like https://www.example.nl",
                           field="origins")
    await session.flush()
    return site, created


async def site_for(session: AsyncSession, key: str, origin: str | None) -> ChatSite:
    """The site with this key, when the page asking is on one of its origins."""
    site = await session.scalar(select(ChatSite).where(ChatSite.key == key[:64])) if key else None
    if site is None:
        raise NotFound("This chat is not set up (unknown site key).")
    try:
        normalized = normalize_origin(origin or "")
    except InvalidInput:
        normalized = ""
    if not normalized or normalized not in site.origins.split("\n"):
        log.warning("chat site %s refused a page from %r: not one of its origins", site.name, (origin or "")[:100])
        raise Forbidden("This website may not use this chat.")
    return site


def signature(site: ChatSite, identifier: str) -> str:
    """What the site's server computes for `identifier`: HMAC-SHA256 with the site's secret, in hex."""
    return hmac.new(site.secret.encode(), identifier.encode("utf-8"), hashlib.sha256).hexdigest()


def identity_holds(site: ChatSite, identifier: str, given_hash: str) -> bool:
    return bool(identifier) and hmac.compare_digest(signature(site, identifier).encode(),
                                                    given_hash.strip().lower().encode("utf-8", "replace"))


# Visitors ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Visit:
    """Who the widget talks for: the visitor, and the token to keep (new when `fresh`)."""

    visitor_id: int
    site_id: int
    token: str
    fresh: bool
    identity: str
    customer_id: int | None
    name: str | None
    email: str | None = None


async def visit(ctx: Context, site: ChatSite, token: str | None, identifier: str = "",
                identifier_hash: str = "") -> Visit:
    """The visitor this browser is (by its token), or a new one; with a site-signed identifier,
    verified as that person. A forged identifier is refused when the site requires identity, and
    ignored (never linked, never shown) otherwise."""
    identifier = identifier.strip()[:320]
    verified = identity_holds(site, identifier, identifier_hash) if identifier else False
    if site.identity_required and not identifier:
        raise IdentityRefused("Log in on the website to chat with us.")
    if identifier and not verified:
        log.warning("chat site %s: an identifier came with a wrong signature; %s", site.name,
                    "refused" if site.identity_required else "ignored")
        if site.identity_required:
            raise IdentityRefused("This website could not confirm who you are. Log in on the website again.")
        identifier = ""
    async with ctx.transaction() as session:
        visitor = None
        if token:
            visitor = await session.scalar(select(ChatVisitor).where(
                ChatVisitor.token_hash == token_hash(token), ChatVisitor.site_id == site.id).with_for_update())
        if visitor is not None and identifier and visitor.identifier and visitor.identifier != identifier:
            visitor = None  # someone else logged in on this browser: they get a visitor of their own
        if visitor is not None and visitor.identity == VERIFIED and not identifier:
            # Logged out on the site, or the next person at a shared browser: not that customer,
            # and none of their chats or details.
            visitor = None
        fresh = visitor is None
        if visitor is None:
            token = secrets.token_urlsafe(TOKEN_BYTES)
            visitor = ChatVisitor(site_id=site.id, token_hash=token_hash(token), identity=ANONYMOUS)
            session.add(visitor)
            await session.flush()
        assert token is not None
        visitor.last_seen_at = utcnow()
        if identifier and visitor.identifier != identifier:
            visitor.identifier, visitor.identity = identifier, VERIFIED
            if "@" in identifier:
                await _link_email(session, ctx, site, visitor, identifier)
        return Visit(visitor.id, site.id, token, fresh, visitor.identity, visitor.customer_id, visitor.name,
                     visitor.email)


async def returning_visitor(session: AsyncSession, site: ChatSite, token: str) -> Visit | None:
    """The visitor of this site whose browser holds `token`, or None (never a new one): for what
    a visitor sends beside the socket, which only a visitor the socket greeted may send."""
    if not token or len(token) > 100:
        return None
    visitor = await session.scalar(select(ChatVisitor).where(ChatVisitor.token_hash == token_hash(token),
                                                             ChatVisitor.site_id == site.id))
    if visitor is None:
        return None
    return Visit(visitor.id, site.id, token, False, visitor.identity, visitor.customer_id, visitor.name,
                 visitor.email)


MAX_NAME = 200


async def describe(ctx: Context, visit_: Visit, name: str, email: str) -> Visit:
    """The visitor says who they are (the pre-chat form, or leaving a message): their name and an
    email address to answer to. Typed, not verified: kept on the visitor and shown in the pop as
    typed, never linked to a customer by itself (anyone can type anyone's address); the pop offers
    the customers with that address, or a new one, and the agent decides. A visitor the website
    verified stays verified; what they type only adds an address to answer to when it has none."""
    name = " ".join(name.split())
    email = email.strip()
    if len(name) > MAX_NAME:
        raise InvalidInput("A name has at most %(count)s characters.", field="name", count=MAX_NAME)
    if email and (len(email) > 320 or customers.normalize_email(email) is None):
        raise InvalidInput("This is not an email address.", field="email")
    async with ctx.transaction() as session:
        visitor = await session.get(ChatVisitor, visit_.visitor_id, with_for_update=True)
        if visitor is None:
            raise NotFound("This chat visitor does not exist (any more). Reload the page.")
        if visitor.identity == VERIFIED:
            visitor.email = visitor.email or email or None
        elif name or email:
            visitor.identity = TYPED
            visitor.name = name or visitor.name
            visitor.email = email or visitor.email
        return Visit(visitor.id, visitor.site_id, visit_.token, visit_.fresh, visitor.identity,
                     visitor.customer_id, visitor.name, visitor.email)


async def _link_email(session: AsyncSession, ctx: Context, site: ChatSite, visitor: ChatVisitor,
                      email: str) -> None:
    """The visitor is the customer with this email address (one is created when none has it; with
    several, none is picked: the agent links the right one). Their visitor address joins the
    customer's contact points, so their next chats match at once."""
    normalized = customers.normalize_email(email)
    if normalized is None:
        return
    visitor.email = email[:320]
    found = await customers.match(session, ContactKind.EMAIL, email, ctx.region)
    if len(found) > 1:
        return
    if found:
        customer_id = found[0]
    else:
        customer = Customer(name=visitor.name or email.split("@")[0], created_at=utcnow(), updated_at=utcnow())
        session.add(customer)
        await session.flush()
        session.add(ContactPoint(customer_id=customer.id, kind=ContactKind.EMAIL, value=email[:320],
                                 normalized=normalized))
        customer_id = customer.id
    visitor.customer_id = customer_id
    address = visitor_address(site.key, visitor.id)
    if not await customers.match(session, ContactKind.VISITOR, address, ctx.region):
        session.add(ContactPoint(customer_id=customer_id, kind=ContactKind.VISITOR, value=address,
                                 normalized=address))


# Messages ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    """One message as both sides show it."""

    id: int
    author: Author
    body: str
    at: datetime
    agent_name: str | None
    client_id: str | None
    read: bool

    chat_id: int = 0  # the chat it is in (not shown: the widget follows it)
    attachment: attachments.Info | None = None  # the file it carries (its body is the file's name)

    @classmethod
    def of(cls, message: Message, agent_name: str | None = None, chat_id: int = 0,
           attachment: attachments.Info | None = None) -> Line:
        if attachment is None and "attachment" not in inspect(message).unloaded:  # loaded with the message
            attachment = attachments.info(message.attachment)
        return cls(message.id, message.author, message.body, message.created_at, agent_name, message.client_id,
                   message.read_at is not None, chat_id or message.chat_id or 0, attachment)

    def as_json(self) -> dict[str, object]:
        """The message for the widget; a file's link is added by the web layer, which signs it."""
        return {"id": self.id, "from": self.author.value, "text": self.body, "at": self.at.isoformat(),
                "agent": self.agent_name, "client_id": self.client_id, "read": self.read,
                "chat": self.chat_id or None,
                "attachment": self.attachment.as_json() if self.attachment else None}


def check_message(text: str) -> str:
    body = text.strip()
    if not body:
        raise InvalidInput("Write something first: the message is empty.", field="text")
    if len(body) > MAX_MESSAGE:
        raise InvalidInput("A message has at most %(limit)s characters.", field="text", limit=MAX_MESSAGE)
    return body


def check_client_id(client_id: str) -> str:
    value = client_id.strip()
    if not value or len(value) > MAX_CLIENT_ID or not value.isascii() or not value.isprintable():
        raise InvalidInput("Every message needs an id of its own (1 to 64 plain characters).", field="client_id")
    return value


PAGE = 500  # messages read at once


async def lines(session: AsyncSession, chat_id: int, after: int = 0, limit: int = PAGE) -> list[Line]:
    """The chat's messages after message `after`, oldest first."""
    from console.models import Agent

    rows = await session.execute(
        select(Message, Agent.name).outerjoin(Agent, Agent.id == Message.agent_id)
        .where(Message.chat_id == chat_id, Message.id > after).options(joinedload(Message.attachment))
        .order_by(Message.id).limit(limit))
    return [Line.of(m, name) for m, name in rows.unique().all()]


async def latest_chat(session: AsyncSession, visitor_id: int) -> Chat | None:
    return await session.scalar(select(Chat).where(Chat.visitor_id == visitor_id).order_by(Chat.id.desc()).limit(1))


async def open_chat(session: AsyncSession, visitor_id: int) -> Chat | None:
    return await session.scalar(select(Chat).where(Chat.visitor_id == visitor_id, Chat.ended_at.is_(None))
                                .order_by(Chat.id.desc()).limit(1))


async def _current_part(session: AsyncSession, chat_id: int) -> Conversation | None:
    """The newest part of the chat's conversation (after a handoff, the colleague's)."""
    return await session.scalar(select(Conversation).where(Conversation.chat_id == chat_id)
                                .order_by(Conversation.id.desc()).limit(1).with_for_update(key_share=True))


async def _store(session: AsyncSession, values: dict[str, object]) -> tuple[Message, bool]:
    """Insert the message unless this sender sent it before (same client id); returns it and
    whether it is new. One statement either way, and no error that would end the transaction."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (insert(Message).values(values)
                 .on_conflict_do_nothing(index_elements=["chat_id", "author", "client_id"],
                                         index_where=Message.client_id.is_not(None))
                 .returning(Message))
    stored = await session.scalar(statement, execution_options={"populate_existing": True})
    if stored is not None:
        return stored, True
    existing = await session.scalar(select(Message).where(
        Message.chat_id == values["chat_id"], Message.author == values["author"],
        Message.client_id == values["client_id"]))
    assert existing is not None
    return existing, False


def _told(session: AsyncSession, conversation: Conversation, message: Message) -> None:
    agents = frozenset(a for a in (conversation.agent_id,) if a is not None)
    chat_id, message_id, conversation_id = message.chat_id or 0, message.id, conversation.id
    changes.emit(session, lambda: changes.ChatMessage(chat_id, message_id, conversation_id, agents))


async def _sent_before(session: AsyncSession, visitor_id: int, client_id: str) -> Message | None:
    """The visitor's message with this id in any of their chats: a resend after the chat ended
    (the confirmation was lost) is the message they sent, not the start of another chat."""
    return await session.scalar(select(Message).join(Chat, Chat.id == Message.chat_id).where(
        Chat.visitor_id == visitor_id, Message.author == Author.CUSTOMER, Message.client_id == client_id)
        .options(joinedload(Message.attachment)))


def page_on_site(site: ChatSite, page_url: str) -> str | None:
    """The page the visitor writes from, when it is on one of the site's origins: shown to the
    agent without its query and fragment (they may hold personal data, and a visitor must not
    be able to put any link of their choosing in front of the agent)."""
    parts = urlsplit(page_url.strip()[:2000])
    try:
        origin = normalize_origin(f"{parts.scheme}://{parts.netloc}")
    except InvalidInput:
        return None
    return origin + (parts.path or "/") if origin in site.origins.split("\n") else None


async def from_visitor(ctx: Context, visit_: Visit, client_id: str, text: str, page_url: str = "",
                       chat_id: int | None = None, left: bool = False,
                       attachment: attachments.Upload | None = None) -> Line:
    """The visitor writes: into their open chat, or the first message of a new one, which arrives
    as a conversation and is routed like a call. The message is stored in the transaction that
    finds the chat still open (its row locked), so an agent ending the chat meanwhile means a new
    chat for it, never a message where nobody looks. `chat_id` is the chat the widget follows:
    then one transaction does it all, the usual case. `left`: written while nobody could answer
    (the chat says so, in the same transaction, so whoever takes it answers by email). With
    `attachment`, the message is that file and `text` its name."""
    body, client_id = check_message(text), check_client_id(client_id)
    if chat_id is not None:
        line = await _into_open(ctx, visit_.visitor_id, chat_id, body, client_id, left, attachment)
        if line is not None:
            return line
    for _ in range(3):
        async with ctx.db.reading() as session:
            earlier = await _sent_before(session, visit_.visitor_id, client_id)
            if earlier is not None:
                return Line.of(earlier, chat_id=earlier.chat_id or 0)
        line = await _into_open(ctx, visit_.visitor_id, await _open_or_start(ctx, visit_, page_url, body), body,
                                client_id, left, attachment)
        if line is not None:
            return line
        # Ended meanwhile, or over: the next round ends it and starts anew.
    raise Conflict("This chat could not be started; send your message again.", field="text")


async def _into_open(ctx: Context, visitor_id: int, chat_id: int, body: str, client_id: str,
                     left: bool = False, attachment: attachments.Upload | None = None) -> Line | None:
    """Store the message in the visitor's chat if it is still open and someone's conversation
    (its row locked while checked and stored); None otherwise."""
    async with ctx.transaction() as session:
        locked = await session.scalar(select(Chat.id).where(Chat.id == chat_id, Chat.visitor_id == visitor_id,
                                                            Chat.ended_at.is_(None)).with_for_update())
        part = await session.scalar(select(Conversation).where(Conversation.chat_id == chat_id)
                                    .order_by(Conversation.id.desc()).limit(1)) if locked is not None else None
        if part is None or part.state in OVER:
            return None
        message, new = await _store(session, {
            "chat_id": chat_id, "conversation_id": part.id, "author": Author.CUSTOMER, "body": body,
            "client_id": client_id, "created_at": utcnow()})
        file = await _with_file(session, message, new, attachment)
        if new:
            _told(session, part, message)
            if left:
                await _mark_left(session, chat_id, part)
        return Line.of(message, chat_id=chat_id, attachment=file)


async def _with_file(session: AsyncSession, message: Message, new: bool,
                     upload: attachments.Upload | None) -> attachments.Info | None:
    """The message's file: stored with a new message; a resend's is the one stored the first time."""
    if new and upload is not None:
        stored = attachments.store(session, message.id, message.chat_id, upload)
        await session.flush()
        return attachments.info(stored)
    if new:
        return None
    return attachments.info(await session.scalar(select(Attachment).where(Attachment.message_id == message.id)))


async def _open_or_start(ctx: Context, visit_: Visit, page_url: str, first: str) -> int:
    """The visitor's open chat, or a new one; either way with its conversation (arrive() is
    idempotent on the chat, so a chat whose arrival failed before gets it now)."""
    async with ctx.transaction() as session:
        site = await session.get(ChatSite, visit_.site_id)
        if site is None:
            raise NotFound("This chat is not set up (unknown site key).")
        chat = await open_chat(session, visit_.visitor_id)
        if chat is not None:
            part = await _current_part(session, chat.id)
            if part is not None and part.state in OVER:
                # Nobody reads this chat any more (wrapped up, abandoned): this message starts a
                # new one, so it is routed to someone instead of landing where no one looks.
                await conversations.end_chat(session, part, "over")
                chat = None
        if chat is None:
            chat = Chat(site_id=site.id, visitor_id=visit_.visitor_id, page_url=page_on_site(site, page_url),
                        started_at=utcnow())
            session.add(chat)
            try:
                async with session.begin_nested():
                    await session.flush()
            except IntegrityError:  # another tab of the visitor started one just now: that one it is
                chat = await open_chat(session, visit_.visitor_id)
                if chat is None:
                    raise Conflict("This chat could not be started; send your message again.",
                                   field="text") from None
        chat_id, site_key, site_name, queue_id = chat.id, site.key, site.name, site.queue_id
        has_part = await session.scalar(select(Conversation.id).where(Conversation.chat_id == chat_id).limit(1))
    if has_part is None:
        queue_name = None
        if queue_id is not None:
            async with ctx.db.reading() as session:
                queue_name = await session.scalar(select(Queue.name).where(Queue.id == queue_id))
        await conversations.arrive(ctx, channel=Channel.CHAT, external_id=f"chat-{chat_id}",
                                   from_address=visitor_address(site_key, visit_.visitor_id),
                                   to_address=site_name, queue=queue_name, subject=first[:500], chat_id=chat_id)
    return chat_id


async def from_agent(ctx: Context, agent_id: int, conversation_id: int, client_id: str, text: str,
                     attachment: attachments.Upload | None = None) -> Line:
    """The agent who has the chat now writes to the visitor (with `attachment`: sends that file,
    `text` being its name)."""
    body, client_id = check_message(text), check_client_id(client_id)
    async with ctx.transaction() as session:
        conversation = await conversations.handled_by(session, conversation_id, agent_id)
        if conversation.channel is not Channel.CHAT or conversation.chat_id is None:
            raise InvalidInput("This conversation is not a chat.", field="text")
        chat = await session.get(Chat, conversation.chat_id)
        if chat is None or chat.ended_at is not None:
            raise Conflict("This chat has ended; the visitor no longer reads it.")
        message, new = await _store(session, {
            "chat_id": chat.id, "conversation_id": conversation.id, "author": Author.AGENT, "agent_id": agent_id,
            "body": body, "client_id": client_id, "created_at": utcnow()})
        file = await _with_file(session, message, new, attachment)
        from console.models import Agent

        agent = await session.get(Agent, agent_id)
        if new:
            _told(session, conversation, message)
            if attachment is None:
                await _by_mail_if_left(session, chat, message, agent.name if agent else "", conversation.subject)
        return Line.of(message, agent.name if agent else None, attachment=file)


async def read_by_visitor(ctx: Context, visit_: Visit, upto: int) -> int:
    """The visitor's widget showed the agents' messages up to `upto`: they are marked read (the
    agent sees it). Returns how many were marked; only the visitor's own open chat counts."""
    async with ctx.transaction() as session:
        chat = await open_chat(session, visit_.visitor_id)
        return 0 if chat is None else await _mark_read(session, chat.id, Author.AGENT, upto, "")


async def read_by_agent(ctx: Context, agent_id: int, conversation_id: int, upto: int) -> int:
    """The agent's page showed the visitor's messages up to `upto`: the visitor sees them read."""
    async with ctx.transaction() as session:
        conversation = await conversations.handled_by(session, conversation_id, agent_id)
        if conversation.chat_id is None:
            raise InvalidInput("This conversation is not a chat.", field="upto")
        return await _mark_read(session, conversation.chat_id, Author.CUSTOMER, upto, "read")


async def _mark_read(session: AsyncSession, chat_id: int, author: Author, upto: int, tell_visitor: str) -> int:
    from sqlalchemy import update

    marked = (await session.execute(
        update(Message).where(Message.chat_id == chat_id, Message.author == author, Message.id <= upto,
                              Message.read_at.is_(None))
        .values(read_at=utcnow()).returning(Message.id))).scalars().all()
    if marked:
        part = await _current_part(session, chat_id)
        if part is not None:
            agents = frozenset(a for a in (part.agent_id,) if a is not None)
            newest, part_id = max(marked), part.id
            changes.emit(session, lambda: changes.ChatMessage(chat_id, newest, part_id, agents, tell_visitor))
    return len(marked)


async def typing_agent(session: AsyncSession, chat_id: int) -> int | None:
    """Who sees that the visitor of this chat types: the agent of its newest part."""
    return await session.scalar(select(Conversation.agent_id).where(Conversation.chat_id == chat_id)
                                .order_by(Conversation.id.desc()).limit(1))


async def writer(session: AsyncSession, conversation_id: int, agent_id: int) -> tuple[int, str]:
    """The chat `agent_id` may write in now (through this conversation), and the agent's name;
    read without locks (for what passes, like typing)."""
    from console.models import Agent

    row = (await session.execute(select(Conversation.agent_id, Conversation.state, Conversation.chat_id, Agent.name)
                                 .outerjoin(Agent, Agent.id == Conversation.agent_id)
                                 .where(Conversation.id == conversation_id))).first()
    if row is None:
        raise NotFound("This conversation does not exist.")
    holder, state, chat_id, name = row
    if holder != agent_id or state is not State.ACTIVE:
        raise Conflict("This conversation is not yours (any more).")
    if chat_id is None:
        raise InvalidInput("This conversation is not a chat.", field="text")
    return chat_id, name or ""


VISITOR_ENDED = "ended by the visitor"


async def end_by_visitor(ctx: Context, visit_: Visit) -> int | None:
    """The visitor ends their chat from the widget: the agent who has it goes to wrap-up (a chat
    nobody answered yet is abandoned and its offers withdrawn), and both sides read that the
    visitor ended it. Returns the chat's id, or None when they had no open chat."""
    async with ctx.db.reading() as session:
        chat = await open_chat(session, visit_.visitor_id)
    if chat is None:
        return None
    async with ctx.transaction() as session:
        # The conversation, then the chat: the order an agent ending it locks in.
        part = await session.scalar(select(Conversation).where(Conversation.chat_id == chat.id)
                                    .order_by(Conversation.id.desc()).limit(1).with_for_update(key_share=True))
        if part is None:  # its arrival failed: nobody saw it, so only the chat ends
            locked = await session.get(Chat, chat.id, with_for_update=True)
            if locked is not None and locked.ended_at is None:
                locked.ended_at, locked.ended_by = utcnow(), "visitor"
            return chat.id
        await conversations.customer_left(session, part, VISITOR_ENDED, VISITOR_ENDED)
        await conversations.end_chat(session, part, "visitor", conversations.CHAT_LEFT)
    log.info("chat %s ended by its visitor", chat.id)
    return chat.id


IDLE_DETAIL = "the visitor did not answer"


async def sweep_idle(ctx: Context, limit: int = 50) -> int:
    """Chats that wait on their visitor for their site's idle time (the newest message is the
    agent's, and that old) end: both sides read why, and the agent's part goes to wrap-up. A
    visitor waiting for an answer is never idle. Safe on every node (what another holds is skipped)."""
    # Each open chat's newest message and newest part, read through their indexes (chat, id),
    # one probe each per chat: correlated in the WHERE, never joined on (which plans as a scan).
    def newest(column: Any, model: Any = Message) -> Any:
        return (select(column).where(model.chat_id == Chat.id).order_by(model.id.desc()).limit(1)
                .correlate(Chat).scalar_subquery())

    async with ctx.db.reading() as session:
        sites = (await session.execute(select(ChatSite.id, ChatSite.idle_minutes))).all()
        waiting: list[tuple[int, datetime]] = []
        for site_id, minutes in sites:
            cutoff = utcnow() - timedelta(minutes=minutes)
            # Only chats an agent has now (a part queued, ringing or over is nobody's idle chat).
            waiting += [(chat_id, cutoff) for chat_id in await session.scalars(
                select(Chat.id).where(Chat.site_id == site_id, Chat.ended_at.is_(None),
                                      newest(Message.author) == Author.AGENT, newest(Message.created_at) < cutoff,
                                      newest(Conversation.state, Conversation) == State.ACTIVE)
                .order_by(Chat.id).limit(limit))]
    ended = 0
    for chat_id, cutoff in waiting:
        async with ctx.transaction() as session:
            # The conversation, then the chat: the order an agent ending it locks in.
            part = await session.scalar(select(Conversation).where(Conversation.chat_id == chat_id)
                                        .order_by(Conversation.id.desc()).limit(1)
                                        .with_for_update(skip_locked=True, key_share=True))
            if part is None or part.state is not State.ACTIVE:
                continue
            await session.get(Chat, chat_id, with_for_update=True)
            last = (await session.execute(select(Message.author, Message.created_at).where(
                Message.chat_id == chat_id).order_by(Message.id.desc()).limit(1))).first()
            if last is None or last.author is not Author.AGENT or last.created_at >= cutoff:
                continue  # the visitor wrote meanwhile
            await wrapup.begin_wrap_up(session, part, detail=IDLE_DETAIL)
            await conversations.cancel_pending_handoffs(session, part)
            await conversations.end_chat(session, part, "idle", conversations.CHAT_IDLE)
        ended += 1
    if ended:
        log.info("%d chats ended: their visitors answered nothing for their site's idle time", ended)
    return ended


ANSWERED_LATELY = timedelta(minutes=10)  # an agent wrote this recently: the chat goes on, whatever the hour


@dataclass(frozen=True)
class Availability:
    """What the widget tells a visitor before they write: whether the site is open now, whether
    anyone could answer, and whether it asks who they are first."""

    open: bool
    staffed: bool
    prechat: bool

    @property
    def answering(self) -> bool:
        return self.open and self.staffed


async def availability(session: AsyncSession, site: ChatSite, current: Chat | None) -> Availability:
    from console import hours, routing

    now = utcnow()
    if current is not None:
        answered = await session.scalar(select(Message.id).where(
            Message.chat_id == current.id, Message.author == Author.AGENT,
            Message.created_at >= now - ANSWERED_LATELY).limit(1))
        if answered is not None:  # no "we are closed" to someone an agent is talking with
            return Availability(True, True, site.prechat)
    is_open = hours.is_open(site.hours, site.timezone, now)
    staffed = is_open and await routing.staffed(session, site.queue_id, Channel.CHAT)
    return Availability(is_open, staffed, site.prechat)


LEFT = "message left"  # the system line after a message left while nobody could answer


async def _by_mail_if_left(session: AsyncSession, chat: Chat, message: Message, agent_name: str,
                           about: str | None) -> None:
    """The answer to a message left while nobody could answer goes by mail too (the visitor asked
    for it and is likely gone), to the address they gave; one mail thread per chat, so the
    visitor's reply to it comes back as a mail conversation with the console's token."""
    left = await session.scalar(select(Message.id).where(
        Message.chat_id == chat.id, Message.author == Author.SYSTEM, Message.body == LEFT).limit(1))
    if left is None:
        return
    back = await session.scalar(select(Message.id).where(
        Message.chat_id == chat.id, Message.author == Author.CUSTOMER, Message.id > left).limit(1))
    if back is not None:  # the visitor wrote again since: they are in the chat, no mail needed
        return
    visitor = await session.get(ChatVisitor, chat.visitor_id)
    address = customers.normalize_email(visitor.email or "") if visitor is not None else None
    failing = await session.scalar(select(ContactPoint.id).where(
        ContactPoint.kind == ContactKind.EMAIL, ContactPoint.normalized == (address or ""),
        ContactPoint.failing_since.is_not(None)).limit(1))
    if failing is not None:
        log.info("chat %s: the answer to a left message stays in the chat: the visitor's address bounces", chat.id)
        return
    if address is None:
        log.info("chat %s: the answer to a left message stays in the chat: the visitor gave no email address",
                 chat.id)
        return
    mailbox = await mail.sending_mailbox(session)
    if mailbox is None:
        log.warning("chat %s: the answer to a left message cannot be mailed: no mailbox with an address is set up",
                    chat.id)
        return
    earlier = (await session.execute(
        select(Mail.thread_id, Mail.header_id).join(Message, Message.id == Mail.message_id)
        .where(Message.chat_id == chat.id, Mail.direction == Direction.OUT, Mail.automatic_reply.is_(False))
        .order_by(Mail.id))).all()
    site = await session.get(ChatSite, chat.site_id)
    site_name = site.name if site is not None else ""
    subject = f"{site_name}: {' '.join((about or '').split())[:60]}".strip(": ")
    thread = await session.get(MailThread, earlier[0].thread_id) if earlier else None
    if thread is None:
        thread = await mail.new_thread(session, mailbox, address, subject)
    mail.queue(session, mailbox, thread, message, to=address, subject=mail.reply_subject(subject) if earlier
               else subject, from_name=agent_name or site_name, references=[row.header_id for row in earlier][-20:])


async def _mark_left(session: AsyncSession, chat_id: int, part: Conversation) -> None:
    """The visitor's message was left for later (the site closed, or nobody to answer): the chat
    says so once, so whoever takes it knows to answer by email. It waits in its queue like any
    conversation, so it is never lost."""
    said = await session.scalar(select(Message.id).where(
        Message.chat_id == chat_id, Message.author == Author.SYSTEM, Message.body == LEFT).limit(1))
    if said is not None:
        return
    line = Message(chat_id=chat_id, conversation_id=part.id, author=Author.SYSTEM, body=LEFT, created_at=utcnow())
    session.add(line)
    await session.flush()
    _told(session, part, line)
