"""A chat's transcript for its visitor: every message in order, as plain text in their language.

Plain text, not HTML: it is saved as a file, opened anywhere, and nothing in it can run. The
times are in the site's time zone; the system lines say what happened in the visitor's words
(the agent reads other words for them, in console.i18n.LABELS).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from console import customers, i18n, mail
from console.errors import Conflict, Forbidden, InvalidInput, NotFound
from console.i18n import N_
from console.models import (
    Agent,
    Attachment,
    Author,
    Chat,
    ChatSite,
    ChatVisitor,
    ContactKind,
    ContactPoint,
    Conversation,
    Message,
    utcnow,
)
from console.ports import Context

FOR_VISITOR = {
    "chat ended": N_("The chat has ended."),
    "chat idle": N_("The chat has ended because we heard nothing from you for a while."),
    "chat ended by visitor": N_("You ended the chat."),
    "message left": N_("Thank you. We answer by email as soon as we can."),
    "transcript mailed": N_("The transcript was mailed to you."),
}
MAX_LINES = 5000


@dataclass(frozen=True)
class Transcript:
    filename: str
    text: str


async def of_chat(ctx: Context, visitor_id: int, chat_id: int, language: str) -> Transcript:
    """The transcript of the visitor's own chat `chat_id` (any other is refused as unknown)."""
    _ = i18n.translations(language).gettext
    async with ctx.db.reading() as session:
        row = (await session.execute(select(Chat, ChatSite.name, ChatSite.timezone)
                                     .join(ChatSite, ChatSite.id == Chat.site_id)
                                     .where(Chat.id == chat_id, Chat.visitor_id == visitor_id))).first()
        if row is None:
            raise NotFound("This chat does not exist, or it is not yours.")
        chat, site_name, zone = row
        messages = (await session.execute(
            select(Message.author, Message.body, Message.created_at, Agent.name, Attachment.id)
            .outerjoin(Agent, Agent.id == Message.agent_id).outerjoin(Attachment, Attachment.message_id == Message.id)
            .where(Message.chat_id == chat_id).order_by(Message.id).limit(MAX_LINES))).all()
    lines = [_("Chat with %(site)s") % {"site": site_name},
             _("Started %(at)s (%(zone)s)") % {"at": i18n.when(chat.started_at, language, "long", zone), "zone": zone},
             ""]
    for author, body, at, agent_name, file_id in messages:
        time = i18n.when(at, language, "short", zone)
        if author is Author.SYSTEM:
            said = _(FOR_VISITOR[body]) if body in FOR_VISITOR else body
            lines.append(f"{time}  -- {said}")
            continue
        who = _("You") if author is Author.CUSTOMER else (agent_name or _("Customer service"))
        text = body.replace("\r\n", "\n").replace("\n", "\n    ")
        if file_id is not None:
            text = _("(file) %(name)s") % {"name": body}
        lines.append(f"{time}  {who}: {text}")
    day = chat.started_at.date().isoformat()
    return Transcript(f"chat-{day}-{chat_id}.txt", "\n".join(lines) + "\n")


MAILED = "transcript mailed"  # the chat's line when the visitor had its transcript mailed


async def by_mail(ctx: Context, visitor_id: int, chat_id: int, language: str, address: str) -> str:
    """Mail the visitor their chat's transcript; returns the address it goes to.

    Only to the address the visitor gave in the chat (the pre-chat form, or with a message left)
    or the one the website vouched for, once per chat, and as an automatic mail (Auto-Submitted:
    auto-generated) that counts against the one automatic mail an address may get a day: the
    widget cannot be used to make the console mail anyone else."""
    to = customers.normalize_email(address)
    if to is None:
        raise InvalidInput("%(value)s is not an email address.", field="email", value=address[:100])
    transcript = await of_chat(ctx, visitor_id, chat_id, language)  # theirs, or NotFound
    _ = i18n.translations(language).gettext
    async with ctx.transaction() as session:
        visitor = await session.get(ChatVisitor, visitor_id)
        given = {customers.normalize_email(visitor.email or "")} if visitor is not None else set()
        if visitor is not None and visitor.customer_id is not None and visitor.identity == "verified":
            given |= set(await session.scalars(select(ContactPoint.normalized).where(
                ContactPoint.customer_id == visitor.customer_id, ContactPoint.kind == ContactKind.EMAIL)))
        if to not in given:
            raise Forbidden("The transcript can only be mailed to the address you gave in this chat.", field="email")
        mailbox = await mail.sending_mailbox(session)
        if mailbox is None:
            raise Conflict("Transcripts cannot be mailed here; download it instead.")
        sent = await session.scalar(select(Message.id).where(Message.chat_id == chat_id, Message.body == MAILED)
                                    .limit(1))
        if sent is not None:
            raise Conflict("The transcript of this chat was mailed already; download it instead.")
        if not await mail.automatic_allowed(session, to):
            raise Conflict("A transcript was mailed to this address today already; download it instead.")
        part = await session.scalar(select(Conversation).where(Conversation.chat_id == chat_id)
                                    .order_by(Conversation.id.desc()).limit(1))
        if part is None:
            raise NotFound("This chat does not exist, or it is not yours.")
        site_name = await session.scalar(select(ChatSite.name).join(Chat, Chat.site_id == ChatSite.id)
                                         .where(Chat.id == chat_id))
        subject = _("Your chat with %(site)s") % {"site": site_name or ""}
        line = Message(chat_id=chat_id, conversation_id=part.id, author=Author.SYSTEM, body=MAILED,
                       created_at=utcnow())
        session.add(line)
        await session.flush()
        thread = await mail.new_thread(session, mailbox, to, subject)
        mail.queue(session, mailbox, thread, line, to=to, subject=subject, from_name=site_name or "",
                   automatic="auto-generated", text=transcript.text)
    return to
