"""The node's mail readers: one per CONSOLE_MAILBOX_<NAME> setting, started with the app.

IMAP mailboxes are read by a poller each (IDLE where the server offers it); SMTP mailboxes are a
listener each. Their state (last fetch, backlog, errors) is what /readyz and /metrics show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from console import mail
from console.errors import InvalidInput
from console.ports import Context
from console.settings import Settings
from integrations.email import imap, smtp_in, smtp_out
from integrations.email.pipeline import MailboxSetting, Pipeline, mailbox_setting

log = logging.getLogger("console.web.mailboxes")


@dataclass
class ReaderState:
    """What /readyz and /metrics say of one mailbox."""

    name: str
    kind: str  # imap or smtp
    state: str
    last_fetch_at: datetime | None = None
    last_error: str | None = None
    backlog: int = 0
    stored: int = 0
    failures: int = 0

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "state": self.state,
                "last_fetch_at": self.last_fetch_at.isoformat() if self.last_fetch_at else None,
                "last_error": self.last_error, "backlog": self.backlog, "stored": self.stored,
                "failures": self.failures}


def read_sender(settings: Settings) -> tuple[smtp_out.SmtpServer | None, smtp_out.Dkim | None]:
    """The server replies go out through, and the DKIM key, checked at start."""
    try:
        server = smtp_out.parse_url(settings.smtp_url) if settings.smtp_url else None
        dkim = smtp_out.read_dkim(settings.dkim_selector, settings.dkim_key_file)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="CONSOLE_SMTP_URL") from None
    return server, dkim


def read_settings(settings: Settings) -> list[MailboxSetting]:
    """Every mailbox setting, checked at start: a wrong one stops the node with the reason."""
    found = []
    for name, url in settings.mailboxes:
        try:
            setting = mailbox_setting(name, url)
            if setting.scheme == "smtp":
                smtp_in.parse_url(name, setting.reader_url)
            else:
                imap.parse_url(name, setting.reader_url)
        except ValueError as exc:
            raise InvalidInput(str(exc), field=f"CONSOLE_MAILBOX_{name.upper()}") from None
        found.append(setting)
    return found


class Mailboxes:
    """The readers of the mailboxes, and the sender of what agents write."""

    def __init__(self, ctx: Context, settings: list[MailboxSetting], server: smtp_out.SmtpServer | None = None,
                 dkim: smtp_out.Dkim | None = None) -> None:
        self.ctx = ctx
        self.settings = settings
        self.sender = smtp_out.Sender(ctx, server, dkim)
        self.pipeline = Pipeline(ctx, {s.box.name: s.box for s in settings})
        self.pollers: dict[str, imap.ImapPoller] = {}
        self.listeners: dict[str, smtp_in.SmtpListener] = {}
        self.servers: dict[str, asyncio.Server] = {}
        self.listener_errors: dict[str, str] = {}
        self.tasks: list[asyncio.Task[None]] = []
        for setting in settings:
            if setting.scheme == "smtp":
                self.listeners[setting.box.name] = smtp_in.parse_url(setting.box.name, setting.reader_url)
            else:
                self.pollers[setting.box.name] = imap.ImapPoller(imap.parse_url(setting.box.name, setting.reader_url),
                                                                 self.pipeline)

    async def start(self) -> None:
        try:
            await mail.register(self.ctx, [s.box for s in self.settings])
        except Exception as exc:  # the database is away at start: the readers wait for it anyway
            log.warning("could not record the mailboxes' addresses yet (%s); replies use them once it is back",
                        type(exc).__name__)
        self.tasks.append(asyncio.create_task(self.sender.run(), name="mail sender"))
        for name, poller in self.pollers.items():
            self.tasks.append(asyncio.create_task(poller.run(), name=f"mailbox {name}"))
        for name, listener in self.listeners.items():
            try:
                self.servers[name] = await smtp_in.serve(listener, self.pipeline)
            except OSError as exc:
                self.listener_errors[name] = f"cannot listen on {listener.host}:{listener.port}: {exc.strerror}"
                log.error("mailbox %s: %s", name, self.listener_errors[name])

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in self.servers.values():
            server.close()
            await server.wait_closed()

    def states(self) -> list[ReaderState]:
        found = []
        for name, poller in self.pollers.items():
            s = poller.state
            found.append(ReaderState(name, "imap", s.state, s.last_fetch_at, s.last_error, s.backlog, s.stored,
                                     s.failures))
        for name in self.listeners:
            error = self.listener_errors.get(name)
            found.append(ReaderState(name, "smtp", "failing" if error else ("listening" if name in self.servers
                                                                             else "off"), last_error=error))
        sender = self.sender
        found.append(ReaderState("(sending)", "smtp-out", "off" if sender.server is None else
                                 ("failing" if sender.last_error else "ready"), last_error=sender.last_error,
                                 stored=sender.sent, failures=sender.failures))
        return found
