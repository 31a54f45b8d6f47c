"""Files in a chat over HTTP: the widget's upload from another origin, the agent's, and how both
sides open them (never as a page of the console), on each database and bus."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

import httpx
from sqlalchemy import select
from websockets.asyncio.client import connect

from console.db import Database
from console.web.attachments import file_key, visitor_link
from tests.conftest import LiveServer
from tests.console.test_attachments import PDF, PNG
from tests.console.web.test_live import cookie_header, frame_with
from tests.console.web.test_visitors import SHOP, hello, said, server, the_conversation, widget
from tests.helpers import add_agent, log_in

__all__ = ["server"]  # the fixture, shared with the socket's tests


def upload_headers(visitor: str, message_id: str, name: str) -> dict[str, str]:
    return {"Origin": SHOP, "X-Chat-Visitor": visitor, "X-Chat-Message": message_id, "Content-Type": "image/png",
            "X-Chat-Filename": quote(name)}


async def asked(ws: object, text: str = "Kijk eens naar deze taart") -> None:
    """The visitor's first words: a chat is open, and files may follow."""
    await ws.send(json.dumps({"type": "message", "id": "m-0", "text": text}))  # type: ignore[attr-defined]
    await said(ws, "ack")  # type: ignore[arg-type]


async def test_a_visitor_sends_a_picture_from_the_website_and_both_sides_open_it_as_a_file(
        server: tuple[LiveServer, str, str]) -> None:
    live, key, url = server
    async with httpx.AsyncClient(base_url=live.url) as agent, httpx.AsyncClient(base_url=live.url) as site:
        token = await log_in(agent, "anna@x.nl")
        headers = {"X-CSRF-Token": token}
        async with widget(live, key) as ws:
            visitor = (await hello(ws))["visitor"]
            preflight = await site.options(f"/chat/attachments?site={key}", headers={
                "Origin": SHOP, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-chat-visitor, content-type"})
            assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == SHOP
            assert "x-chat-visitor" in preflight.headers["access-control-allow-headers"]
            first = await site.post(f"/chat/attachments?site={key}&lang=nl", content=PNG,
                                    headers=upload_headers(visitor, "f-0", "taart.png"))
            assert first.status_code == 409 and "eerst je vraag" in first.json()["message"], "words first"
            await asked(ws)
            sent = await site.post(f"/chat/attachments?site={key}&lang=nl", content=PNG,
                                   headers=upload_headers(visitor, "f-1", "../taart <script>.png"))
            assert sent.status_code == 200, sent.text
            assert sent.headers["access-control-allow-origin"] == SHOP
            message = sent.json()["message"]
            file = message["attachment"]
            assert (file["name"], file["type"], file["size"]) == ("taart script.png", "image/png", len(PNG))
            again = await site.post(f"/chat/attachments?site={key}", content=PNG,
                                    headers=upload_headers(visitor, "f-1", "taart.png"))
            assert again.json()["message"]["id"] == message["id"], "a resend is the same message"

            opened = await site.get(file["url"])  # the visitor's signed link
            assert opened.status_code == 200 and opened.content == PNG
            assert opened.headers["content-type"] == "image/png"
            assert opened.headers["content-disposition"].startswith("attachment;")
            assert opened.headers["x-content-type-options"] == "nosniff"
            assert "sandbox" in opened.headers["content-security-policy"]
            forged = file["url"].replace("&s=", "&s=0")
            assert (await site.get(forged)).status_code == 403
            other = file["url"].replace(f"/files/{file['id']}?", f"/files/{file['id'] + 1}?")
            assert (await site.get(other)).status_code == 403, "a link is for its own file only"
            secret = file_key(live.server.config.app.state.wiring.settings.secret_key)  # type: ignore[attr-defined]
            assert visitor_link(secret, file["id"]) == file["url"], "the console's own link"
            expired = visitor_link(secret, file["id"], now=time.time() - 2 * 24 * 3600)
            assert (await site.get(expired)).status_code == 403, "a link lasts a day"
            assert (await site.get(file["url"].replace("?e=", "?e=²"))).status_code == 403

        async with connect(live.ws_url + "/ws", origin=live.url,  # type: ignore[arg-type]
                           additional_headers={"Cookie": cookie_header(agent)}) as desk:
            await frame_with(desk, 'id="agent-status"')
            await agent.post("/agent/status", data={"status": "available"}, headers=headers)
            pop = await frame_with(desk, f"/attachments/{file['id']}")
            assert "taart script.png" in pop and "<script>" not in pop
        fetched = await agent.get(f"/attachments/{file['id']}")
        assert fetched.status_code == 200 and fetched.content == PNG
        assert fetched.headers["cross-origin-resource-policy"] == "same-origin"
        assert fetched.headers["content-disposition"] == "attachment; filename*=UTF-8''taart%20script.png"
        async with httpx.AsyncClient(base_url=live.url) as nobody:
            refused = await nobody.get(f"/attachments/{file['id']}")
            assert refused.status_code == 401 and refused.content != PNG, "signed in only"
        db = Database(url)
        await add_agent(db, "carla@x.nl", "Carla", extension="203")
        await add_agent(db, "sanne@x.nl", "Sanne", role="supervisor")
        await db.close()
        for email, status in (("carla@x.nl", 404), ("sanne@x.nl", 200)):
            async with httpx.AsyncClient(base_url=live.url) as colleague:
                await log_in(colleague, email)
                assert (await colleague.get(f"/attachments/{file['id']}")).status_code == status, \
                    "another agent's chat is not theirs to browse; a supervisor's it is"


async def test_what_is_not_taken_is_refused_in_the_visitors_words_and_nothing_is_stored(
        server: tuple[LiveServer, str, str]) -> None:
    live, key, url = server
    async with httpx.AsyncClient(base_url=live.url) as site:
        async with widget(live, key) as ws:
            visitor = (await hello(ws))["visitor"]
            await asked(ws)
        page = b"<html><script>alert(1)</script></html>"
        refused = await site.post(f"/chat/attachments?site={key}&lang=nl", content=page,
                                  headers=upload_headers(visitor, "f-1", "foto.png"))
        assert refused.status_code == 422 and refused.json()["code"] == "file"
        assert "pdf" in refused.json()["message"].lower() and refused.json()["id"] == "f-1"
        assert refused.headers["access-control-allow-origin"] == SHOP, "the widget may read why"
        big = await site.post(f"/chat/attachments?site={key}", content=PDF + b"0" * (10 * 1024 * 1024),
                              headers=upload_headers(visitor, "f-2", "groot.pdf"))
        assert big.status_code == 413 and "10 MB" in big.json()["message"]
        stranger = await site.post(f"/chat/attachments?site={key}", content=PNG,
                                   headers=upload_headers("someone-elses-token", "f-3", "x.png"))
        assert stranger.status_code == 403 and stranger.json()["code"] == "visitor"
        foreign = await site.post(f"/chat/attachments?site={key}", content=PNG,
                                  headers={**upload_headers(visitor, "f-4", "x.png"), "Origin": "https://evil.example"})
        assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
        unknown = await site.post("/chat/attachments?site=nope", content=PNG,
                                  headers=upload_headers(visitor, "f-5", "x.png"))
        assert unknown.status_code == 404 and unknown.json()["code"] == "site"
        empty = await site.post(f"/chat/attachments?site={key}", content=b"",
                                headers=upload_headers(visitor, "f-6", "x.png"))
        assert empty.status_code == 422 and "empty" in empty.json()["message"]
    db = Database(url)
    async with db.reading() as session:
        from console.models import Message
        bodies = list(await session.scalars(select(Message.body)))
        assert bodies == ["Kijk eens naar deze taart"], "only their words: no file stored"
    await db.close()


async def test_an_agent_sends_a_pdf_and_the_visitor_receives_a_link_to_it(server: tuple[LiveServer, str, str]) -> None:
    live, key, url = server
    async with httpx.AsyncClient(base_url=live.url) as agent, httpx.AsyncClient(base_url=live.url) as site:
        token = await log_in(agent, "anna@x.nl")
        headers = {"X-CSRF-Token": token}
        await agent.post("/agent/status", data={"status": "available"}, headers=headers)
        async with widget(live, key) as ws:
            await hello(ws)
            await ws.send(json.dumps({"type": "message", "id": "m-1", "text": "Mag ik de factuur?"}))
            await said(ws, "ack")
            conversation = await the_conversation(url)
            path = f"/conversations/{conversation.id}/attachments"
            early = await agent.post(path, headers=headers, data={"client_id": "a-0"},
                                     files={"file": ("factuur.pdf", PDF, "application/pdf")})
            assert early.status_code == 409, "not before the chat is accepted"
            assert (await agent.post(f"/conversations/{conversation.id}/accept", headers=headers)).status_code == 204
            wrong = await agent.post(path, headers=headers, data={"client_id": "a-1"},
                                     files={"file": ("factuur.pdf", b"MZ not a pdf", "application/pdf")})
            assert wrong.status_code == 422 and "PDF" in wrong.text and 'id="flash"' in wrong.text
            big_pdf = PDF + b"%" + b"0" * 4000 + b"\n"  # past the size the console would compress
            sent = await agent.post(path, headers=headers, data={"client_id": "a-2"},
                                    files={"file": ("factuur 2231.pdf", big_pdf, "application/pdf")})
            assert sent.status_code == 204, sent.text
            message = (await said(ws, "message"))["message"]
            while message["from"] != "agent":
                message = (await said(ws, "message"))["message"]
            file = message["attachment"]
            assert (file["name"], file["type"]) == ("factuur 2231.pdf", "application/pdf")
            opened = await site.get(file["url"], headers={"Accept-Encoding": "gzip"})
            assert opened.status_code == 200 and opened.content == big_pdf
            assert opened.headers["content-type"] == "application/pdf"
            assert "content-encoding" not in opened.headers, "a PDF is sent as it is"
        no_csrf = await agent.post(path, data={"client_id": "a-3"}, files={"file": ("f.pdf", PDF, "application/pdf")})
        assert no_csrf.status_code == 403
