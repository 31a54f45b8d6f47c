"""Files sent in a chat: images and PDF documents, at most 10 MB, their type read from the content
(and the files that come with mails: any kind, but only what the content shows is typed).

What a file claims to be (its name, the browser's content type) is not trusted: the first bytes
say what it is, and only PNG, JPEG, GIF, WebP and PDF are taken (no SVG: it can carry script).
The name is kept for people to read, cleaned of paths and control characters, and ends in the
extension of what the file really is. Files are kept in the database with their message, so
every node serves them and erasing the conversation's text takes them too.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from console.auth import SUPERVISING
from console.errors import InvalidInput, NotFound, TooLarge
from console.models import Agent, Attachment, Conversation, Handoff, Message, Offer

log = logging.getLogger("console.attachments")

MAX_BYTES = 10 * 1024 * 1024
MAX_NAME = 200
# What a file starts with, and what it then is.
KINDS = (
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"GIF87a", "image/gif", ".gif"),
    (b"GIF89a", "image/gif", ".gif"),
    (b"%PDF-", "application/pdf", ".pdf"),
)
EXTENSIONS = {"image/png": (".png",), "image/jpeg": (".jpg", ".jpeg"), "image/gif": (".gif",),
              "image/webp": (".webp",), "application/pdf": (".pdf",)}


def sniff(data: bytes) -> str | None:
    """The content type the bytes are, when it is one taken; None otherwise."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, content_type, _ in KINDS:
        if data.startswith(magic):
            return content_type
    return None


def _plain_name(raw: str) -> str:
    """The last part of a path, without control or invisible characters and what file systems refuse."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name)
                   if unicodedata.category(ch)[0] != "C" and ch not in '"<>|:*?')
    return " ".join(name.split()).strip(" .")


def clean_name(raw: str, content_type: str) -> str:
    """A file name to show and save under: no folders, no control or invisible characters, at
    most MAX_NAME characters, ending in the extension of what the file is."""
    name = _plain_name(raw)
    extensions = EXTENSIONS[content_type]
    if not name.lower().endswith(extensions):
        name = (name or "file") + extensions[0]
    if len(name) > MAX_NAME:
        stem, dot, extension = name.rpartition(".")
        name = stem[:MAX_NAME - len(extension) - 1] + dot + extension
    return name


@dataclass(frozen=True)
class Upload:
    """A file that passed the checks, ready to be stored with its message."""

    name: str
    content_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def check(raw_name: str, data: bytes) -> Upload:
    """The file as it will be stored, or a clear error that says what is taken."""
    if not data:
        raise InvalidInput("The file is empty.", field="file")
    if len(data) > MAX_BYTES:
        raise TooLarge("A file may be at most %(mb)s MB.", field="file", mb=MAX_BYTES // (1024 * 1024))
    content_type = sniff(data[:16])
    if content_type is None:
        raise InvalidInput("Only pictures (PNG, JPEG, GIF, WebP) and PDF documents can be sent.", field="file")
    return Upload(clean_name(raw_name, content_type), content_type, data)


@dataclass(frozen=True)
class Info:
    """What a message shows of its file (not the bytes)."""

    id: int
    name: str
    content_type: str
    size: int

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "type": self.content_type, "size": self.size}


def info(attachment: Attachment | None) -> Info | None:
    if attachment is None:
        return None
    return Info(attachment.id, attachment.name, attachment.content_type, attachment.size)


OTHER = "application/octet-stream"


def from_mail(raw_name: str, declared_type: str, data: bytes) -> Upload:
    """A file that came with a mail. Any kind is kept (a customer mails what they have: a Word
    file, a spreadsheet), but only what the bytes show to be a picture or a PDF keeps that type;
    everything else is stored and served as opaque bytes, always as a download."""
    content_type = sniff(data[:16]) or OTHER
    if content_type != OTHER:
        return Upload(clean_name(raw_name, content_type), content_type, data)
    name = _plain_name(raw_name) or "attachment"
    if len(name) > MAX_NAME:
        stem, dot, extension = name.rpartition(".")
        name = stem[:MAX_NAME - len(extension) - 1] + dot + extension if dot and len(extension) < 16 \
            else name[:MAX_NAME]
    return Upload(name, content_type, data)


def store(session: AsyncSession, message_id: int, chat_id: int | None, upload: Upload, *,
          content_id: str | None = None) -> Attachment:
    attachment = Attachment(message_id=message_id, chat_id=chat_id, name=upload.name,
                            content_type=upload.content_type, size=len(upload.data), sha256=upload.digest,
                            data=upload.data, content_id=(content_id or "")[:250] or None)
    session.add(attachment)
    return attachment


async def read(session: AsyncSession, attachment_id: int) -> Attachment | None:
    """The file with its bytes."""
    return await session.scalar(select(Attachment).where(Attachment.id == attachment_id)
                                .options(undefer(Attachment.data)))


def seen_by(mine: ColumnElement[bool], agent_id: int) -> ColumnElement[bool]:
    """Whether the agent has seen the conversation whose parts `mine` picks (a chat's, a mail
    thread's): they handle or handled a part of it, it was offered or handed to them, or they
    supervise. Who may open its files and read its mails."""
    parts = select(Conversation.id).where(mine)
    return or_(
        exists().where(mine, Conversation.agent_id == agent_id),
        exists().where(Offer.conversation_id.in_(parts), Offer.agent_id == agent_id),
        exists().where(Handoff.conversation_id.in_(parts), Handoff.to_agent_id == agent_id),
        exists().where(Agent.id == agent_id, Agent.role.in_(SUPERVISING)))


async def for_agent(session: AsyncSession, attachment_id: int, agent_id: int) -> Attachment:
    """The file with its bytes, when the agent has seen its chat: they handle or handled a part of
    it, it was offered or handed to them, or they supervise. Anyone else hears it does not exist
    (the ids count up; a colleague's customers' photos are not theirs to browse)."""
    chat_id = select(Attachment.chat_id).where(Attachment.id == attachment_id).scalar_subquery()
    # A mail's file: the thread of the conversation its line is in.
    thread_id = (select(Conversation.mail_thread_id).join(Message, Message.conversation_id == Conversation.id)
                 .join(Attachment, Attachment.message_id == Message.id).where(Attachment.id == attachment_id)
                 .scalar_subquery())
    seen = await session.scalar(select(seen_by(
        or_(Conversation.chat_id == chat_id, Conversation.mail_thread_id == thread_id), agent_id)))
    found = await read(session, attachment_id) if seen else None  # the bytes only for who may have them
    if found is None:
        log.info("agent %s asked for file %s, which is gone or of a chat they never had; refused", agent_id,
                 attachment_id)
        raise NotFound("This file does not exist (any more).")
    return found
