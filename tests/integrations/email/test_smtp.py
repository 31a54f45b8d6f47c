"""Mail in by SMTP and replies out by SMTP, through a real server, with aiosmtpd as the peer both ways."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from console import mail
from console.db import Database
from console.mailtypes import IncomingMail, MailAddress
from console.models import Conversation, Mail, State
from tests.conftest import LiveServer, free_port, make_settings
from tests.helpers import add_agent, add_customer, log_in


class Outside:
    """The rest of the world's mail server: takes what the console sends, or refuses it."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []
        self.refuse: str | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse:
            return self.refuse
        self.envelopes.append(envelope)
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 OK"


@asynccontextmanager
async def outside_server(port: int) -> AsyncIterator[Outside]:
    peer = Outside()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(peer, enable_SMTPUTF8=True), "127.0.0.1", port)
    try:
        yield peer
    finally:
        server.close()
        await server.wait_closed()


async def until(what: Any, deadline: float = 20.0) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = await what()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {deadline} s")


def customer_mail(message_id: str, text: str = "Mijn pakket is niet aangekomen.", **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Jan Jansen <jan@jansen.example>"
    message["To"] = "support@shop.example"
    message["Subject"] = "Bestelling 2026-48213"
    message["Message-ID"] = f"<{message_id}>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


async def test_a_forwarded_mail_pops_the_reply_goes_out_threaded_and_the_answer_joins_it(
        sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    anna = await add_agent(db, "anna@x.nl", "Anna de Vries")
    await add_customer(db, "Jan Jansen", emails=("jan@jansen.example",))
    inbound, outbound = free_port(), free_port()
    settings = make_settings(sqlite_url, tmp_path, mailboxes=(
        ("support", f"smtp://127.0.0.1:{inbound}?address=support@shop.example&max_size=200000"),),
        smtp_url=f"smtp://127.0.0.1:{outbound}")

    async def offered() -> int | None:
        async with db.reading() as session:
            return await session.scalar(select(Conversation.id).where(Conversation.state == State.OFFERED))

    async with outside_server(outbound) as world:
        with LiveServer(settings) as live:
            async with httpx.AsyncClient(base_url=live.url) as agent:
                headers = {"X-CSRF-Token": await log_in(agent, "anna@x.nl")}
                await agent.post("/agent/status", data={"status": "available"}, headers=headers)
                await aiosmtplib.send(customer_mail("q1@jansen.example"), hostname="127.0.0.1", port=inbound)
                conversation = await until(offered)
                assert (await agent.post(f"/conversations/{conversation}/accept", headers=headers)).status_code == 204
                page = (await agent.get("/")).text
                assert "Mijn pakket is niet aangekomen." in page and "Jan Jansen" in page

                sent = await agent.post(f"/conversations/{conversation}/replies", headers=headers,
                                        data={"client_id": "r-1", "text": "Beste Jan,\n\nWe zoeken het uit."})
                assert sent.status_code == 204
                again = await agent.post(f"/conversations/{conversation}/replies", headers=headers,
                                         data={"client_id": "r-1", "text": "Beste Jan,\n\nWe zoeken het uit."})
                assert again.status_code == 204, "a resend of the same reply"

                async def delivered() -> list[EmailMessage]:
                    return world.received
                [reply] = await until(delivered)
                await asyncio.sleep(0.5)
                assert len(world.received) == 1, "the resend was stored once, so it went out once"
                assert reply["To"] == "jan@jansen.example" and "support@shop.example" in reply["From"]
                assert "Anna de Vries" in reply["From"]
                assert reply["Subject"] == "Re: Bestelling 2026-48213"
                assert reply["In-Reply-To"] == "<q1@jansen.example>" and "<q1@jansen.example>" in reply["References"]
                assert reply["Message-ID"].startswith("<ct-") and reply["Message-ID"].endswith("@shop.example>")
                assert reply.get_content_type() == "multipart/alternative"
                plain = reply.get_body(("plain",))
                html = reply.get_body(("html",))
                assert plain is not None and "We zoeken het uit." in plain.get_content()
                assert html is not None and "<p>We zoeken het uit.</p>" in html.get_content()
                assert "Auto-Submitted" not in reply, "a person's reply"

                async def marked_sent() -> bool:
                    async with db.reading() as session:
                        return await session.scalar(select(Mail.send_state).where(Mail.direction == "out")) == "sent"
                await until(marked_sent)

                # The customer answers the reply: it finds its thread by the console's Message-ID.
                answer = customer_mail("q2@jansen.example", "Dank u, het ordernummer is 2026-48213.",
                                       In_Reply_To=reply["Message-ID"], References=reply["Message-ID"])
                await aiosmtplib.send(answer, hostname="127.0.0.1", port=inbound)

                async def joined() -> bool:
                    async with db.reading() as session:
                        rows = list(await session.scalars(select(Mail.thread_id)))
                    return len(rows) == 3 and len(set(rows)) == 1
                await until(joined)
                async with db.reading() as session:
                    assert await session.scalar(select(Conversation.id).where(Conversation.id != conversation)) \
                        is None, "one conversation"
                    assert (await session.get(Conversation, conversation)).agent_id == anna  # type: ignore[union-attr]

                # Too big for the listener: refused before it is taken in, so the sender keeps it.
                big = customer_mail("big@jansen.example", "x" * 300_000)
                with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
                    await aiosmtplib.send(big, hostname="127.0.0.1", port=inbound)
                assert refused.value.code == 552

                ready = (await agent.get("/readyz")).json()
                assert ready["mailboxes"]["support"]["state"] == "listening"
                assert ready["mailboxes"]["support"]["stored"] == 2, "the question and the answer; not the big one"
                assert ready["mailboxes"]["(sending)"]["stored"] == 1
    await db.close()


async def test_a_refused_reply_is_shown_until_it_is_sent_again(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries")
    inbound, outbound = free_port(), free_port()
    settings = make_settings(sqlite_url, tmp_path, mailboxes=(
        ("support", f"smtp://127.0.0.1:{inbound}?address=support@shop.example"),),
        smtp_url=f"smtp://127.0.0.1:{outbound}")
    async with outside_server(outbound) as world:
        world.refuse = "550 5.1.1 <jan@jansen.example>: no such user"
        with LiveServer(settings) as live:
            async with httpx.AsyncClient(base_url=live.url) as agent:
                headers = {"X-CSRF-Token": await log_in(agent, "anna@x.nl")}
                await agent.post("/agent/status", data={"status": "available"}, headers=headers)
                await aiosmtplib.send(customer_mail("q1@jansen.example"), hostname="127.0.0.1", port=inbound)

                async def offered() -> int | None:
                    async with db.reading() as session:
                        return await session.scalar(select(Conversation.id)
                                                    .where(Conversation.state == State.OFFERED))
                conversation = await until(offered)
                await agent.post(f"/conversations/{conversation}/accept", headers=headers)
                await agent.post(f"/conversations/{conversation}/replies", headers=headers,
                                 data={"client_id": "r-1", "text": "Hallo Jan"})

                async def failed() -> Mail | None:
                    async with db.reading() as session:
                        return await session.scalar(select(Mail).where(Mail.send_state == mail.FAILED))
                stored = await until(failed)
                assert "no such user" in (stored.last_error or "")
                page = (await agent.get("/")).text
                assert "Not sent:" in page and "no such user" in page and "Send again" in page

                world.refuse = None
                assert (await agent.post(f"/mails/{stored.id}/send-again", headers=headers)).status_code == 204

                async def delivered() -> list[EmailMessage]:
                    return world.received
                await until(delivered)
    await db.close()


class Greylisting(Outside):
    """Refuses every recipient for now (450), as a greylisting server does the first time."""

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          options: list[str]) -> str:
        return "450 4.2.0 greylisted, try again later"


@pytest.mark.parametrize(("refusal", "permanent"), [("450 4.2.0 greylisted", False), ("550 5.1.1 no such user", True)])
async def test_a_refusal_for_now_is_tried_again_and_one_for_good_is_shown(ctx: Any, refusal: str,
                                                                          permanent: bool) -> None:
    from console import offers, routing
    from integrations.email import smtp_out

    box = mail.MailboxSettings(name="support", address="support@shop.example")
    await mail.register(ctx, [box])
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    await routing.set_status(ctx, anna, "available")
    received = await mail.receive(ctx, box, IncomingMail(message_id="q1@x", subject="Vraag",
                                                         sender=MailAddress("Jan", "jan@jansen.example"), text="Hoi"))
    await offers.accept(ctx, anna, received.conversation_id or 0)
    await mail.reply(ctx, anna, received.conversation_id or 0, "r-1", "Hallo")
    port = free_port()
    peer = Greylisting()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(peer), "127.0.0.1", port)
    try:
        if permanent:
            peer.handle_RCPT = None  # type: ignore[assignment,method-assign]
            peer.refuse = refusal
        sender = smtp_out.Sender(ctx, smtp_out.parse_url(f"smtp://127.0.0.1:{port}"))
        assert await sender.send_due() == 1
    finally:
        server.close()
        await server.wait_closed()
    async with ctx.db.reading() as session:
        stored = await session.scalar(select(Mail).where(Mail.direction == "out"))
    assert stored is not None and stored.attempts == 1 and refusal.split()[0] in (stored.last_error or "")
    if permanent:
        assert stored.send_state == mail.FAILED and stored.next_attempt_at is None
    else:
        assert stored.send_state == mail.QUEUED and stored.next_attempt_at is not None, "tried again later"


def test_a_signed_reply_verifies_with_the_published_key(tmp_path: Path) -> None:
    import base64
    import subprocess
    from datetime import UTC, datetime

    import dkim

    from integrations.email import smtp_out

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                            capture_output=True).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    signer = smtp_out.read_dkim("mail2026", str(key))
    assert signer is not None
    out = mail.Outgoing(1, "Anna de Vries", "support@shop.example", None, "jan@jansen.example", "Re: Bestelling",
                        "Beste Jan,\n\nHet komt morgen.", "ct-abc.123@shop.example", "q1@jansen.example",
                        ("q1@jansen.example",), None, 0, datetime.now(UTC))
    message = smtp_out.build(out, signer)
    assert "d=shop.example" in message["DKIM-Signature"] and "s=mail2026" in message["DKIM-Signature"]

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"mail2026._domainkey.shop.example."
        return record
    assert dkim.verify(message.as_bytes(), dnsfunc=dns)
    with pytest.raises(ValueError, match="both CONSOLE_DKIM_SELECTOR and CONSOLE_DKIM_KEY_FILE"):
        smtp_out.read_dkim("mail2026", "")
