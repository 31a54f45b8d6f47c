"""In Chromium, on the Redis bus: the agent's network drops for a few seconds while three calls ring.

The page reaches the server through a TCP link the test controls, like the agent's network: it
goes down (every connection through it is cut, new ones are refused) and comes back. The phone
system is not behind it, so three calls ring the agent meanwhile and their pops are published to
Redis. The page notices the lost socket, retries by itself, and asks for what it missed with its
cursor; the frames come back from the Redis stream, and each pop is on the page exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from console.db import Database
from tests import conftest
from tests.conftest import CTI_TOKEN, REDIS_URL, LiveServer, free_port, make_settings
from tests.helpers import PASSWORD, add_agent, add_customer

pytestmark = pytest.mark.browser

DOWN_SECONDS = 3.0
CALLERS = (("Jan Jansen", "0612345678"), ("Mary Smith", "0687654321"), ("Kees Klant", "0611111111"))

# The page records the URL of every socket it opened (a replay asks with ?since=), how many frames
# each one brought, and every close, to see it retry by itself.
RECORD_SOCKETS = """
window.__socketUrls = [];
window.__frames = [];
window.__closes = [];
document.addEventListener("htmx:ws:after:connection", (e) => {
  window.__socketUrls.push(e.detail.connection.url);
  window.__frames.push(0);
});
document.addEventListener("console:frame", () => { window.__frames[window.__frames.length - 1]++; });
document.addEventListener("htmx:ws:close", (e) => window.__closes.push(e.detail.code));
"""


class Link:
    """A TCP link from the browser to the server that can go down like a network and come back."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: asyncio.Server | None = None
        self.transports: set[asyncio.WriteTransport] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._carry, "127.0.0.1", self.port)

    async def down(self) -> None:
        """Refuse new connections and cut the open ones, without a goodbye to either side."""
        assert self.server is not None
        self.server.close()
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()
        await asyncio.wait_for(self.server.wait_closed(), 5)
        self.server = None

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, upstream_writer.transport}
        self.transports |= pair
        try:
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        finally:
            for transport in pair:
                transport.abort()
            self.transports -= pair

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        if not writer.transport.is_closing() and writer.can_write_eof():
            with contextlib.suppress(OSError):
                writer.write_eof()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    async with conftest.redis_prefix() as prefix:
        yield prefix


async def stream_length(prefix: str, agent_id: int) -> int:
    import redis.asyncio as aioredis

    admin = aioredis.from_url(REDIS_URL)
    try:
        return int(await admin.xlen(f"{prefix}stream:agent:{agent_id}"))
    finally:
        await admin.aclose()


async def pops_published(prefix: str, agent_id: int, skip: int) -> int:
    """How many pops the agent's stream holds after its first `skip` frames."""
    import redis.asyncio as aioredis

    admin = aioredis.from_url(REDIS_URL)
    try:
        entries = await admin.xrange(f"{prefix}stream:agent:{agent_id}")
        return sum(fields[b"p"].decode().count('<article id="pop-') for _, fields in entries[skip:])
    finally:
        await admin.aclose()


async def test_pops_published_while_the_agents_network_was_down_each_appear_once_after_it_returns(
        browser: Browser, sqlite_url: str, tmp_path: Path, redis_prefix: str) -> None:
    db = Database(sqlite_url)
    agent_id = await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    for name, phone in CALLERS:
        await add_customer(db, name, phones=(phone,))
    await db.close()
    settings = make_settings(sqlite_url, tmp_path, redis_url=REDIS_URL, redis_prefix=redis_prefix)
    with LiveServer(settings) as server:
        link = Link(server.port)
        await link.up()
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.add_init_script(RECORD_SOCKETS)
        try:
            await page.goto(link.url + "/login")
            await page.fill("input[name=email]", "anna@x.nl")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page.locator("#connection")).to_have_class("connection connected", timeout=10_000)
            await page.click("#agent-status button[value=available]")
            await expect(page.locator("#agent-status")).to_have_class("status status-available", timeout=10_000)
            # "Connected" shows when the socket opens; the snapshot with the cursor follows it.
            await expect(page.locator("#ws-cursor")).to_have_attribute("content", re.compile(r".+"), timeout=10_000)
            cursor = await page.locator("#ws-cursor").get_attribute("content")
            assert cursor and re.fullmatch(rf"{agent_id}\.\d+-\d+", cursor), f"a Redis stream id: {cursor}"
            published_before = await stream_length(redis_prefix, agent_id)

            await link.down()
            await expect(page.locator("#connection")).to_have_class("connection reconnecting", timeout=10_000)
            down_at = asyncio.get_running_loop().time()
            conversations: list[int] = []
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as pbx:  # the phone system's own way
                for n, (_, phone) in enumerate(CALLERS):
                    reply = await pbx.post(f"/integrations/cti/{CTI_TOKEN}", data={
                        "event": "newCall", "from": phone, "to": "0201234567", "direction": "in",
                        "callId": f"blip-{n}", "user": "201"})
                    assert reply.status_code == 200, reply.text
                    conversations.append(reply.json()["conversation"])
            # The phone system had its answers first; the pushes follow them into the agent's stream.
            deadline = asyncio.get_running_loop().time() + 10
            while await pops_published(redis_prefix, agent_id, published_before) < len(CALLERS):
                assert asyncio.get_running_loop().time() < deadline, "the pops went to the agent's Redis stream"
                await asyncio.sleep(0.05)
            await expect(page.locator("#screen-pop .pop")).to_have_count(0)  # nothing got through meanwhile
            await asyncio.sleep(max(0.0, down_at + DOWN_SECONDS - asyncio.get_running_loop().time()))
            closes = await page.evaluate("window.__closes")
            assert closes[0] == 1006 and len(closes) >= 2, f"cut, then tried again meanwhile: {closes}"
            await link.up()

            await expect(page.locator("#connection")).to_have_class("connection connected", timeout=20_000)
            names = page.locator("#screen-pop .customer-name")
            await expect(names).to_have_text([name for name, _ in CALLERS], timeout=10_000)
            await expect(page.locator("#screen-pop .pop")).to_have_count(len(CALLERS))
            for conversation_id in conversations:
                await expect(page.locator(f"#pop-{conversation_id}")).to_have_count(1)
            await expect(page.locator("#screen-pop")).to_have_count(1)
            await expect(page.locator("#ws-cursor")).to_have_count(1)
            urls = await page.evaluate("window.__socketUrls")
            assert len(urls) == 2 and "since=" not in urls[0], urls
            assert f"since={cursor}" in urls[1], "the page asked for what it missed"
            frames = await page.evaluate("window.__frames")
            assert frames[1] >= len(CALLERS), f"the missed frames, replayed from Redis, not one snapshot: {frames}"
            assert errors == []
        finally:
            await page.close()
            if link.server is not None:
                await link.down()
