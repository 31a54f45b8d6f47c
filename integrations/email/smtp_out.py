"""Mail out by SMTP (aiosmtplib): the replies agents write, sent until they went out.

CONSOLE_SMTP_URL names the server: `smtp://user:password@smtp.example.nl:587` (STARTTLS when the
server offers it, required with `?starttls=1`), `smtps://...:465` (TLS from the start), or
`smtp://127.0.0.1:2526` for a local relay without login. Optional DKIM signing (dkimpy) with
CONSOLE_DKIM_SELECTOR and CONSOLE_DKIM_KEY_FILE (a PEM private key; the domain is the sender's).

Every node runs a sender. It takes the mails that are due (console.mail.claim_due, which leases
them so no two nodes send one mail), builds each as plain text plus HTML with the thread's
headers (Message-ID with the thread's token, In-Reply-To, References, Reply-To), and tells the
domain how it went: sent; refused for good (5xx: shown to the agent, who may send it again); or
not now (no answer, 4xx: tried again later, waiting longer each time). A mail is never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib
from markupsafe import escape

from console import mail
from console.models import utcnow
from console.ports import Context

log = logging.getLogger("integrations.email.smtp_out")

IDLE_SECONDS = 2.0  # how often the sender looks for due mails when there were none


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    tls: bool  # TLS from the start (smtps)
    starttls: bool | None  # None: when the server offers it
    user: str
    password: str
    verify: bool = True


@dataclass(frozen=True)
class Dkim:
    selector: str
    key: bytes


def parse_url(url: str) -> SmtpServer:
    """CONSOLE_SMTP_URL, or ValueError that names the setting (never the password)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("CONSOLE_SMTP_URL must look like smtp://user:password@host:587 or smtps://host:465")
    query = dict(parse_qsl(parts.query))
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 587)
    except ValueError:
        raise ValueError("CONSOLE_SMTP_URL: the port must be a number from 1 to 65535") from None
    starttls = {"1": True, "0": False}.get(query.get("starttls", ""))
    return SmtpServer(parts.hostname, port, parts.scheme == "smtps", starttls, unquote(parts.username or ""),
                      unquote(parts.password or ""), query.get("verify", "1") != "0")


def read_dkim(selector: str, key_file: str) -> Dkim | None:
    if not selector and not key_file:
        return None
    if not selector or not key_file:
        raise ValueError("DKIM signing needs both CONSOLE_DKIM_SELECTOR and CONSOLE_DKIM_KEY_FILE")
    try:
        key = Path(key_file).read_bytes()
    except OSError as exc:
        raise ValueError(f"CONSOLE_DKIM_KEY_FILE: cannot read {key_file}: {exc.strerror}") from None
    if b"PRIVATE KEY" not in key:
        raise ValueError(f"CONSOLE_DKIM_KEY_FILE: {key_file} is not a PEM private key")
    return Dkim(selector, key)


def html_of(text: str) -> str:
    """The reply's HTML part: the text, escaped, its paragraphs and line breaks kept."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    body = "".join(f"<p>{escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs)
    return f'<!doctype html><html><body style="font-family:sans-serif">{body}</body></html>'


def build(out: mail.Outgoing, dkim: Dkim | None = None) -> EmailMessage:
    """The mail as it goes out, signed when DKIM is set up."""
    message = EmailMessage()
    message["From"] = formataddr((out.from_name, out.from_address))
    message["To"] = out.to
    if out.reply_to:
        message["Reply-To"] = out.reply_to
    message["Subject"] = out.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = f"<{out.message_id}>"
    if out.in_reply_to:
        message["In-Reply-To"] = f"<{out.in_reply_to}>"
    if out.references:
        message["References"] = " ".join(f"<{r}>" for r in out.references)
    if out.automatic:
        message["Auto-Submitted"] = out.automatic  # RFC 3834: machines must not answer it
        message["X-Auto-Response-Suppress"] = "All"
    message.set_content(out.text)
    message.add_alternative(html_of(out.text), subtype="html")
    if dkim is not None:
        sign(message, out.from_address, dkim)
    return message


class SigningFailed(Exception):
    """The DKIM key could not sign (a setting to fix, not a reason to give up on the mail)."""


def sign(message: EmailMessage, sender: str, dkim: Dkim) -> None:
    import dkim as dkimpy  # only where signing is set up

    domain = sender.rpartition("@")[2]
    try:
        signature = dkimpy.sign(message.as_bytes(), dkim.selector.encode(), domain.encode(), dkim.key,
                                include_headers=[b"from", b"to", b"subject", b"date", b"message-id",
                                                 b"in-reply-to", b"references", b"reply-to"])
    except Exception as exc:
        raise SigningFailed(f"DKIM signing failed ({type(exc).__name__}); check CONSOLE_DKIM_KEY_FILE") from exc
    name, _, value = signature.decode().partition(":")
    message[name] = value.strip().replace("\r\n", "")


class Sender:
    """Sends what is due, on every node, until cancelled."""

    def __init__(self, ctx: Context, server: SmtpServer | None, dkim: Dkim | None = None,
                 timeout: float = 30.0) -> None:
        self.ctx, self.server, self.dkim, self.timeout = ctx, server, dkim, timeout
        self.sent = self.failures = 0
        self.last_error: str | None = None
        self.wake = asyncio.Event()

    async def send(self, out: mail.Outgoing) -> None:
        """Send one mail and settle it: sent; refused for good (the address, the content: shown,
        with Send again); or not now (no answer, a 4xx, a login or DKIM key that needs fixing:
        tried again later, waiting longer each time)."""
        if self.server is None:
            await self._failed(out, "no mail server is set up for sending (CONSOLE_SMTP_URL)", permanent=False)
            return
        try:
            message = build(out, self.dkim)
        except SigningFailed as exc:
            await self._failed(out, str(exc), permanent=False)
            return
        except Exception as exc:  # a mail that cannot be written as a mail at all
            log.exception("mail %s could not be made", out.mail_id)
            await self._failed(out, f"the mail could not be made ({type(exc).__name__})", permanent=True)
            return
        s = self.server
        context = ssl.create_default_context()
        if not s.verify:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        try:
            refused, _ = await aiosmtplib.send(message, hostname=s.host, port=s.port, username=s.user or None,
                                               password=s.password or None, use_tls=s.tls, start_tls=s.starttls,
                                               tls_context=context, timeout=self.timeout)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            reasons = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            await self._failed(out, f"the mail server refused the address: {reasons}",
                               permanent=bool(codes) and all(500 <= code < 600 for code in codes))
        except (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPSenderRefused) as exc:
            # The console's own login or sender address: a setting to fix, then it goes out.
            await self._failed(out, f"the mail server refused the console ({exc.code} {exc.message}); check "
                                    "CONSOLE_SMTP_URL and the mailbox's address", permanent=False)
        except aiosmtplib.SMTPResponseException as exc:
            await self._failed(out, f"the mail server refused it: {exc.code} {exc.message}",
                               permanent=500 <= exc.code < 600)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self._failed(out, f"the mail server could not be reached ({type(exc).__name__}: {exc})",
                               permanent=False)
        else:
            self.sent += 1
            self.last_error = None
            if refused:  # some of several addresses: the others have it
                log.warning("mail %s went out, but %d of its addresses were refused", out.mail_id, len(refused))
            await mail.sent(self.ctx, out.mail_id, out.lease)

    async def _failed(self, out: mail.Outgoing, error: str, *, permanent: bool) -> None:
        self.failures += 1
        self.last_error = error
        await mail.failed(self.ctx, out.mail_id, error, permanent=permanent, lease=out.lease)

    async def send_due(self) -> int:
        due = await mail.claim_due(self.ctx)
        for out in due:
            await self.send(out)
        return len(due)

    async def run(self) -> None:
        while True:
            try:
                if await self.send_due():
                    continue
            except Exception as exc:  # the database is away: try again, never stop sending
                log.warning("the mail sender waits (%s: %s)", type(exc).__name__, exc)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), IDLE_SECONDS)
