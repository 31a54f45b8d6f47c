"""In Chromium: the server goes away (a deploy), calls ring meanwhile, the page catches up."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import Browser, expect

from console import conversations
from console.db import Database
from console.models import Channel
from console.ports import Context
from console.web.app import SERVER_OPTIONS, create_app
from console.web.push import Pusher
from tests.conftest import free_port, make_settings
from tests.helpers import PASSWORD, add_agent, add_customer

pytestmark = pytest.mark.browser

# The page records every socket URL it opened, to tell a replay (with ?since=) from a fresh start.
RECORD_URLS = """
window.__socketUrls = [];
document.addEventListener("htmx:ws:after:connection", (e) => window.__socketUrls.push(e.detail.connection.url));
"""


class Serving:
    """The same app object served, stopped and served again on one port, as across a restart."""

    def __init__(self, app: object, port: int) -> None:
        self.app, self.port = app, port
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",  # type: ignore[arg-type]
                                **SERVER_OPTIONS)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        assert self.server is not None and self.thread is not None
        self.server.should_exit = True
        self.thread.join(10)


async def test_calls_that_rang_while_the_server_was_down_appear_after_reconnect(
        browser: Browser, sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    await add_customer(db, "Jan Jansen", phones=("0612345678",))
    await add_customer(db, "Mary Smith", phones=("0687654321",))
    await add_customer(db, "Kees Klant", phones=("0611111111",))
    app = create_app(make_settings(sqlite_url, tmp_path))
    port = free_port()
    serving = Serving(app, port)
    serving.start()
    page = await browser.new_page()
    await page.add_init_script(RECORD_URLS)
    try:
        await page.goto(f"http://127.0.0.1:{port}/login")
        await page.fill("input[name=email]", "anna@x.nl")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await expect(page.locator("#connection")).to_have_class("connection connected", timeout=10_000)
        # "Connected" shows when the socket opens; the snapshot with the cursor follows it.
        await expect(page.locator("#ws-cursor")).to_have_attribute("content", re.compile(r".+"), timeout=10_000)
        cursor = await page.locator("#ws-cursor").get_attribute("content")
        assert cursor, "the snapshot carries the cursor"

        serving.stop()  # uvicorn closes the socket with 1012; htmx keeps trying to reconnect
        await expect(page.locator("#connection")).to_have_class("connection reconnecting", timeout=10_000)
        wiring = app.state.wiring  # type: ignore[attr-defined]
        pusher = Pusher(db, wiring.bus, wiring.renderer, "NL", file_secret="test")
        ctx = Context(db=db, notify=pusher, region="NL")
        for call_id, number in (("down-1", "0612345678"), ("down-2", "0687654321"), ("down-3", "0611111111")):
            await conversations.arrive(ctx, channel=Channel.CALL, external_id=call_id, from_address=number,
                                       to_address="0201234567", ringing=["201"])
        await pusher.drain()
        await pusher.close()
        serving.start()

        await expect(page.locator("#connection")).to_have_class("connection connected", timeout=20_000)
        names = page.locator("#screen-pop .customer-name")
        await expect(names).to_have_text(["Jan Jansen", "Mary Smith", "Kees Klant"], timeout=10_000)
        urls = await page.evaluate("window.__socketUrls")
        assert len(urls) == 2 and "since=" not in urls[0] and f"since={cursor}" in urls[1], urls
    finally:
        await page.close()
        if serving.server is not None and not serving.server.should_exit:
            serving.stop()
        await db.close()
