"""The demo's simulated colleagues work through the console's own doors: a call that rings for one
is accepted and, once the phone hung up, wrapped up with one of the queue's dispositions; a chat is
answered and ended."""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect

from console import chat
from console.db import Database
from console.models import Channel, Conversation, State
from integrations.demo_agents import Colleague
from tests.conftest import CTI_TOKEN, LiveServer, make_settings
from tests.console.web.test_visitors import SHOP, hello, said
from tests.helpers import PASSWORD, add_agent


async def until_closed(url: str, channel: Channel, timeout: float = 20) -> Conversation:
    db = Database(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            async with db.reading() as session:
                found = await session.scalar(select(Conversation).where(Conversation.channel == channel,
                                                                        Conversation.state == State.CLOSED))
            if found is not None:
                return found
            assert time.monotonic() < deadline, f"no closed {channel.value} within {timeout} s"
            await asyncio.sleep(0.1)
    finally:
        await db.close()


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path) -> object:
    db = Database(sqlite_url)
    await add_agent(db, "eva@x.nl", "Eva de Boer", extension="205")
    async with db.transaction() as session:
        site, _ = await chat.configure_site(session, "Bakkerij", chat.SiteSettings(origins=[SHOP]))
        key = site.key
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        yield live, key, sqlite_url


async def test_a_simulated_colleague_takes_a_call_and_a_chat_and_wraps_them_up(server: tuple[LiveServer, str, str]
                                                                              ) -> None:
    live, key, url = server
    eva = Colleague(live.url, "eva@x.nl", PASSWORD, "Eva de Boer", rng=random.Random(1), pace=0.02)
    working = asyncio.create_task(eva.work())
    try:
        async with httpx.AsyncClient(base_url=live.url) as pbx:
            call = {"from": "0612345678", "to": "0201234567", "direction": "in", "callId": "d1"}
            deadline = time.monotonic() + 20
            while True:  # the phone system re-posts the ring until the console names where it rings
                reply = (await pbx.post(f"/integrations/cti/{CTI_TOKEN}", data={"event": "newCall", **call})).json()
                if reply.get("state") == "active":
                    break  # Eva accepted
                assert time.monotonic() < deadline, f"the call was not accepted: {reply}"
                await asyncio.sleep(0.2)
            for event in ({"event": "answer", "answeringNumber": "205"},
                          {"event": "hangup", "cause": "normalClearing"}):
                answer = await pbx.post(f"/integrations/cti/{CTI_TOKEN}", data={**event, "callId": "d1"})
                assert answer.status_code == 200, answer.text
        done = await until_closed(url, Channel.CALL)
        assert done.disposition, "wrapped up with one of the queue's dispositions"

        async with connect(f"{live.ws_url}/chat/ws?site={key}", origin=SHOP) as visitor:  # type: ignore[arg-type]
            await hello(visitor)
            await visitor.send(json.dumps({"type": "message", "id": "v-1", "text": "Is mijn taart klaar?"}))
            answer = (await said(visitor, "message", timeout=20))["message"]
            while answer["from"] != "agent":
                answer = (await said(visitor, "message", timeout=20))["message"]
            assert answer["agent"] == "Eva de Boer" and answer["text"]
        chat_done = await until_closed(url, Channel.CHAT, timeout=30)
        assert chat_done.disposition
        assert eva.handled == 2
    finally:
        working.cancel()
        with pytest.raises(asyncio.CancelledError):
            await working
