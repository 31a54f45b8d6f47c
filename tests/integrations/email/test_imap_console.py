"""The console reading a real Dovecot mailbox: a mail pops within seconds, threads, and the state shows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from console.db import Database
from console.models import Conversation, Mail, Mailbox, State
from tests.conftest import LiveServer, make_settings
from tests.helpers import add_agent, add_customer, log_in
from tests.integrations.email.dovecot import Dovecot
from tests.integrations.email.test_smtp import until


def jan_writes(message_id: str, subject: str, in_reply_to: str = "") -> bytes:
    answer = f"In-Reply-To: <{in_reply_to}>\r\n" if in_reply_to else ""
    return (f"From: Jan Jansen <jan@jansen.example>\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}>\r\n{answer}Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nMijn bestelling is zoek.\r\n").encode()


async def test_a_mail_in_the_imap_mailbox_pops_and_its_reply_joins_the_thread(
        dovecot: Dovecot, sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries")
    await add_customer(db, "Jan Jansen", emails=("jan@jansen.example",))
    url = dovecot.url(poll=600) + "&queue=&address=support@shop.example"
    settings = make_settings(sqlite_url, tmp_path, mailboxes=(("support", url),))
    with LiveServer(settings) as live:
        async with httpx.AsyncClient(base_url=live.url) as agent:
            headers = {"X-CSRF-Token": await log_in(agent, "anna@x.nl")}
            await agent.post("/agent/status", data={"status": "available"}, headers=headers)

            async def state() -> str:
                ready = (await agent.get("/readyz")).json()
                return str(ready["mailboxes"]["support"]["state"])
            await until(lambda: _is(state, "idle"))
            # Delivered while the console waits in IDLE: it pops within seconds, not at the next poll.
            await asyncio.to_thread(dovecot.deliver, jan_writes("q1@jansen.example", "Bestelling kwijt"))

            async def offered() -> int | None:
                async with db.reading() as session:
                    return await session.scalar(select(Conversation.id).where(Conversation.state == State.OFFERED))
            conversation = await until(offered)
            assert "Jan Jansen" in (await agent.get("/")).text
            await until(lambda: _flagged(dovecot))

            answer = jan_writes("q2@jansen.example", "Re: Bestelling kwijt", in_reply_to="q1@jansen.example")
            await asyncio.to_thread(dovecot.deliver, answer)

            async def threaded() -> bool:
                async with db.reading() as session:
                    return await session.scalar(select(func.count(func.distinct(Mail.thread_id)))) == 1 and \
                        await session.scalar(select(func.count()).select_from(Mail)) == 2
            await until(threaded)
            async with db.reading() as session:
                assert await session.scalar(select(func.count()).select_from(Conversation)) == 1
                assert (await session.get(Conversation, conversation)) is not None
                box = await session.scalar(select(Mailbox))
                assert box is not None and box.last_uid == 2 and box.uidvalidity
            metrics = (await agent.get("/metrics")).text
            assert 'console_mailbox_up{kind="imap",mailbox="support"} 1.0' in metrics
            assert 'console_mailbox_stored{mailbox="support"} 2.0' in metrics
    await db.close()


async def _is(read: Any, wanted: str) -> bool:
    return bool(await read() == wanted)


async def _flagged(dovecot: Dovecot) -> bool:
    flags = await asyncio.to_thread(dovecot.flags)
    return bool(flags) and all("\\Seen" in f for f in flags.values())
