"""The chat widget's socket, as a website's visitor and an agent use it, on each database and bus."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from console import chat
from console.db import Database
from console.models import Conversation, Message
from tests.conftest import LiveServer, make_settings
from tests.console.web.test_live import cookie_header, frame_with
from tests.helpers import add_agent, log_in

SHOP = "https://www.bakkerij.example"


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[LiveServer, str, str]]:
    """A console with Anna and a chat site for the bakery's shop; yields it, the site key and the DB URL."""
    db = Database(database_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    async with db.transaction() as session:
        site, _ = await chat.configure_site(session, "Bakkerij", chat.SiteSettings(
            origins=[SHOP], greeting="Goedemiddag! Waar kunnen we mee helpen?"))
        key = site.key
    await db.close()
    with LiveServer(make_settings(database_url, tmp_path)) as live:
        yield live, key, database_url


@asynccontextmanager
async def widget(live: LiveServer, key: str, origin: str = SHOP) -> AsyncIterator[ClientConnection]:
    async with connect(f"{live.ws_url}/chat/ws?site={key}", origin=origin) as ws:  # type: ignore[arg-type]
        yield ws


async def said(ws: ClientConnection, kind: str, timeout: float = 10) -> dict[str, Any]:
    """The next frame of this kind (others are skipped), with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if frame["type"] == kind:
            return frame  # type: ignore[no-any-return]


async def hello(ws: ClientConnection, visitor: str | None = None, after: int = 0, **extra: str) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "hello", "visitor": visitor, "after": after, "lang": "nl",
                              "page": SHOP + "/bestellen", **extra}))
    return await said(ws, "welcome")


@asynccontextmanager
async def available_desk(live: LiveServer, agent: httpx.AsyncClient,
                         headers: dict[str, str]) -> AsyncIterator[ClientConnection]:
    """The signed-in agent's page socket, open, with the agent set Available."""
    async with connect(live.ws_url + "/ws", origin=live.url,  # type: ignore[arg-type]
                       additional_headers={"Cookie": cookie_header(agent)}) as desk:
        await frame_with(desk, 'id="agent-status"')
        await agent.post("/agent/status", data={"status": "available"}, headers=headers)
        yield desk


async def the_conversation(url: str) -> Conversation:
    """The one conversation in the database (the chat a test started)."""
    db = Database(url)
    try:
        async with db.reading() as session:
            conversation = await session.scalar(select(Conversation))
    finally:
        await db.close()
    assert conversation is not None
    return conversation


async def closed_with(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_an_unknown_site_or_a_foreign_page_is_told_why_and_closed(server: tuple[LiveServer, str, str]) -> None:
    live, key, _ = server
    async with widget(live, "no-such-key") as ws:
        refused = await said(ws, "error")
        assert refused["code"] == "site" and "unknown site key" in refused["message"]
        assert await closed_with(ws) == 1008
    async with widget(live, key, origin="https://evil.example") as ws:
        refused = await said(ws, "error")
        assert refused["code"] == "origin" and "may not use this chat" in refused["message"]
        assert await closed_with(ws) == 1008
    async with widget(live, key) as ws:
        await ws.send("not json")
        assert (await said(ws, "error"))["code"] == "protocol"
    async with widget(live, key) as ws:
        await ws.send(b"\x00\x01 binary")
        refused = await said(ws, "error")
        assert refused["code"] == "protocol" and "Reload the page" in refused["message"]
        assert await closed_with(ws) == 1008


async def test_a_chat_end_to_end_with_a_resend_stored_once_and_a_reconnect_missing_nothing(
        server: tuple[LiveServer, str, str]) -> None:
    live, key, url = server
    async with httpx.AsyncClient(base_url=live.url) as agent:
        headers = {"X-CSRF-Token": await log_in(agent, "anna@x.nl")}
        async with available_desk(live, agent, headers) as desk:
            async with widget(live, key) as ws:
                welcome = await hello(ws)
                visitor = welcome["visitor"]
                assert welcome["greeting"].startswith("Goedemiddag") and welcome["open"] is True
                await ws.send(json.dumps({"type": "message", "id": "m-1", "text": "Is <b>mijn</b> taart klaar?"}))
                first = (await said(ws, "ack"))["message"]
                await ws.send(json.dumps({"type": "message", "id": "m-1", "text": "Is <b>mijn</b> taart klaar?"}))
                assert (await said(ws, "ack"))["message"]["id"] == first["id"], "a resend is the same message"
                pop = await frame_with(desk, "taart klaar")  # the pop, or the transcript just after it
                assert "Is &lt;b&gt;mijn&lt;/b&gt; taart klaar?" in pop and "<b>mijn</b>" not in pop
            db = Database(url)
            async with db.reading() as session:
                conversation = await session.scalar(select(Conversation))
                assert conversation is not None
                assert await session.scalar(select(func.count()).select_from(Message)) == 1
            await db.close()
            assert (await agent.post(f"/conversations/{conversation.id}/accept", headers=headers)).status_code == 204
            # The visitor is away (a tunnel, a reload) while Anna answers twice.
            for n, text in enumerate(("Goedemiddag! Ik kijk even.", "Hij is klaar: https://bakkerij.example/ophalen")):
                sent = await agent.post(f"/conversations/{conversation.id}/messages", headers=headers,
                                        data={"client_id": f"a-{n}", "text": text})
                assert sent.status_code == 204, sent.text
            transcript = await frame_with(desk, "ophalen")
            assert 'rel="noopener noreferrer nofollow ugc"' in transcript
            async with widget(live, key) as ws:  # typing shows on the other side, both ways
                await hello(ws, visitor=visitor, after=10**9)
                await ws.send(json.dumps({"type": "typing"}))
                assert "The visitor is typing" in await frame_with(desk, "chat-typing")
                await agent.post(f"/conversations/{conversation.id}/typing", headers=headers)
                assert (await said(ws, "typing"))["agent"] == "Anna de Vries"
        async with widget(live, key) as ws:
            back = await hello(ws, visitor=visitor, after=first["id"])
            assert back["visitor"] == visitor and back["chat"] is not None
            missed = [(await said(ws, "message"))["message"] for _ in range(2)]
            assert [m["text"] for m in missed] == ["Goedemiddag! Ik kijk even.",
                                                   "Hij is klaar: https://bakkerij.example/ophalen"]
            assert all(m["from"] == "agent" and m["agent"] == "Anna de Vries" for m in missed)
            sent = await agent.post(f"/conversations/{conversation.id}/messages", headers=headers,
                                    data={"client_id": "a-2", "text": "Tot straks!"})
            assert sent.status_code == 204
            assert (await said(ws, "message"))["message"]["text"] == "Tot straks!", "live again"
        async with widget(live, key) as ws:
            stranger = await hello(ws, visitor="someone-elses-token-guessed")
            assert stranger["visitor"] != visitor and stranger["chat"] is None, "a guess reads nothing"


async def test_a_visitor_sending_too_fast_is_told_to_wait(server: tuple[LiveServer, str, str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from console.web import visitors

    live, key, _ = server
    wiring = live.server.config.app.state.wiring  # type: ignore[attr-defined]
    monkeypatch.setattr(wiring, "settings", replace(wiring.settings, chat_messages_per_minute=3))
    monkeypatch.setattr(visitors, "LIMITER", visitors.Limiter())
    async with widget(live, key) as ws:
        await hello(ws)
        for n in range(3):
            await ws.send(json.dumps({"type": "message", "id": f"m-{n}", "text": f"bericht {n}"}))
            await said(ws, "ack")
        await ws.send(json.dumps({"type": "message", "id": "m-3", "text": "nog een"}))
        refused = await said(ws, "error")
        assert refused["code"] == "flood" and refused["id"] == "m-3" and "Wacht even" in refused["message"]
        await ws.send(json.dumps({"type": "message", "id": "m-4", "text": ""}))
        assert "leeg" in (await said(ws, "error"))["message"]


async def test_the_widget_script_is_small_cached_and_loads_anywhere(server: tuple[LiveServer, str, str]) -> None:
    live, _, _ = server
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await client.get("/chat/widget.js", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "max-age" in response.headers["cache-control"]
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) < 40_000, "the budget: 40 KB transferred, compressed"


async def test_with_nobody_at_work_a_visitor_leaves_a_message_with_their_email_and_it_waits_in_the_queue(
        server: tuple[LiveServer, str, str]) -> None:
    live, key, url = server
    async with widget(live, key) as ws:
        welcome = await hello(ws)
        assert welcome["open"] is True and welcome["staffed"] is False, "Anna is offline"
        assert welcome["prechat"] is False and welcome["chat"] is None
        # Without an address there is nobody to answer to: refused, with the reason.
        await ws.send(json.dumps({"type": "message", "id": "m-1", "text": "Bellen jullie me terug?", "left": True}))
        refused = await said(ws, "error")
        assert refused["id"] == "m-1" and refused["code"] == "email" and "e-mailadres" in refused["message"]
        await ws.send(json.dumps({"type": "details", "name": "<b>Piet</b>", "email": "geen adres"}))
        refused = await said(ws, "error")
        assert refused["code"] == "details" and "e-mailadres" in refused["message"]
        await ws.send(json.dumps({"type": "details", "name": " <b>Piet</b>  Jansen ", "email": "piet@jansen.example"}))
        confirmed = await said(ws, "details")
        assert confirmed == {"type": "details", "name": "<b>Piet</b> Jansen", "email": "piet@jansen.example",
                             "identity": "typed"}
        await ws.send(json.dumps({"type": "message", "id": "m-1", "text": "Bellen jullie me terug?", "left": True}))
        await said(ws, "ack")
        left = await said(ws, "message")
        while left["message"]["from"] == "customer":  # their own message comes back too, once
            left = await said(ws, "message")
        assert left["message"]["from"] == "system" and left["message"]["text"] == "message left"
        visitor = welcome["visitor"]
    async with widget(live, key) as ws:  # back later: the chat and who they said they are
        again = await hello(ws, visitor=visitor)
        assert again["chat"] is not None and "known" not in again, "no form: nothing of theirs is said"
    db = Database(url)
    async with db.reading() as session:
        conversation = await session.scalar(select(Conversation))
        assert conversation is not None and conversation.state.value == "queued", "waiting for an agent"
        assert conversation.customer_id is None, "what they typed waits for the agent to confirm"
        bodies = list(await session.scalars(select(Message.body).order_by(Message.id)))
        assert bodies == ["Bellen jullie me terug?", "message left"]
    await db.close()
    async with httpx.AsyncClient(base_url=live.url) as agent:  # Anna comes in: the message is offered to her
        token = await log_in(agent, "anna@x.nl")
        async with connect(live.ws_url + "/ws", origin=live.url,  # type: ignore[arg-type]
                           additional_headers={"Cookie": cookie_header(agent)}) as desk:
            await frame_with(desk, 'id="agent-status"')
            await agent.post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": token})
            pop = await frame_with(desk, "Bellen jullie me terug?")
            assert "&lt;b&gt;Piet&lt;/b&gt; Jansen" in pop and "piet@jansen.example" in pop
            assert "Typed by the visitor, not verified" in pop
            assert 'value="piet@jansen.example"' in pop, "the new-customer form is filled in with it"
            assert "Left while nobody could answer" in pop


async def test_a_visitor_ends_the_chat_rates_it_and_downloads_its_transcript_and_nobody_elses(
        server: tuple[LiveServer, str, str]) -> None:
    live, key, url = server
    async with httpx.AsyncClient(base_url=live.url) as agent:
        headers = {"X-CSRF-Token": await log_in(agent, "anna@x.nl")}
        async with available_desk(live, agent, headers) as desk:
            async with widget(live, key) as ws:
                await hello(ws)
                await ws.send(json.dumps({"type": "message", "id": "m-1", "text": "Hebben jullie speculaas?"}))
                chat_id = (await said(ws, "ack"))["message"]["chat"]
                await frame_with(desk, "speculaas")
                conversation = await the_conversation(url)
                accepted = await agent.post(f"/conversations/{conversation.id}/accept", headers=headers)
                assert accepted.status_code == 204
                await agent.post(f"/conversations/{conversation.id}/messages", headers=headers,
                                 data={"client_id": "a-1", "text": "Jazeker, vers van vandaag."})
                await ws.send(json.dumps({"type": "rating", "chat": chat_id, "score": 5}))
                refused = await said(ws, "error")
                assert refused["code"] == "after" and "afgelopen" in refused["message"], "not before it ended"
                await ws.send(json.dumps({"type": "end"}))
                end = await said(ws, "message")
                while end["message"]["from"] != "system":
                    end = await said(ws, "message")
                assert end["message"]["text"] == "chat ended by visitor" and end["message"]["chat"] == chat_id
                seen = ""  # the chat's last line and the wrap-up, in whatever order the pushes come
                while "The visitor ended the chat." not in seen or "wrap-up-reason" not in seen:
                    seen += await frame_with(desk, "")
                assert '<p class="wrap-up-reason">Ended by the visitor</p>' in seen, "the agent reads why"
                await ws.send(json.dumps({"type": "rating", "chat": chat_id, "score": 4, "comment": "<i>Top</i>"}))
                assert (await said(ws, "rated"))["chat"] == chat_id
                await ws.send(json.dumps({"type": "transcript", "chat": chat_id}))
                transcript = await said(ws, "transcript")
                assert transcript["filename"].endswith(f"-{chat_id}.txt")
                assert "Jij: Hebben jullie speculaas?" in transcript["text"]
                assert "Anna de Vries: Jazeker, vers van vandaag." in transcript["text"]
            async with widget(live, key) as ws:  # another browser guessing the chat's number
                await hello(ws)
                for ask in ({"type": "transcript", "chat": chat_id}, {"type": "rating", "chat": chat_id, "score": 1}):
                    await ws.send(json.dumps(ask))
                    refused = await said(ws, "error")
                    assert refused["code"] == "after" and "niet van jou" in refused["message"]
    db = Database(url)
    async with db.reading() as session:
        rated = await session.get(Conversation, conversation.id)
        assert rated is not None and (rated.state.value, rated.rating, rated.rating_comment) == (
            "wrap_up", 4, "<i>Top</i>")
    await db.close()
