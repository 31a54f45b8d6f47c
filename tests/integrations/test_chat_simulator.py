"""The demo's simulated chat visitors, through the public widget endpoint of a real server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from console import chat
from console.db import Database
from console.models import Author, Conversation, Message
from integrations.chat_simulator import run_chat_visitors
from tests.conftest import LiveServer, make_settings
from tests.helpers import add_agent, log_in

ORIGIN = "http://localhost:9999"


async def _until(db: Database, what: object, deadline: float = 20) -> object:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        async with db.reading() as session:
            found = await session.scalar(what)  # type: ignore[call-overload]
        if found is not None:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"nothing found within {deadline} s")


async def test_a_simulated_visitor_chats_waits_for_the_agent_and_answers(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna", extension="201")
    async with db.transaction() as session:
        site, _ = await chat.configure_site(session, "Demo shop", chat.SiteSettings(origins=[ORIGIN]))
        key = site.key

    async def nobody() -> int:
        return 0

    async def one_agent() -> int:
        return 1

    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        idle = asyncio.create_task(run_chat_visitors(live.url, key, ORIGIN, rate=600, staffing=nobody))
        await asyncio.sleep(0.5)
        async with db.reading() as session:
            assert await session.scalar(select(Conversation.id)) is None, "nobody logged in: no visitors"
        idle.cancel()
        async with httpx.AsyncClient(base_url=live.url) as agent:
            token = await log_in(agent, "anna@x.nl")
            headers = {"X-CSRF-Token": token}
            await agent.post("/agent/status", data={"status": "available"}, headers=headers)
            visitors = asyncio.create_task(run_chat_visitors(live.url, key, ORIGIN, rate=600, at_once=1,
                                                             staffing=one_agent, pause=(0.1, 0.2)))
            try:
                conversation = await _until(db, select(Conversation.id).where(Conversation.state == "offered"))
                assert (await agent.post(f"/conversations/{conversation}/accept", headers=headers)).status_code == 204
                sent = await agent.post(f"/conversations/{conversation}/messages", headers=headers,
                                        data={"client_id": "a-1", "text": "Goedemiddag, waarmee kan ik helpen?"})
                assert sent.status_code == 204
                lines = select(Message).where(~Message.attachment.has())  # a photo may come after the first line
                await _until(db, lines.with_only_columns(Message.id).where(Message.author == Author.CUSTOMER)
                             .order_by(Message.id).offset(1).limit(1))  # the visitor's next line came
                async with db.reading() as session:
                    authors = list(await session.scalars(lines.with_only_columns(Message.author)
                                                         .order_by(Message.id)))
                assert authors[:3] == [Author.CUSTOMER, Author.AGENT, Author.CUSTOMER], "it waited for the answer"
            finally:
                visitors.cancel()
                await asyncio.gather(visitors, return_exceptions=True)
    await db.close()


async def test_a_simulated_visitor_sends_a_photo_ends_the_chat_and_rates_it(sqlite_url: str, tmp_path: Path) -> None:
    import random

    from integrations import chat_simulator

    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna", extension="201")
    async with db.transaction() as session:
        site, _ = await chat.configure_site(session, "Demo shop", chat.SiteSettings(origins=[ORIGIN]))
        key = site.key

    class Sure(random.Random):
        def random(self) -> float:  # every choice of chance comes out: a photo, an end, a rating
            return 0.0

    async def one_agent() -> int:
        return 1

    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        async with httpx.AsyncClient(base_url=live.url) as agent:
            token = await log_in(agent, "anna@x.nl")
            headers = {"X-CSRF-Token": token}
            await agent.post("/agent/status", data={"status": "available"}, headers=headers)
            visitors = asyncio.create_task(chat_simulator.run_chat_visitors(
                live.url, key, ORIGIN, rate=600, at_once=1, staffing=one_agent, pause=(0.1, 0.2), rng=Sure(7)))
            try:
                conversation = await _until(db, select(Conversation.id).where(Conversation.state == "offered"))
                assert (await agent.post(f"/conversations/{conversation}/accept", headers=headers)).status_code == 204
                from console.models import Attachment
                await _until(db, select(Attachment.id))  # the photo came through the upload endpoint
                for n in range(3):  # each of the visitor's lines waits for an answer; the last for a goodbye
                    await agent.post(f"/conversations/{conversation}/messages", headers=headers,
                                     data={"client_id": f"a-{n}", "text": f"Antwoord {n}"})
                    if n < 2:  # their first line and the photo, then one more line per answer
                        await _until(db, select(Message.id).where(Message.author == Author.CUSTOMER)
                                     .order_by(Message.id).offset(2 + n).limit(1))
                rated = await _until(db, select(Conversation.rating).where(Conversation.rating.is_not(None)))
                assert rated in (3, 4, 5)
                async with db.reading() as session:
                    state = await session.scalar(select(Conversation.state).where(Conversation.id == conversation))
                assert state is not None and state.value == "wrap_up", "the visitor ended it"
            finally:
                visitors.cancel()
                await asyncio.gather(visitors, return_exceptions=True)
    await db.close()
