"""A chat's transcript for its visitor: every message in order, as plain text in their language.

Plain text, not HTML: it is saved as a file, opened anywhere, and nothing in it can run. The
times are in the site's time zone; the system lines say what happened in the visitor's words
(the agent reads other words for them, in console.i18n.LABELS).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from console import i18n
from console.errors import NotFound
from console.i18n import N_
from console.models import Agent, Attachment, Author, Chat, ChatSite, Message
from console.ports import Context

FOR_VISITOR = {
    "chat ended": N_("The chat has ended."),
    "chat idle": N_("The chat has ended because we heard nothing from you for a while."),
    "chat ended by visitor": N_("You ended the chat."),
    "message left": N_("Thank you. We answer by email as soon as we can."),
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
