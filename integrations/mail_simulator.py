"""Simulated mail for the demo: customers who write to the service address, and the world outside.

The demo's mailbox is an SMTP listener on this machine (no outside servers): simulated customers
hand it their mails as a mail server that forwards would. Most are people with a question, some
with an HTML part or a PDF, a few unknown senders; now and then a newsletter or an out-of-office
arrives, which the console keeps with the thread and never routes. The console's replies go to
`Outside`, an SMTP server standing in for the rest of the world: a customer answers a reply now
and then (threaded on the console's Message-ID), and never answers an automatic mail.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from typing import Any

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from console.db import Database
from console.models import ContactKind, ContactPoint, Customer

log = logging.getLogger("integrations.mail_simulator")

QUESTIONS = {
    "nl": [("Vraag over mijn factuur", "Goedendag,\n\nOp mijn laatste factuur staat een bedrag dat ik niet begrijp. "
            "Kunt u uitleggen waar de €12,50 voor is?\n\nMet vriendelijke groet,\n{name}"),
           ("Levering nog niet ontvangen", "Hallo,\n\nIk heb vorige week besteld (ordernummer 2026-{n}) maar nog "
            "niets ontvangen. Wanneer kan ik het verwachten?\n\nGroet,\n{name}"),
           ("Adreswijziging", "Beste klantenservice,\n\nPer 1 januari verhuis ik naar Kerkstraat 12 in Utrecht. "
            "Willen jullie dat aanpassen?\n\nDank!\n{name}")],
    "en": [("Question about my invoice", "Hello,\n\nMy last invoice shows an amount I do not recognise. Could you "
            "explain the €12.50?\n\nKind regards,\n{name}"),
           ("Where is my order?", "Hi,\n\nI ordered last week (order 2026-{n}) and nothing has arrived yet. When "
            "can I expect it?\n\nThanks,\n{name}")],
}
ANSWERS = {"nl": "Dank u wel voor het snelle antwoord!", "en": "Thank you for the quick answer!"}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


async def demo_addresses(db: Database, limit: int = 200) -> list[tuple[str, str]]:
    """(name, email) of seeded customers, for simulated senders."""
    async with db.reading() as session:
        rows = await session.execute(
            select(Customer.name, ContactPoint.value).join(ContactPoint, ContactPoint.customer_id == Customer.id)
            .where(ContactPoint.kind == ContactKind.EMAIL, Customer.erased_at.is_(None)).limit(limit))
        return [(name, address) for name, address in rows.all()]


def question(rng: random.Random, name: str, address: str, to: str) -> EmailMessage:
    language = rng.choice(("nl", "nl", "en"))
    subject, text = rng.choice(QUESTIONS[language])
    message = EmailMessage()
    message["From"] = formataddr((name, address))
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=address.rpartition("@")[2] or "example.nl")
    body = text.format(name=name.split()[0] if name else "", n=rng.randrange(10000, 99999))
    message.set_content(body)
    if rng.random() < 0.4:  # written in a client that sends HTML too
        html = "".join(f"<p>{line}</p>" for line in body.split("\n\n"))
        message.add_alternative(f"<html><body>{html}<img src=\"https://tracker.example/p.gif\"></body></html>",
                                subtype="html")
    if rng.random() < 0.2:
        message.add_attachment(PDF, maintype="application", subtype="pdf", filename="factuur.pdf")
    return message


def machine(rng: random.Random, to: str) -> EmailMessage:
    """A newsletter or an out-of-office: kept, never routed."""
    message = EmailMessage()
    message["To"] = to
    message["Message-ID"] = make_msgid(domain="lists.example.nl")
    if rng.random() < 0.5:
        message["From"] = "Nieuwsbrief Leverancier <nieuws@lists.example.nl>"
        message["Subject"] = "Nieuwsbrief december"
        message["Precedence"] = "bulk"
        message["List-Id"] = "<nieuws.lists.example.nl>"
        message.set_content("Het laatste nieuws van uw leverancier.")
    else:
        message["From"] = "Karin Smit <karin@klant.example.nl>"
        message["Subject"] = "Automatisch antwoord: Uw bestelling"
        message["Auto-Submitted"] = "auto-replied"
        message.set_content("Ik ben afwezig tot en met 2 januari.")
    return message


class Outside:
    """The world outside: takes the console's mails, and has a customer answer a reply now and then."""

    def __init__(self, inbound: tuple[str, int], rng: random.Random, answer_chance: float = 0.3,
                 pause: tuple[float, float] = (20.0, 60.0)) -> None:
        self.inbound, self.rng, self.answer_chance, self.pause = inbound, rng, answer_chance, pause
        self.received = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        import email
        import email.policy

        self.received += 1
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw if isinstance(raw, bytes) else b"", policy=email.policy.default)
        automatic = parsed.get("Auto-Submitted", "no").lower() != "no"
        if not automatic and self.rng.random() < self.answer_chance:  # nobody answers a machine
            task = asyncio.create_task(self._answer(parsed))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return "250 OK"

    async def _answer(self, reply: Any) -> None:
        await asyncio.sleep(self.rng.uniform(*self.pause))
        message = EmailMessage()
        message["From"] = str(reply.get("To", ""))
        message["To"] = str(reply.get("Reply-To") or reply.get("From", ""))
        message["Subject"] = "Re: " + str(reply.get("Subject", "")).removeprefix("Re: ")
        message["Message-ID"] = make_msgid(domain="klant.example.nl")
        message["In-Reply-To"] = str(reply.get("Message-ID", ""))
        message["References"] = " ".join(filter(None, (str(reply.get("References", "")),
                                                       str(reply.get("Message-ID", "")))))
        text = ANSWERS["nl" if "Beste" in str(reply.get_body(("plain",)) or "") else "en"]
        message.set_content(text)
        try:
            await aiosmtplib.send(message, hostname=self.inbound[0], port=self.inbound[1], timeout=10)
        except Exception as exc:
            log.warning("a simulated customer's answer could not be delivered: %s", exc)


async def serve_outside(outside: Outside, host: str, port: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SMTP(outside, enable_SMTPUTF8=True, hostname="outside"), host, port)


async def run_mail_customers(inbound: tuple[str, int], to: str, senders: list[tuple[str, str]], *,
                             rate: float = 1.0, staffing: Callable[[], Awaitable[int]] | None = None,
                             rng: random.Random | None = None) -> None:
    """Customers write to `to` at most `rate` a minute while agents are logged in, until cancelled."""
    rng = rng or random.Random()
    interval = 60.0 / rate if rate > 0 else 1.0
    while True:
        await asyncio.sleep(interval * rng.uniform(0.6, 1.4))
        if staffing is not None:
            try:
                staffed = await staffing()
            except Exception as exc:  # the database is busy: try again next round
                log.info("the mail simulator could not count the agents: %s", exc)
                continue
            if staffed <= 0:
                continue
        if rng.random() < 0.1:
            message = machine(rng, to)
        elif senders and rng.random() < 0.85:
            name, address = rng.choice(senders)
            message = question(rng, name, address, to)
        else:
            message = question(rng, "Sanne Visser", f"sanne.{uuid.uuid4().hex[:6]}@voorbeeld.nl", to)
        try:
            await aiosmtplib.send(message, hostname=inbound[0], port=inbound[1], timeout=10)
        except Exception as exc:
            log.warning("a simulated mail could not be delivered to the console: %s", exc)
