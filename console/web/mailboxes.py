"""The node's mail readers: one per CONSOLE_MAILBOX_<NAME> setting, started with the app.

IMAP mailboxes are read by a poller each (IDLE where the server offers it), on one node at a time
(the others stand by and take over when it stops); SMTP mailboxes are a listener on every node
(several workers on one machine share its port). Their state (last fetch, backlog, errors) is what
/readyz and /metrics show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from console import mail
from console.errors import InvalidInput
from console.leases import node_name
from console.ports import Context
from console.settings import Settings
from integrations.email import imap, smtp_in, smtp_out
from integrations.email.pipeline import MailboxSetting, Pipeline, mailbox_setting

log = logging.getLogger("console.web.mailboxes")

HOLD_SECONDS = 30.0  # a node's hold on a mailbox, renewed every third of it


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
        self.servers: dict[str, smtp_in.Listening] = {}
        self.listener_errors: dict[str, str] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.node = node_name()  # this process
        self.standby: set[str] = set()  # the mailboxes another node reads
        for setting in settings:
            if setting.scheme == "smtp":
                self.listeners[setting.box.name] = smtp_in.parse_url(setting.box.name, setting.reader_url)
            else:
                self.pollers[setting.box.name] = imap.ImapPoller(imap.parse_url(setting.box.name, setting.reader_url),
                                                                 self.pipeline)

    async def start(self) -> None:
        self.tasks.append(asyncio.create_task(self._register(), name="mailbox addresses"))
        self.tasks.append(asyncio.create_task(self.sender.run(), name="mail sender"))
        for name, poller in self.pollers.items():
            self.tasks.append(asyncio.create_task(self._keep(name, poller), name=f"mailbox {name}"))
        for name, listener in self.listeners.items():
            try:
                self.servers[name] = await smtp_in.serve(listener, self.pipeline)
            except OSError as exc:
                self.listener_errors[name] = f"cannot listen on {listener.host}:{listener.port}: {exc.strerror}"
                log.error("mailbox %s: %s", name, self.listener_errors[name])

    async def _register(self) -> None:
        """Record each mailbox's address (replies go out from it), again until the database takes it."""
        delay = 1.0
        while True:
            try:
                await mail.register(self.ctx, [s.box for s in self.settings])
                return
            except Exception as exc:
                log.warning("could not record the mailboxes' addresses yet (%s); trying again in %.0f s",
                            type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def _keep(self, name: str, poller: imap.ImapPoller) -> None:
        """Read the mailbox while this node holds it (one node at a time: see console.mail.hold);
        stand by while another does, and take over when it stops renewing."""
        reading: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    held = await mail.hold(self.ctx, name, self.node, HOLD_SECONDS)
                except Exception as exc:  # the database is away: keep reading what is held, for a while
                    log.warning("mailbox %s: could not renew this node's hold (%s)", name, type(exc).__name__)
                    held = reading is not None
                if held and reading is None:
                    log.info("mailbox %s: this node reads it", name)
                    self.standby.discard(name)
                    reading = asyncio.create_task(poller.run(), name=f"mailbox {name} reader")
                elif not held:
                    if reading is not None:
                        log.warning("mailbox %s: another node reads it now; this one stands by", name)
                        reading.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await reading
                        reading = None
                        await poller.close()
                    self.standby.add(name)
                await asyncio.sleep(HOLD_SECONDS / 3)
        finally:
            if reading is not None:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
                await poller.close()
                with contextlib.suppress(Exception):
                    await mail.release(self.ctx, name, self.node)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for listening in self.servers.values():
            listening.server.close()
            await listening.server.wait_closed()

    def states(self) -> list[ReaderState]:
        found = []
        for name, poller in self.pollers.items():
            s = poller.state
            found.append(ReaderState(name, "imap", "standby" if name in self.standby else s.state, s.last_fetch_at,
                                     s.last_error, s.backlog, s.stored, s.failures))
        for name in self.listeners:
            listening = self.servers.get(name)
            if listening is None:
                error = self.listener_errors.get(name)
                found.append(ReaderState(name, "smtp", "failing" if error else "off", last_error=error))
                continue
            taken = listening.handler
            found.append(ReaderState(name, "smtp", "failing" if taken.last_error else "listening",
                                     last_error=taken.last_error, stored=taken.stored, failures=taken.failures))
        sender = self.sender
        found.append(ReaderState("(sending)", "smtp-out", "off" if sender.server is None else
                                 ("failing" if sender.last_error else "ready"), last_error=sender.last_error,
                                 stored=sender.sent, failures=sender.failures))
        return found
