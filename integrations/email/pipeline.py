"""From raw mail to the domain: every reader (IMAP, SMTP in) hands its bytes to one pipeline.

A mailbox is configured by one setting per mailbox, CONSOLE_MAILBOX_<NAME>, holding a URL:

    imaps://user:password@imap.example.nl/INBOX?queue=support&address=support@example.nl
    smtp://127.0.0.1:2525?queue=support&address=support@example.nl&max_size=26214400

The query's `queue`, `address` (the service address replies go out from), `on_reply` (reopen
or new: what a reply to a conversation that is over does) and `subaddress=1` (replies ask to be
answered at support+ct-<token>@..., for mail servers that deliver subaddresses to the mailbox),
`acknowledge=1` (a person's new mail gets an automatic "we received it", at most one a day per
address) and `language` (en or nl: of those automatic mails) are the console's; the rest belongs to
the reader (see integrations.email.imap for IMAP's). The pipeline parses each mail (never failing
on what it cannot read: that is stored as far as it goes and named in the log) and stores it
through console.mail, which threads, deduplicates and routes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from console import mail
from console.mailtypes import IncomingMail
from console.ports import Context
from integrations.email.parse import parse

log = logging.getLogger("integrations.email")

CONSOLE_PARAMETERS = ("queue", "address", "on_reply", "subaddress", "acknowledge", "language")
SCHEMES = ("imap", "imaps", "smtp")
MAX_FILE = 10 * 1024 * 1024  # a file of a mail; a bigger one is left out and named on the mail


@dataclass(frozen=True)
class MailboxSetting:
    """One CONSOLE_MAILBOX_<NAME> setting: the console's part, and the reader's URL without it."""

    box: mail.MailboxSettings
    scheme: str
    reader_url: str


def mailbox_setting(name: str, url: str) -> MailboxSetting:
    """Read one mailbox setting, or raise ValueError naming the setting (never the password)."""
    setting = f"CONSOLE_MAILBOX_{name.upper()}"
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{setting} must start with imaps://, imap:// or smtp://, not {parts.scheme or 'nothing'}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in CONSOLE_PARAMETERS}
    on_reply = ours.get("on_reply", mail.REOPEN)
    if on_reply not in (mail.REOPEN, mail.LINKED):
        raise ValueError(f"{setting}: on_reply must be reopen or new, not {on_reply!r}")
    language = ours.get("language", "en")
    if language not in ("en", "nl"):
        raise ValueError(f"{setting}: language must be en or nl, not {language!r}")
    address = ours.get("address", "").strip()
    if "@" not in address or any(ch in address for ch in ' ,;<>"') or len(address) > 320:
        raise ValueError(f"{setting}: ?address= must be the mailbox's own address, such as ?address=support@example.nl "
                         "(replies go out from it, and mails from it are never answered)")
    reader = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode([(k, v) for k, v in query
                                                                            if k not in CONSOLE_PARAMETERS]), ""))
    box = mail.MailboxSettings(name=name.lower(), address=address, queue=ours.get("queue") or None,
                               on_reply_to_closed="new" if on_reply == mail.LINKED else "reopen",
                               subaddress=ours.get("subaddress", "0") in ("1", "true", "yes"),
                               acknowledge=ours.get("acknowledge", "0") in ("1", "true", "yes"),
                               language=language)
    return MailboxSetting(box, parts.scheme, reader)


class Pipeline:
    """What the readers call: the cursor of a mailbox, and a mail to store (the IMAP reader's Sink)."""

    def __init__(self, ctx: Context, boxes: dict[str, mail.MailboxSettings]) -> None:
        self.ctx = ctx
        self.boxes = boxes

    def _box(self, name: str) -> mail.MailboxSettings:
        return self.boxes.get(name) or mail.MailboxSettings(name)

    async def cursor(self, mailbox: str) -> tuple[int | None, int]:
        return await mail.cursor(self.ctx, mailbox)

    async def resync(self, mailbox: str, uidvalidity: int) -> None:
        await mail.resync(self.ctx, mailbox, uidvalidity)

    async def advance(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        await mail.advance(self.ctx, mailbox, uidvalidity, uid)

    async def store(self, mailbox: str, uidvalidity: int, uid: int, raw: bytes) -> None:
        """Store one fetched mail and move the mailbox's cursor past it, in one transaction."""
        await self.deliver(mailbox, raw, uid=(uidvalidity, uid))

    async def deliver(self, mailbox: str, raw: bytes, *, uid: tuple[int, int] | None = None) -> mail.Received:
        """Parse and store one mail. Raises only when it could not be stored (the database is
        away): the reader then keeps the mail and tries again."""
        incoming: IncomingMail = parse(raw, max_file=MAX_FILE)
        received = await mail.receive(self.ctx, self._box(mailbox), incoming, uid=uid)
        log.info("mailbox %s: mail %s: %s (conversation %s)", mailbox, incoming.message_id, received.outcome,
                 received.conversation_id)  # no addresses: logs are kept longer than customers are
        return received
