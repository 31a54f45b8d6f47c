"""In Chromium, in English, with third-party cookies blocked: a chat survives a network drop of
30 s on each side in turn, with messages sent by both meanwhile; each side ends with every
message exactly once, in order, and the database holds each once."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select

from console import chat
from console.db import Database
from console.models import Message
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, signed_in_page
from tests.browser.test_chat_widget import Shop, shop
from tests.conftest import LiveServer, free_port, make_settings, missing
from tests.helpers import PASSWORD, add_agent

pytestmark = pytest.mark.browser
__all__ = ["shop"]  # the fixture: a website of its own origin

DROP_SECONDS = 30


class Cable:
    """A TCP relay to the console that can be cut: every connection through it drops, and new
    ones are refused, until it is mended (what a tunnel or a flaky Wi-Fi does to one side)."""

    def __init__(self, target_port: int) -> None:
        self.target_port, self.port = target_port, free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.cut_off = False
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off:
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.cut_off = True
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for end in pair:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def mend(self) -> None:
        self.cut_off = False

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
async def strict_browser() -> AsyncIterator[Browser]:
    """Chromium that blocks third-party cookies, as more and more browsers do by default."""
    import os

    if not os.access(CHROMIUM, os.X_OK):
        missing(f"Chromium at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--test-third-party-cookie-phaseout"])
        try:
            yield browser
        finally:
            await browser.close()


async def _lines(page_log: object) -> list[str]:
    from playwright.async_api import Locator

    assert isinstance(page_log, Locator)
    return [text.strip() for text in await page_log.all_inner_texts()]


async def test_a_chat_survives_a_30_s_drop_on_each_side_with_messages_sent_meanwhile(
        strict_browser: Browser, sqlite_url: str, tmp_path: Path, shop: Shop) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201", language="en")
    async with db.transaction() as session:
        site, _ = await chat.configure_site(session, "Bakery", chat.SiteSettings(origins=[shop.url]))
        key = site.key
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        visitor_cable, agent_cable = Cable(live.port), Cable(live.port)
        try:
            console = f"http://localhost:{visitor_cable.port}"  # another site than the shop's 127.0.0.1
            (tmp_path / "shop" / "index.html").write_text(
                '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Bakery</title></head>'
                f'<body><h1>Bakery</h1><script src="{console}/chat/widget.js" data-site="{key}" async></script>'
                '</body></html>', encoding="utf-8")
            agent = await signed_in_page(strict_browser, f"http://127.0.0.1:{agent_cable.port}", "anna@x.nl",
                                         PASSWORD, viewport=(1366, 768))
            await agent.click("#agent-status button[value=available]")
            context = await strict_browser.new_context(locale="en-GB", viewport={"width": 1000, "height": 700})
            visitor = await context.new_page()
            await visitor.goto(shop.url + "/index.html")
            await visitor.get_by_role("button", name="Chat with us").click()
            window = visitor.get_by_role("dialog", name="Chat")
            box = window.get_by_role("textbox", name="Your message")
            await box.fill("Hello, is my cake ready?")
            await box.press("Enter")
            pop = agent.locator(".pop")
            await agent.click("button.accept")
            composer = pop.locator(".chat-composer textarea")
            await expect(composer).to_be_enabled(timeout=10_000)
            await _say(agent, composer, "Good afternoon! Let me check.")
            visitor_log = window.get_by_role("log").locator("li[data-id]")
            await expect(visitor_log).to_have_count(2, timeout=10_000)

            # The visitor's side drops: the agent answers twice, the visitor writes once offline.
            visitor_cable.cut()
            await expect(window.get_by_role("status")).to_contain_text("Connection lost", timeout=10_000)
            await _say(agent, composer, "It is ready.")
            await box.fill("Are you still there?")
            await box.press("Enter")  # kept in the page (and its storage) until confirmed
            await _say(agent, composer, "You can pick it up until six.")
            await asyncio.sleep(DROP_SECONDS)
            visitor_cable.mend()

            # The agent's side drops: the visitor writes twice, nothing is lost either way.
            await expect(visitor_log).to_have_count(5, timeout=60_000)
            agent_cable.cut()
            await expect(agent.locator("#connection")).not_to_have_class("connection connected", timeout=10_000)
            for text in ("Great, thank you!", "I will come at five."):
                await box.fill(text)
                await box.press("Enter")
            await asyncio.sleep(DROP_SECONDS)
            agent_cable.mend()
            await expect(agent.locator("#connection")).to_have_class("connection connected", timeout=60_000)

            expected = ["Hello, is my cake ready?", "Good afternoon! Let me check.", "It is ready.",
                        "Are you still there?", "You can pick it up until six.", "Great, thank you!",
                        "I will come at five."]
            agent_log = pop.locator(".chat-log li .chat-text")
            await expect(agent_log).to_have_count(7, timeout=30_000)
            await expect(visitor_log).to_have_count(7, timeout=30_000)
            assert await _lines(agent_log) == _ordered(expected, await _lines(agent_log))
            said = await visitor_log.evaluate_all("lines => lines.map(li => li.children[1].textContent.trim())")
            assert said == _ordered(expected, said)
            await visitor.reload()  # and once more after a reload: each once, in order
            window = visitor.get_by_role("dialog", name="Chat")
            await expect(window.get_by_role("log").locator("li[data-id]")).to_have_count(7, timeout=10_000)
            async with db.reading() as session:
                stored = list(await session.scalars(select(Message.body).order_by(Message.id)))
            assert sorted(stored) == sorted(expected), "each message stored once"
        finally:
            visitor_cable.close()
            agent_cable.close()
            await db.close()


def _ordered(expected: list[str], shown: list[str]) -> list[str]:
    """`expected` in the order the console stored it: the visitor's offline message may land
    before or after the agent's second answer (it is sent on reconnect), but every message is
    there once, and each side's own messages keep their order."""
    assert sorted(shown) == sorted(expected), f"each message once: {shown}"
    for earlier, later in (("Hello, is my cake ready?", "Good afternoon! Let me check."),
                           ("Good afternoon! Let me check.", "It is ready."),
                           ("It is ready.", "You can pick it up until six."),
                           ("Are you still there?", "Great, thank you!"),
                           ("Great, thank you!", "I will come at five.")):
        assert shown.index(earlier) < shown.index(later), f"{earlier!r} before {later!r} in {shown}"
    return shown


async def _say(agent: Page, composer: object, text: str) -> None:
    from playwright.async_api import Locator

    assert isinstance(composer, Locator)
    await composer.fill(text)
    await composer.press("Enter")
    await expect(composer).to_have_value("", timeout=10_000)
