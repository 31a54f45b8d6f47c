"""In Chromium, a supervisor steps into a live chat from the wallboard: a whisper the operator reads
in their pop and the visitor never receives, then taking the chat over and answering the visitor
from her own agent page, while the operator is told and wraps up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from websockets.asyncio.client import connect

from console import chat
from console.db import Database
from tests.browser.conftest import signed_in_page
from tests.conftest import LiveServer, make_settings
from tests.console.web.test_visitors import SHOP, hello, said
from tests.helpers import PASSWORD, add_agent

pytestmark = pytest.mark.browser


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path) -> object:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="203")
    await add_agent(db, "sophie@x.nl", "Sophie Visser", role="supervisor")
    async with db.transaction() as session:
        site, _ = await chat.configure_site(session, "Bakkerij", chat.SiteSettings(origins=[SHOP]))
        key = site.key
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        yield live, key


async def test_a_supervisor_whispers_into_a_chat_then_takes_it_over(browser: Browser, server: tuple[LiveServer, str],
                                                                    tmp_path: Path) -> None:
    live, key = server
    anna = await signed_in_page(browser, live.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    await anna.click("#agent-status button[value=available]")
    async with connect(f"{live.ws_url}/chat/ws?site={key}", origin=SHOP) as visitor:  # type: ignore[arg-type]
        token = (await hello(visitor))["visitor"]
        await visitor.send(json.dumps({"type": "message", "id": "v-1", "text": "Waar blijft mijn taart?"}))
        await said(visitor, "ack")
        pop = anna.locator("#screen-pop .pop")
        await expect(pop).to_contain_text("Waar blijft mijn taart?", timeout=10_000)
        await pop.get_by_role("button", name="Accept").click()
        await expect(pop.locator("form[data-chat-composer] textarea")).to_be_enabled(timeout=10_000)

        sophie = await signed_in_page(browser, live.url, "sophie@x.nl", PASSWORD, viewport=(1366, 768))
        await sophie.goto(live.url + "/supervisor")
        board = sophie.locator("#wallboard")
        panel = sophie.locator("#step-in")
        await board.locator("table.agents tr", has_text="Anna de Vries").get_by_role("button", name="Step in").click()
        await panel.locator("textarea[name=text]").fill("Bied de voucher aan")
        await panel.get_by_role("button", name="Whisper").click()
        await expect(panel).to_contain_text("reads your whisper")
        await expect(pop).to_contain_text("Bied de voucher aan", timeout=10_000)  # in her pop, as a note
        await expect(anna.locator("#flash")).to_contain_text("Sophie Visser whispers: Bied de voucher aan")

        await board.locator("table.agents tr", has_text="Anna de Vries").get_by_role("button", name="Step in").click()
        await panel.get_by_role("button", name="Take this chat over").click()
        await expect(panel).to_contain_text("the chat is yours now")
        await expect(anna.locator("#flash")).to_contain_text("Sophie Visser took this chat over", timeout=10_000)
        await expect(anna.locator("#agent-status")).to_have_class("status status-wrap_up", timeout=10_000)

        desk = sophie
        await desk.goto(live.url + "/")  # her own agent page, where the chat is hers now
        mine = desk.locator("#screen-pop .pop")
        await expect(mine).to_contain_text("Waar blijft mijn taart?", timeout=10_000)
        await mine.locator("form[data-chat-composer] textarea").fill("Hij staat klaar, met excuses!")
        await mine.locator("form[data-chat-composer] textarea").press("Enter")
        answer = (await said(visitor, "message"))["message"]
        while answer["from"] != "agent":
            answer = (await said(visitor, "message"))["message"]
        assert (answer["text"], answer["agent"]) == ("Hij staat klaar, met excuses!", "Sophie Visser")
        await desk.screenshot(path=str(tmp_path / "taken-over.png"))

    async with connect(f"{live.ws_url}/chat/ws?site={key}", origin=SHOP) as again:  # type: ignore[arg-type]
        await hello(again, visitor=token, after=0)  # the visitor's whole chat, as a reload brings it back
        texts: list[str] = []
        while "Hij staat klaar, met excuses!" not in texts:
            texts.append((await said(again, "message"))["message"]["text"])
        assert not any("voucher" in text for text in texts), "the visitor never receives the whisper"
