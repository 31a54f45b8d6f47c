"""Mail in by SMTP: a listener (aiosmtpd) for setups whose mail server forwards to the console.

Set up as a mailbox, CONSOLE_MAILBOX_<NAME>=smtp://host:port?queue=...&address=...&max_size=...
(max_size in bytes, 25 MB by default). The listener runs on the node's own event loop and takes
each mail through the same pipeline as IMAP. It answers 250 only once the mail is stored: when
the database is away it answers 451, so the sending server keeps the mail and tries again (that
is SMTP's own retry, and nothing is lost). A mail over the size limit is refused with 552 before
its data is taken in. Who may hand mail to it is the network's business: listen on an address
only the forwarding server reaches.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiosmtpd.smtp import SMTP, Envelope, Session

from integrations.email.pipeline import Pipeline

log = logging.getLogger("integrations.email.smtp_in")

DEFAULT_MAX_SIZE = 25 * 1024 * 1024


@dataclass(frozen=True)
class SmtpListener:
    name: str
    host: str
    port: int
    max_size: int = DEFAULT_MAX_SIZE


def parse_url(name: str, url: str) -> SmtpListener:
    """smtp://host:port?max_size=N, or ValueError naming the setting."""
    setting = f"CONSOLE_MAILBOX_{name.upper()}"
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    try:
        port = parts.port or 2525
    except ValueError:
        raise ValueError(f"{setting}: the port must be a number from 1 to 65535") from None
    size = query.get("max_size", str(DEFAULT_MAX_SIZE))
    if not size.isdigit() or not 1024 <= int(size) <= 200 * 1024 * 1024:
        raise ValueError(f"{setting}: max_size must be a number of bytes from 1024 to 209715200")
    return SmtpListener(name.lower(), parts.hostname or "127.0.0.1", port, int(size))


class _Handler:
    def __init__(self, listener: SmtpListener, pipeline: Pipeline) -> None:
        self.listener = listener
        self.pipeline = pipeline
        self.stored = self.failures = 0
        self.last_error: str | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw or "").encode("utf-8", "surrogateescape")
        try:
            await self.pipeline.deliver(self.listener.name, data)
        except Exception as exc:
            self.failures += 1
            self.last_error = f"could not store a mail ({type(exc).__name__})"
            log.warning("mailbox %s: a mail from %s could not be stored (%s); the sender was told to try again",
                        self.listener.name, session.peer, type(exc).__name__)
            return "451 4.3.0 The mail could not be stored just now; try again later"
        self.stored += 1
        self.last_error = None
        return "250 2.0.0 Stored"


class Listening:
    """A listener that runs: its server, and what it took (for /readyz and /metrics)."""

    def __init__(self, server: asyncio.Server, handler: _Handler) -> None:
        self.server, self.handler = server, handler


async def serve(listener: SmtpListener, pipeline: Pipeline) -> Listening:
    """Start listening; the caller closes the server it gets."""
    loop = asyncio.get_running_loop()
    handler = _Handler(listener, pipeline)

    def protocol() -> Any:
        return SMTP(handler, data_size_limit=listener.max_size, enable_SMTPUTF8=True, decode_data=False,
                    hostname="console", ident="agent console", timeout=60)

    # reuse_port: the workers of one machine listen on the same port, and the kernel shares the
    # connections out among them.
    server = await loop.create_server(protocol, listener.host, listener.port, reuse_port=True)
    log.info("mailbox %s: taking mail by SMTP on %s:%s (at most %s bytes a mail)", listener.name, listener.host,
             listener.port, listener.max_size)
    return Listening(server, handler)
