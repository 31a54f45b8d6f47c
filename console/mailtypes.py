"""The plain values of a mail, as the mail integrations hand them to the domain.

The integrations (IMAP, SMTP in) parse MIME into these; `console.mail` stores, threads and routes
them. Nothing here knows MIME or a server: a mail is already decoded, its HTML already sanitised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class MailAddress:
    """One address of a header: the display name as written (may be empty) and the address."""

    name: str
    email: str


@dataclass(frozen=True)
class MailFile:
    """An attachment, or an inline image (`content_id` set: an HTML body shows it as cid:...)."""

    name: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class Bounce:
    """A delivery status notification: which of our mails failed, to whom, and why."""

    original_message_id: str | None  # the Message-ID of the mail that bounced, without <>
    recipients: tuple[str, ...]  # the addresses that failed
    status: str  # the DSN status code (5.1.1) or "" when only the text says it failed
    permanent: bool  # 5.x.x: the address is failing; 4.x.x: delayed, not failing yet
    diagnostic: str = ""


@dataclass(frozen=True)
class IncomingMail:
    """One received mail, decoded.

    Message ids are without angle brackets. `text` is what the sender wrote now; `quoted` is the
    history and signature folded away from it. `html` is sanitised (no scripts, no event handlers,
    remote images replaced by a placeholder until the agent asks), or None when the mail had no
    HTML part. `automatic` names why the mail was sent by a machine (an auto-reply, bulk or list
    mail, a bounce) or is None for a person's mail. `problems` lists what could not be read
    (a broken part, an unknown charset decoded with a fallback), for the log and the agent.
    """

    message_id: str
    subject: str
    sender: MailAddress | None
    reply_to: tuple[MailAddress, ...] = ()
    to: tuple[MailAddress, ...] = ()
    cc: tuple[MailAddress, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    date: datetime | None = None
    text: str = ""
    quoted: str = ""
    html: str | None = None
    remote_html: str | None = None  # the sanitised HTML with its remote images, shown on request
    files: tuple[MailFile, ...] = ()
    automatic: str | None = None
    bounce: Bounce | None = None
    problems: tuple[str, ...] = ()
    size: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # a few raw headers kept for the record
