"""Mail: received mails become conversations, a thread stays one conversation, machines are not work.

A mailbox is read by an integration (IMAP, or SMTP for setups that forward); each mail it hands
over is stored here with the mailbox's cursor in one transaction, so a mail is flagged on the
server only once it is stored, and a restart picks up where the stored cursor says.

Threading, in this order: the reply token the console puts in its own Message-IDs (and reply
address), because some providers rewrite Message-IDs; then every id of In-Reply-To and the
References chain, but only among the threads of the same sender address, so that a newsletter
answered by many people does not merge them into one thread. A mail that finds no thread starts
one. The same Message-ID twice in one mailbox is stored once.

Mails sent by machines (auto-replies, out-of-office, bulk and list mail, bounces) are stored on
their thread and never routed as new work; a bounce is put on the thread of the mail it bounces
and marks the address as failing on the customer. A person's reply to a conversation that is over
reopens it (a new part of the same thread, routed again) or starts a linked one, as the mailbox is
set; either way the conversation says so.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, undefer

from console import attachments, changes, conversations, customers, i18n
from console.errors import Conflict, Forbidden, InvalidInput, NotFound
from console.mailtypes import IncomingMail, MailAddress
from console.models import (
    OPEN_STATES,
    Agent,
    Attachment,
    Author,
    Channel,
    ContactKind,
    ContactPoint,
    Conversation,
    ConversationEvent,
    Customer,
    Direction,
    Mail,
    Mailbox,
    MailThread,
    Message,
    State,
    utcnow,
)
from console.ports import Context

log = logging.getLogger("console.mail")

REOPEN, LINKED = "reopen", "new"
MAX_TEXT = 100_000  # characters of a mail's text kept on its line (the rest is in the folded part)
TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
TOKEN_LENGTH = 20
# ct-<token> in a Message-ID's local part (ct-<token>.<random>@host) or a reply address's
# subaddress (support+ct-<token>@host).
_TOKEN = re.compile(rf"(?:^|[.+<])ct-([a-z2-7]{{{TOKEN_LENGTH}}})(?=[.@>]|$)")

# The thread's system lines, as codes the agent's page shows in their language (console.i18n.LABELS).
REOPENED, LINKED_TO = "mail reopened", "mail follows on"


@dataclass(frozen=True)
class MailboxSettings:
    """One mailbox as the console is set up to read it: its name, the address replies go out
    from, the queue its mails go to, and what a reply to a conversation that is over does."""

    name: str
    address: str = ""
    queue: str | None = None
    on_reply_to_closed: Literal["reopen", "new"] = "reopen"
    subaddress: bool = False  # replies ask to be answered at support+ct-<token>@...
    acknowledge: bool = False  # a person's new mail gets an automatic "we received it"
    language: str = "en"  # of the console's automatic mails from this mailbox


@dataclass(frozen=True)
class Received:
    """What became of one mail: `outcome` is new (started a thread), joined (an open one),
    reopened, linked, automatic (stored, not routed), bounce, or duplicate (stored before)."""

    mail_id: int
    thread_id: int
    conversation_id: int | None
    outcome: str


def new_token() -> str:
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH))


def outgoing_message_id(token: str, domain: str) -> str:
    """A Message-ID for a mail the console sends on a thread (without <>): it carries the token."""
    return f"ct-{token}.{secrets.token_hex(8)}@{domain}"


def reply_address(address: str, token: str) -> str:
    """The thread's own reply address (support+ct-<token>@host), for mailboxes that take
    subaddresses: a reply finds its thread even when the provider rewrote every Message-ID."""
    local, _, domain = address.partition("@")
    return f"{local}+ct-{token}@{domain}"


def tokens_in(mail: IncomingMail) -> list[str]:
    """The reply tokens a mail carries, most likely first: In-Reply-To, then the References
    chain from its newest end, then the addresses it was sent to."""
    places = [*mail.in_reply_to, *reversed(mail.references), *(a.email for a in (*mail.to, *mail.cc))]
    return list(dict.fromkeys(m.group(1) for place in places for m in _TOKEN.finditer(place.lower())))


# Mailboxes and their cursors -------------------------------------------------------------------

async def mailbox_row(session: AsyncSession, name: str, *, lock: bool = False) -> Mailbox:
    """The mailbox's row, made the first time it is read (one statement either way when it exists);
    `lock`: row-locked, so the cursor moves in one order."""
    query = select(Mailbox).where(Mailbox.name == name)
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is not None:
        return found
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(Mailbox).values(name=name, address="", subaddress=False, last_uid=0,
                                                 created_at=utcnow())
                          .on_conflict_do_nothing(index_elements=["name"]))
    made = await session.scalar(query.with_for_update() if lock else query)
    assert made is not None
    return made


async def cursor(ctx: Context, name: str) -> tuple[int | None, int]:
    """(UIDVALIDITY, highest UID stored) of the mailbox; (None, 0) before its first mail."""
    async with ctx.db.reading() as session:
        row = (await session.execute(select(Mailbox.uidvalidity, Mailbox.last_uid)
                                     .where(Mailbox.name == name))).first()
    return (None, 0) if row is None else (row.uidvalidity, int(row.last_uid))


async def resync(ctx: Context, name: str, uidvalidity: int) -> None:
    """The server renumbered the mailbox: read it again from the start (what was stored before is
    recognised by its Message-ID and not stored twice)."""
    async with ctx.transaction() as session:
        mailbox = await mailbox_row(session, name)
        log.warning("mailbox %s: UIDVALIDITY changed from %s to %s; reading it again from the start",
                    name, mailbox.uidvalidity, uidvalidity)
        mailbox.uidvalidity, mailbox.last_uid = uidvalidity, 0


async def advance(ctx: Context, name: str, uidvalidity: int, uid: int) -> None:
    """Move the cursor past mails that are not taken (the read ones a first read leaves)."""
    async with ctx.transaction() as session:
        _advance(await mailbox_row(session, name), (uidvalidity, uid))


def _advance(mailbox: Mailbox, uid: tuple[int, int] | None) -> None:
    if uid is not None:
        uidvalidity, number = uid
        if mailbox.uidvalidity != uidvalidity:
            mailbox.uidvalidity, mailbox.last_uid = uidvalidity, 0
        mailbox.last_uid = max(int(mailbox.last_uid or 0), number)


async def hold(ctx: Context, name: str, reader: str, seconds: float) -> bool:
    """Take or keep the mailbox for `reader` (a node) for `seconds`: one node reads a mailbox at a
    time, so two do not fetch, store and flag the same mails; when the reader stops renewing (it
    stopped or died), another takes over once its time is up. Whether `reader` holds it now."""
    now = utcnow()
    async with ctx.transaction() as session:
        await mailbox_row(session, name)
        held = await session.execute(
            update(Mailbox).where(Mailbox.name == name, or_(Mailbox.reader.is_(None), Mailbox.reader == reader,
                                                            Mailbox.reader_until < now))
            .values(reader=reader, reader_until=now + timedelta(seconds=seconds))
            .execution_options(synchronize_session=False))
        return bool(getattr(held, "rowcount", 0))


async def release(ctx: Context, name: str, reader: str) -> None:
    """The node stops reading the mailbox: another may take it at once."""
    async with ctx.transaction() as session:
        await session.execute(update(Mailbox).where(Mailbox.name == name, Mailbox.reader == reader)
                              .values(reader=None, reader_until=None).execution_options(synchronize_session=False))


# Receiving -----------------------------------------------------------------------------------------

def _address(found: MailAddress | None) -> str | None:
    return customers.normalize_email(found.email) if found is not None else None


async def _customer_address(session: AsyncSession, mail: IncomingMail, region: str) -> str:
    """The customer's side of the mail: the From address, unless only its Reply-To is a known
    customer's (a web form or a shared sender that answers to the person)."""
    sender = _address(mail.sender) or ""
    if sender and await customers.match(session, ContactKind.EMAIL, sender, region):
        return sender
    for candidate in mail.reply_to:
        address = _address(candidate)
        if address and await customers.match(session, ContactKind.EMAIL, address, region):
            return address
    return sender or next((a for a in map(_address, mail.reply_to) if a), "")


async def _thread_by_token(session: AsyncSession, mail: IncomingMail) -> MailThread | None:
    for token in tokens_in(mail):
        thread = await session.scalar(select(MailThread).where(MailThread.token == token))
        if thread is not None:
            return thread
    return None


async def _addresses_of_sender(session: AsyncSession, address: str, region: str) -> set[str]:
    """The sender's address and, when it is one known customer's, that customer's other addresses:
    a customer who answers from their other address stays in their thread."""
    if not address:
        return set()
    found = {address}
    ids = await customers.match(session, ContactKind.EMAIL, address, region)
    if len(ids) == 1:
        found |= set(await session.scalars(select(ContactPoint.normalized).where(
            ContactPoint.customer_id == ids[0], ContactPoint.kind == ContactKind.EMAIL)))
    return found


async def _thread_by_ids(session: AsyncSession, mail: IncomingMail, senders: set[str]) -> MailThread | None:
    """The newest thread of this sender (or their customer) holding a mail this one answers."""
    ids = list(dict.fromkeys((*mail.in_reply_to, *mail.references)))[-100:]
    if not ids or not senders:
        return None
    return await session.scalar(
        select(MailThread).join(Mail, Mail.thread_id == MailThread.id)
        .where(Mail.header_id.in_(ids), MailThread.address.in_(senders))
        .order_by(MailThread.id.desc()).limit(1))


async def _newest_of(session: AsyncSession, thread: MailThread) -> MailThread:
    """The thread that follows on from this one, and so on, to the newest (linked mode)."""
    for _ in range(100):
        newer = await session.scalar(select(MailThread).where(MailThread.follows_id == thread.id)
                                     .order_by(MailThread.id.desc()).limit(1))
        if newer is None:
            return thread
        thread = newer
    return thread


async def _new_thread_for(session: AsyncSession, mailbox: Mailbox, address: str, mail: IncomingMail, *,
                          follows: MailThread | None = None) -> MailThread:
    thread = MailThread(mailbox_id=mailbox.id, token=new_token(), address=address[:320], subject=mail.subject[:500],
                        follows_id=follows.id if follows is not None else None, created_at=utcnow())
    session.add(thread)
    await session.flush()
    return thread


async def _latest_part(session: AsyncSession, thread_id: int) -> Conversation | None:
    return await session.scalar(select(Conversation).where(Conversation.mail_thread_id == thread_id)
                                .order_by(Conversation.id.desc()).limit(1).with_for_update())


async def _bounced(session: AsyncSession, mail: IncomingMail) -> Mail | None:
    """A bounce of one of the console's own mails: that mail is marked not sent (with what the
    receiving server said, so the agent sees it and may send it again), and, when it failed for
    good, the addresses it was sent to that the bounce names are marked failing on their customers.
    A report that names no mail of ours (forged, or about someone else's mail) marks nothing."""
    bounce = mail.bounce
    if bounce is None or not bounce.original_message_id:
        return None
    ours = await session.scalar(select(Mail).where(Mail.header_id == bounce.original_message_id,
                                                   Mail.direction == Direction.OUT).limit(1).with_for_update())
    if ours is None:
        return None
    why = (bounce.diagnostic or bounce.status or "bounced")[:500]
    if bounce.permanent:
        ours.send_state, ours.last_error, ours.next_attempt_at = FAILED, f"bounced: {why}"[:500], None
        sent_to = {customers.normalize_email(a) for a in ours.to_addresses.split("\n")}
        failed = [a for a in (customers.normalize_email(r) for r in bounce.recipients) if a and a in sent_to]
        if failed:
            owners = list(await session.scalars(
                update(ContactPoint).where(ContactPoint.kind == ContactKind.EMAIL, ContactPoint.normalized.in_(failed))
                .values(failing_since=utcnow(), failure=why).returning(ContactPoint.customer_id)
                .execution_options(synchronize_session=False)))
            for customer_id in sorted(set(owners)):
                await customers.changed(session, customer_id)
    return ours


async def _works_again(session: AsyncSession, address: str) -> None:
    """A person wrote from an address marked failing: it works again."""
    owners = list(await session.scalars(
        update(ContactPoint).where(ContactPoint.kind == ContactKind.EMAIL, ContactPoint.normalized == address,
                                   ContactPoint.failing_since.is_not(None))
        .values(failing_since=None, failure=None).returning(ContactPoint.customer_id)
        .execution_options(synchronize_session=False)))
    for customer_id in sorted(set(owners)):
        await customers.changed(session, customer_id)


def _system_line(session: AsyncSession, conversation_id: int, text: str) -> None:
    session.add(Message(conversation_id=conversation_id, author=Author.SYSTEM, body=text, created_at=utcnow()))


async def _closed_conversation(session: AsyncSession, ctx: Context, thread: MailThread, box: MailboxSettings,
                               mail: IncomingMail, address: str, why: str) -> Conversation:
    """A conversation for a thread that a machine started (a newsletter, an auto-reply to nobody):
    kept for the customer's history, closed from the start, never offered to anyone."""
    ids = await customers.match(session, ContactKind.EMAIL, address, ctx.region)
    now = utcnow()
    conversation = Conversation(channel=Channel.MAIL, direction=Direction.IN, state=State.CLOSED,
                                external_id=f"mail-{thread.id}", from_address=address[:320],
                                to_address=box.address[:320], subject=mail.subject[:500] or None,
                                customer_id=ids[0] if len(ids) == 1 else None, routed_by_console=True,
                                created_at=now, closed_at=now, mail_thread_id=thread.id)
    session.add(conversation)
    await session.flush()
    session.add(ConversationEvent(conversation_id=conversation.id, from_state=None, to_state=State.CLOSED,
                                  detail=f"automatic: {why}"[:200], at=now))
    return conversation


async def _route(session: AsyncSession, ctx: Context, thread: MailThread, box: MailboxSettings,
                 mail: IncomingMail, address: str, part_number: int) -> int:
    """A new conversation for the thread, matched and routed like a call (the queue's agents,
    the owner first)."""
    external_id = f"mail-{thread.id}" if part_number == 0 else f"mail-{thread.id}-{part_number}"
    arrival = await conversations.arrive_in(
        session, ctx, Channel.MAIL, external_id, address, box.address, Direction.IN, (), box.queue,
        mail.subject[:500] or None, mail_thread_id=thread.id)
    return arrival.conversation_id


async def receive(ctx: Context, box: MailboxSettings, mail: IncomingMail, *,
                  uid: tuple[int, int] | None = None) -> Received:
    """Store one received mail on its thread and make it work where it is a person's: a new
    conversation, a line in the open one, or the reopened one. `uid` (UIDVALIDITY, UID) moves the
    mailbox's cursor in the same transaction."""
    if not mail.message_id or len(mail.message_id) > 250:
        raise InvalidInput("A mail needs a Message-ID of 1 to 250 characters.", field="message_id")
    async with ctx.transaction() as session:
        mailbox = await mailbox_row(session, box.name, lock=uid is not None)
        _advance(mailbox, uid)
        earlier = (await session.execute(select(Mail.id, Mail.thread_id).where(
            Mail.mailbox_id == mailbox.id, Mail.header_id == mail.message_id))).first()
        if earlier is not None:
            log.info("mailbox %s: %s was stored before; not again", box.name, mail.message_id)
            return Received(earlier.id, earlier.thread_id, None, "duplicate")
        address = await _customer_address(session, mail, ctx.region)
        automatic = "bounce" if mail.bounce is not None else mail.automatic
        thread = None
        bounced = await _bounced(session, mail)
        if bounced is not None:
            thread = await session.get(MailThread, bounced.thread_id)
        if thread is None and automatic != "bounce":
            senders = await _addresses_of_sender(session, address, ctx.region)
            thread = await _thread_by_token(session, mail)
            if thread is not None and senders and thread.address and thread.address not in senders:
                # Someone else answers with the thread's token (a forwarded mail, a colleague in
                # Cc): their own thread, that says what it follows on from, not the customer's.
                thread = await _new_thread_for(session, mailbox, address, mail, follows=thread)
            thread = thread or await _thread_by_ids(session, mail, senders)
        created = thread is None
        if thread is None:
            thread = await _new_thread_for(session, mailbox, address, mail)
        elif box.on_reply_to_closed == LINKED and automatic is None:
            thread = await _newest_of(session, thread)
        outcome = "new" if created else "joined"
        part = await _latest_part(session, thread.id)
        note: str | None = None
        if automatic is not None:
            if part is None:
                part = await _closed_conversation(session, ctx, thread, box, mail, address, automatic)
            conversation_id = part.id
            outcome = "bounce" if mail.bounce is not None else "automatic"
            log.info("mailbox %s: %s is automatic (%s); stored on thread %s, not routed", box.name,
                     mail.message_id, automatic, thread.id)
        elif part is None:  # a new thread, or one the console started (a chat's answer by mail)
            conversation_id = await _route(session, ctx, thread, box, mail, address, 0)
            outcome = "new"
        elif part.state in OPEN_STATES:
            conversation_id = part.id
        elif box.on_reply_to_closed == LINKED:
            thread = await _new_thread_for(session, mailbox, address, mail, follows=thread)
            conversation_id = await _route(session, ctx, thread, box, mail, address, 0)
            outcome, note = "linked", LINKED_TO
        else:
            parts = await session.scalar(select(func.count()).where(Conversation.mail_thread_id == thread.id))
            conversation_id = await _route(session, ctx, thread, box, mail, address, int(parts or 1))
            outcome, note = "reopened", REOPENED
        if note is not None:
            _system_line(session, conversation_id, note)
        stored = await _store(session, mailbox.id, thread.id, conversation_id, mail, Direction.IN)
        if part is not None and part.id == conversation_id and part.state in OPEN_STATES:
            # Whoever shows the conversation sees the mail (a machine's too: it is kept there).
            agents = frozenset(a for a in (part.agent_id,) if a is not None)
            thread_id, message_id = thread.id, stored.message_id or 0
            changes.emit(session, lambda: changes.MailMessage(thread_id, message_id, conversation_id, agents))
        if automatic is None and address:
            await _works_again(session, address)
        if box.acknowledge and created and automatic is None:
            await _acknowledge(session, mailbox, thread, conversation_id, box, address, mail)
        if mail.problems:
            log.warning("mailbox %s: %s stored, but %d part%s could not be read (shown with the mail)", box.name,
                        mail.message_id, len(mail.problems), "" if len(mail.problems) == 1 else "s")
        return Received(stored.id, thread.id, conversation_id, outcome)


ACKNOWLEDGED = "mail acknowledged"  # the thread's line when the console confirmed receipt


async def _acknowledge(session: AsyncSession, mailbox: Mailbox, thread: MailThread, conversation_id: int,
                       box: MailboxSettings, address: str, received: IncomingMail) -> None:
    """Tell a person their mail arrived: an automatic mail (Auto-Submitted: auto-replied, so
    machines do not answer it), at most one a day to an address, never to the mailbox itself."""
    own = {customers.normalize_email(box.address), customers.normalize_email(mailbox.address)}
    if not address or address in own or not await automatic_allowed(session, address):
        return
    _ = i18n.translations(box.language).gettext
    subject = reply_subject(received.subject)
    text = _("Thank you for your mail. We received it and answer as soon as we can.\n\nWhen you write "
             "about this again, please answer this mail, so that everything stays together.")
    line = Message(conversation_id=conversation_id, author=Author.SYSTEM, body=ACKNOWLEDGED, created_at=utcnow())
    session.add(line)
    await session.flush()
    queue(session, mailbox, thread, line, to=address, subject=subject,
          references=[*received.references, received.message_id][-20:], automatic="auto-replied", text=text)


async def _store(session: AsyncSession, mailbox_id: int, thread_id: int, conversation_id: int,
                 mail: IncomingMail, direction: Direction) -> Mail:
    """The mail, its line in the conversation, and a line for each of its files."""
    author = Author.CUSTOMER if direction is Direction.IN else Author.AGENT
    now = utcnow()
    line = Message(conversation_id=conversation_id, author=author, body=mail.text[:MAX_TEXT], created_at=now)
    session.add(line)
    await session.flush()
    sender = mail.sender or MailAddress("", "")
    stored = Mail(thread_id=thread_id, mailbox_id=mailbox_id, message_id=line.id, direction=direction,
                  header_id=mail.message_id, refs="\n".join(dict.fromkeys((*mail.references, *mail.in_reply_to))),
                  from_address=sender.email[:320], from_name=sender.name[:200],
                  reply_to=(mail.reply_to[0].email if mail.reply_to else "")[:320],
                  to_addresses="\n".join(a.email for a in (*mail.to, *mail.cc)), subject=mail.subject[:500],
                  quoted=mail.quoted, html=mail.html, remote_html=mail.remote_html, automatic=mail.automatic,
                  problems="\n".join(mail.problems) or None, size=mail.size, sent_at=mail.date, created_at=now)
    session.add(stored)
    for file in mail.files:
        upload = attachments.from_mail(file.name, file.content_type, file.data)
        holder = Message(conversation_id=conversation_id, author=author, body=upload.name, created_at=now)
        session.add(holder)
        await session.flush()
        attachments.store(session, holder.id, None, upload, content_id=file.content_id)
    await session.flush()
    return stored


async def transcript(session: AsyncSession, thread_id: int) -> list[Message]:
    """A thread's lines over all its parts, with their mails, agents and files, oldest first: the
    mails of the thread, the files that came with them, and what the console said on it."""
    parts = select(Conversation.id).where(Conversation.mail_thread_id == thread_id)
    return list((await session.scalars(
        select(Message).where(Message.conversation_id.in_(parts))
        .options(joinedload(Message.agent), joinedload(Message.attachment), joinedload(Message.mail))
        .order_by(Message.id))).unique())


# Reading ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HtmlView:
    """A mail's HTML for an agent: sanitised, with its inline images pointing at their files."""

    mail_id: int
    conversation_id: int
    subject: str
    html: str
    remote_images: bool  # whether the mail has remote images (shown only when asked for)


MAX_INLINE = 2 * 1024 * 1024  # an inline image put in the page; a bigger one is listed as a file only
_CID = re.compile(r"""(src=["'])cid:([^"'>\s]+)(["'])""", re.IGNORECASE)


async def _may_read(session: AsyncSession, thread_id: int, agent_id: int) -> bool:
    """Whether the agent has seen this thread (as for a chat's files: attachments.seen_by)."""
    return bool(await session.scalar(select(attachments.seen_by(Conversation.mail_thread_id == thread_id,
                                                                agent_id))))


async def html_for_agent(session: AsyncSession, mail_id: int, agent_id: int, *, remote: bool = False) -> HtmlView:
    """The mail's sanitised HTML, when the agent may read its thread (anyone else hears it does not
    exist); `remote`: with the remote images the sender put in it (they tell the sender the mail was
    opened, so they load only when the agent asks)."""
    found = await session.scalar(select(Mail).where(Mail.id == mail_id)
                                 .options(undefer(Mail.remote_html)))
    if found is None or found.html is None or not await _may_read(session, found.thread_id, agent_id):
        raise NotFound("This mail does not exist (any more).")
    conversation_id = await session.scalar(select(Message.conversation_id).where(Message.id == found.message_id))
    html = found.remote_html if remote and found.remote_html else found.html
    # Inline images go in the page itself (data: URIs): the page runs sandboxed, with an origin of
    # its own, so it could not fetch the console's files with the agent's session anyway.
    wanted = set(m.group(2) for m in _CID.finditer(html))
    files: dict[str, str] = {}
    if wanted:
        parts = select(Conversation.id).where(Conversation.mail_thread_id == found.thread_id)
        rows = await session.execute(
            select(Attachment.content_id, Attachment.content_type, Attachment.data)
            .join(Message, Message.id == Attachment.message_id)
            .where(Message.conversation_id.in_(parts), Attachment.content_id.in_(wanted),
                   Attachment.content_type.like("image/%"), Attachment.size <= MAX_INLINE))
        for content_id, content_type, data in rows.all():
            files[content_id or ""] = f"data:{content_type};base64,{base64.b64encode(data).decode()}"

    def inline(match: re.Match[str]) -> str:
        return f"{match.group(1)}{files.get(match.group(2), '')}{match.group(3)}"

    return HtmlView(found.id, int(conversation_id or 0), found.subject, _CID.sub(inline, html),
                    bool(found.remote_html and found.remote_html != found.html))


# Sending ------------------------------------------------------------------------------------------

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
STATE_RANK = {QUEUED: 0, SENDING: 1, FAILED: 2, SENT: 3}


def send_version(row: Mail) -> int:
    """How far sending this mail has come: it only grows (each failure and each Send again counts
    an attempt), so a frame showing an older state never replaces a newer one."""
    return row.attempts * 4 + STATE_RANK.get(row.send_state or "", 0)


def transcript_version(lines: list[Message]) -> int:
    """The version of a transcript that shows mails being sent: its newest line, then how far the
    sending of its mails has come (pushed again on each change of it)."""
    newest = lines[-1].id if lines else 0
    sending = sum(send_version(m.mail) for m in lines if m.mail is not None and m.mail.direction is Direction.OUT)
    return newest * 1_000_000 + min(sending, 999_999)
LEASE = timedelta(minutes=5)  # a node sending a mail has it this long before another may try
MAX_REPLY = 50_000  # characters of a reply
NO_ADDRESS = "support@console.invalid"


def retry_delay(attempts: int) -> timedelta:
    """30 s after the first failure, doubling to an hour at most."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


@dataclass(frozen=True)
class Outgoing:
    """A mail to send, as the sender needs it (the integration builds the MIME)."""

    mail_id: int
    from_name: str
    from_address: str
    reply_to: str | None
    to: str
    subject: str
    text: str
    message_id: str
    in_reply_to: str | None
    references: tuple[str, ...]
    automatic: str | None  # the console's own automatic mail: auto-replied or auto-generated (RFC 3834)
    attempts: int
    lease: datetime  # this node's claim on the mail: settled only while it still holds


async def register(ctx: Context, boxes: list[MailboxSettings]) -> None:
    """Keep each mailbox's address and subaddressing as its setting says (at a node's start)."""
    async with ctx.transaction() as session:
        for box in boxes:
            row = await mailbox_row(session, box.name)
            row.address, row.subaddress = box.address[:320], box.subaddress


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "console.invalid"


def reply_subject(subject: str) -> str:
    """Re: once, whatever the client put before it (Re, RE, Antw, AW, SV)."""
    stripped = re.sub(r"^\s*((re|antw|aw|sv)\s*(\[\d+\])?\s*:\s*)+", "", subject, flags=re.IGNORECASE)
    return f"Re: {stripped}".strip()[:500]


def check_reply(text: str) -> str:
    body = text.strip()
    if not body:
        raise InvalidInput("Write something first: the reply is empty.", field="text")
    if len(body) > MAX_REPLY:
        raise InvalidInput("A reply has at most %(limit)s characters.", field="text", limit=MAX_REPLY)
    return body


def _unsent(row: Mail) -> bool:
    """Whether the customer's page lists the mail as not sent (console.profile.page)."""
    return row.send_state in (QUEUED, FAILED) and row.last_error is not None


async def _tell_settled(session: AsyncSession, row: Mail, *, listed_before: bool) -> None:
    """How sending went, to whoever shows it: the conversation's pop, and the customer's page when
    its list of mails not sent changed (a mail that simply went out leaves the page as it was)."""
    conversation = await session.scalar(select(Conversation).join(Message, Message.conversation_id ==
                                                                  Conversation.id).where(Message.id == row.message_id))
    if conversation is None or row.message_id is None:
        return
    _tell(session, row.thread_id, row.message_id, conversation)
    if listed_before or _unsent(row):
        await customers.changed(session, conversation.customer_id)


def _tell(session: AsyncSession, thread_id: int, message_id: int, conversation: Conversation) -> None:
    """The agents who show the conversation see the mail's state: in its thread, or, for a chat
    message that was mailed too, in the chat (the visitor's widget is told nothing of it)."""
    agents = frozenset(a for a in (conversation.agent_id,) if a is not None)
    conversation_id, chat_id = conversation.id, conversation.chat_id
    if chat_id is not None:
        changes.emit(session, lambda: changes.ChatMessage(chat_id, message_id, conversation_id, agents, visitor=""))
        return
    changes.emit(session, lambda: changes.MailMessage(thread_id, message_id, conversation_id, agents))


async def reply(ctx: Context, agent_id: int, conversation_id: int, client_id: str, text: str) -> int:
    """The agent who has the mail conversation answers it: the reply is stored on the thread at
    once (the agent sees it there) and queued for sending; the sender tries until it went out.
    `client_id` comes from the page, so a resend after a network failure is stored once."""
    body = check_reply(text)
    if not client_id or len(client_id) > 64 or not client_id.isascii() or not client_id.isprintable():
        raise InvalidInput("Every message needs an id of its own (1 to 64 plain characters).", field="client_id")
    async with ctx.transaction() as session:
        conversation = await conversations.handled_by(session, conversation_id, agent_id)
        thread_id = conversation.mail_thread_id
        if conversation.channel is not Channel.MAIL or thread_id is None:
            raise InvalidInput("This conversation is not a mail.", field="text")
        parts = select(Conversation.id).where(Conversation.mail_thread_id == thread_id)
        earlier = await session.scalar(select(Message.id).where(
            Message.conversation_id.in_(parts), Message.author == Author.AGENT, Message.client_id == client_id))
        if earlier is not None:
            return earlier
        thread = await session.get(MailThread, thread_id)
        assert thread is not None
        mailbox = await session.get(Mailbox, thread.mailbox_id)
        assert mailbox is not None
        agent = await session.get(Agent, agent_id)
        # What is answered: the customer's latest own mail on the thread, never a machine's (a
        # bounce, an out-of-office) nor someone else's.
        last = await session.scalar(select(Mail).where(
            Mail.thread_id == thread_id, Mail.direction == Direction.IN, Mail.automatic.is_(None),
            func.lower(Mail.from_address) == thread.address).order_by(Mail.id.desc()).limit(1))
        to = (last.reply_to or thread.address) if last is not None else thread.address
        references = [*(last.refs.split("\n") if last is not None and last.refs else []),
                      *([last.header_id] if last is not None else [])][-20:]
        line = Message(conversation_id=conversation.id, author=Author.AGENT, agent_id=agent_id, body=body,
                       client_id=client_id, created_at=utcnow())
        session.add(line)
        await session.flush()
        queue(session, mailbox, thread, line, to=to, subject=reply_subject(last.subject if last is not None
                                                                           else thread.subject),
              from_name=agent.name if agent else "", references=references)
        _tell(session, thread_id, line.id, conversation)
        return line.id


def queue(session: AsyncSession, mailbox: Mailbox, thread: MailThread, line: Message, *, to: str, subject: str,
          from_name: str = "", references: list[str] | None = None, automatic: str | None = None,
          text: str | None = None) -> Mail:
    """A mail to send on the thread, with the line that shows it (its text is what is sent, unless
    `text` says otherwise); the sender takes it from here."""
    now = utcnow()
    stored = Mail(
        thread_id=thread.id, mailbox_id=mailbox.id, message_id=line.id, direction=Direction.OUT,
        header_id=outgoing_message_id(thread.token, _domain(mailbox.address)), refs="\n".join(references or []),
        from_address=(mailbox.address or NO_ADDRESS)[:320], from_name=from_name[:200],
        reply_to=reply_address(mailbox.address, thread.token) if mailbox.subaddress and mailbox.address else "",
        to_addresses=to[:2000], subject=subject[:500], quoted="", text=text,
        size=len((text or line.body).encode()), created_at=now, send_state=QUEUED, attempts=0, next_attempt_at=now,
        automatic_reply=automatic is not None, automatic=automatic)
    session.add(stored)
    return stored


async def sending_mailbox(session: AsyncSession) -> Mailbox | None:
    """The mailbox that mails outside a mail thread go out from (a chat's transcript, the answer to
    a message left in the chat): the first one set up with an address."""
    return await session.scalar(select(Mailbox).where(Mailbox.address != "").order_by(Mailbox.id).limit(1))


async def new_thread(session: AsyncSession, mailbox: Mailbox, address: str, subject: str) -> MailThread:
    thread = MailThread(mailbox_id=mailbox.id, token=new_token(), address=address[:320], subject=subject[:500],
                        created_at=utcnow())
    session.add(thread)
    await session.flush()
    return thread


async def claim_due(ctx: Context, limit: int = 1) -> list[Outgoing]:
    """The mails due to be sent, taken by this node for LEASE (another node skips them; a node that
    dies while sending leaves them to be tried again when the lease is over)."""
    now = utcnow()
    async with ctx.transaction() as session:
        rows = list(await session.scalars(
            select(Mail).options(undefer(Mail.text)).where(Mail.send_state.in_((QUEUED, SENDING)),
                                                          Mail.next_attempt_at <= now)
            .order_by(Mail.next_attempt_at, Mail.id).limit(limit).with_for_update(skip_locked=True)))
        if not rows:
            return []
        bodies = dict((await session.execute(select(Message.id, Message.body).where(
            Message.id.in_([m.message_id for m in rows if m.message_id is not None])))).all())
        found = []
        for row in rows:
            row.send_state, row.next_attempt_at = SENDING, now + LEASE
            refs = tuple(r for r in row.refs.split("\n") if r)
            found.append(Outgoing(row.id, row.from_name, row.from_address, row.reply_to or None, row.to_addresses,
                                  row.subject, row.text or bodies.get(row.message_id or 0, ""), row.header_id,
                                  refs[-1] if refs else None, refs, row.automatic if row.automatic_reply else None,
                                  row.attempts, now + LEASE))
        return found


async def _settle(ctx: Context, mail_id: int, lease: datetime | None, **values: object) -> None:
    """Record how sending went, when this node still holds the mail (`lease`): a node that took
    longer than its lease may not undo what the node that took the mail over did."""
    async with ctx.transaction() as session:
        row = await session.get(Mail, mail_id, with_for_update=True)
        if row is None or row.send_state == SENT:
            return
        if lease is not None and (row.send_state != SENDING or row.next_attempt_at != lease):
            log.warning("mail %s: its lease ran out while it was being sent; another node has it now", mail_id)
            return
        listed = _unsent(row)
        for name, value in values.items():
            setattr(row, name, value)
        await _tell_settled(session, row, listed_before=listed)


async def sent(ctx: Context, mail_id: int, lease: datetime | None = None) -> None:
    """The server took the mail: it went out."""
    await _settle(ctx, mail_id, lease, send_state=SENT, sent_at=utcnow(), next_attempt_at=None, last_error=None)


async def failed(ctx: Context, mail_id: int, error: str, *, permanent: bool, lease: datetime | None = None) -> None:
    """Sending failed: tried again later (with a longer wait each time), or, when the server
    refused it for good, kept as failed and shown to the agent, who may send it again."""
    async with ctx.db.reading() as session:
        attempts = int(await session.scalar(select(Mail.attempts).where(Mail.id == mail_id)) or 0) + 1
    log.warning("mail %s was not sent (attempt %s): %s%s", mail_id, attempts, error,
                "; not trying again" if permanent else "; trying again later")
    await _settle(ctx, mail_id, lease, send_state=FAILED if permanent else QUEUED, attempts=attempts,
                  last_error=error[:500], next_attempt_at=None if permanent else utcnow() + retry_delay(attempts))


async def send_again(ctx: Context, agent_id: int, mail_id: int) -> None:
    """The agent asks to send a failed mail again (after correcting the address, say)."""
    async with ctx.transaction() as session:
        row = await session.get(Mail, mail_id, with_for_update=True)
        if row is None or row.direction is not Direction.OUT or not await _may_read(session, row.thread_id, agent_id):
            raise NotFound("This mail does not exist (any more).")
        if row.send_state != FAILED:
            raise Conflict("This mail is not waiting to be sent again.")
        listed = _unsent(row)
        row.send_state, row.next_attempt_at, row.last_error = QUEUED, utcnow(), None
        row.attempts += 1  # its version grows (console.mail.send_version)
        await _tell_settled(session, row, listed_before=listed)


AUTOMATIC_PER_DAY = 1  # automatic mails (acknowledgements, transcripts) to one address in a day


async def automatic_allowed(session: AsyncSession, address: str) -> bool:
    """Whether the console may send this address an automatic mail now: at most one a day, so two
    machines answering each other stop after one round (RFC 3834's advice), and nobody can make
    the console mail an address over and over."""
    since = utcnow() - timedelta(days=1)
    sent = await session.scalar(select(func.count()).select_from(Mail).where(
        Mail.automatic_reply.is_(True), Mail.to_addresses == address, Mail.created_at >= since))
    return int(sent or 0) < AUTOMATIC_PER_DAY


MAX_SUBJECT = 300


async def write_new(ctx: Context, agent_id: int, customer_id: int, to: str, subject: str, text: str,
                    client_id: str) -> int:
    """The agent writes to a customer from their page: not a reply, so only to a customer who
    agreed to be mailed, at one of their addresses that does not bounce. The mail is a
    conversation of its own (sent, so closed) whose thread a reply from the customer reopens."""
    body = check_reply(text)
    title = " ".join(subject.split())
    if not title or len(title) > MAX_SUBJECT:
        raise InvalidInput("A mail needs a subject of 1 to %(limit)s characters.", field="subject",
                           limit=MAX_SUBJECT)
    address = customers.normalize_email(to)
    async with ctx.transaction() as session:
        customer = await session.get(Customer, customer_id)
        if customer is None or customer.erased_at is not None:
            raise NotFound("This customer does not exist.")
        if not customer.consent_email:
            raise Forbidden("This customer has not agreed to be mailed by us; only replies to their mails are sent.")
        point = await session.scalar(select(ContactPoint).where(
            ContactPoint.customer_id == customer_id, ContactPoint.kind == ContactKind.EMAIL,
            ContactPoint.normalized == (address or "")))
        if point is None:
            raise InvalidInput("Choose one of the customer's email addresses.", field="to")
        if point.failing_since is not None:
            raise Conflict("Mail to %(address)s bounces; correct the address first.", field="to",
                           address=point.value)
        mailbox = await sending_mailbox(session)
        if mailbox is None:
            raise Conflict("No mailbox is set up to send from.")
        earlier = await session.scalar(select(Message.id).join(Conversation, Conversation.id == Message.conversation_id)
                                       .where(Conversation.customer_id == customer_id, Message.author == Author.AGENT,
                                              Message.client_id == client_id[:64]))
        if earlier is not None:
            return earlier
        thread = await new_thread(session, mailbox, point.normalized, title)
        now = utcnow()
        conversation = Conversation(channel=Channel.MAIL, direction=Direction.OUT, state=State.CLOSED,
                                    external_id=f"mail-{thread.id}", from_address=mailbox.address[:320],
                                    to_address=point.normalized, subject=title[:500], customer_id=customer_id,
                                    agent_id=agent_id, routed_by_console=False, created_at=now, answered_at=now,
                                    closed_at=now, mail_thread_id=thread.id)
        session.add(conversation)
        await session.flush()
        session.add(ConversationEvent(conversation_id=conversation.id, from_state=None, to_state=State.CLOSED,
                                      agent_id=agent_id, detail="mail sent", at=now))
        agent = await session.get(Agent, agent_id)
        line = Message(conversation_id=conversation.id, author=Author.AGENT, agent_id=agent_id, body=body,
                       client_id=client_id[:64] or None, created_at=now)
        session.add(line)
        await session.flush()
        queue(session, mailbox, thread, line, to=point.normalized, subject=title,
              from_name=agent.name if agent else "")
        await customers.changed(session, customer_id)
        return line.id
