"""In Chromium, the agent's desk as a newcomer meets it: the status line tells the truth, and a
message about the last action lies over the page and goes away."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from console.db import Database
from tests.browser.conftest import signed_in_page
from tests.conftest import CTI_TOKEN, LiveServer, make_settings
from tests.helpers import PASSWORD, add_agent, add_customer

pytestmark = pytest.mark.browser


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path) -> object:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="203")
    await add_customer(db, "Jan Jansen", phones=("0612345678",))
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        yield live


async def cti(server: LiveServer, **data: str) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(f"/integrations/cti/{CTI_TOKEN}", data=data)
    assert response.status_code == 200, response.text


async def test_away_chosen_while_a_call_rings_waits_until_the_call_the_phone_answered_ends(
        browser: Browser, server: LiveServer, tmp_path: Path) -> None:
    page = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    status = page.locator("#agent-status")
    await page.click("#agent-status button[value=available]")
    await expect(status).to_have_class("status status-available")
    await expect(status.locator("button[value=available]")).to_have_count(0)  # nothing to press: she is

    await cti(server, event="newCall", **{"from": "0612345678"}, to="0201234567", direction="in", callId="r1")
    await expect(page.locator("#screen-pop .pop")).to_have_count(1, timeout=10_000)
    await status.locator("details.go-away summary").click()
    await status.locator("button[value=Lunch]").click()
    await expect(status).to_have_class("status status-away")
    await cti(server, event="answer", callId="r1", answeringNumber="203")  # the phone system says she talks
    await expect(status).to_have_class("status status-busy", timeout=10_000)
    await expect(status.locator(".status-after")).to_contain_text("Away")
    await expect(status.locator(".status-after")).to_contain_text("Lunch")
    await expect(status.locator("time.timer")).to_have_text(re.compile(r"^0:0\d$"), timeout=5_000)
    await page.screenshot(path=str(tmp_path / "busy-then-away.png"))

    await cti(server, event="hangup", callId="r1", cause="normalClearing")
    await expect(status).to_have_class("status status-wrap_up", timeout=10_000)
    wrap_up = page.locator("form.wrap-up")
    await wrap_up.locator("select[name=disposition]").select_option("resolved")
    await wrap_up.locator("button[type=submit]").click()
    await expect(status).to_have_class("status status-away", timeout=10_000)
    await expect(status).to_contain_text("Lunch")
    await expect(status.locator(".status-after")).to_have_count(0)


async def test_a_message_lies_over_the_page_and_goes_on_the_next_action(browser: Browser,
                                                                        server: LiveServer) -> None:
    page = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    status = page.locator("#agent-status")
    before = await status.bounding_box()
    # An action the server refuses (a status the page never offers): its error shows at once.
    await page.evaluate("htmx.ajax('POST', '/agent/status', {values: {status: 'napping'}, swap: 'none'})")
    flash = page.locator("#flash")
    await expect(flash).to_contain_text("Status must be", timeout=10_000)
    assert await status.bounding_box() == before, "the message moved the page under the agent's eyes"
    await page.click("#agent-status button[value=available]")  # the next action
    await expect(status).to_have_class("status status-available")
    await expect(flash).to_have_text("")
    # A message nobody acts on goes by itself after a few seconds.
    await page.evaluate("htmx.ajax('POST', '/agent/status', {values: {status: 'napping'}, swap: 'none'})")
    await expect(flash).to_contain_text("Status must be", timeout=10_000)
    await expect(flash).to_have_text("", timeout=15_000)
