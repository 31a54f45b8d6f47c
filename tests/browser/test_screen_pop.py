"""In Chromium: log in, go available, a call arrives, the screen-pop shows the customer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from console.db import Database
from console.models import Tier
from tests.conftest import CTI_TOKEN, LiveServer, make_settings
from tests.helpers import PASSWORD, add_agent, add_customer

pytestmark = pytest.mark.browser


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path) -> object:
    db = Database(sqlite_url)
    owner = await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    await add_customer(db, "Jan Jansen", phones=("0612345678",), company="Jansen Installatietechniek",
                       tier=Tier.A, owner_id=owner, lifetime_value="48250")
    await add_customer(db, "Ada Acme", phones=("0201111111",), company="Acme")
    await add_customer(db, "Bob Acme", phones=("0201111111",), company="Acme")
    async with db.transaction() as session:
        from console import config

        await config.configure_queue(session, "service", config.QueueSettings())
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        yield live


async def post(server: LiveServer, **data: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(f"/integrations/cti/{CTI_TOKEN}", data=data)
    assert response.status_code == 200, response.text
    return response


async def new_call(server: LiveServer, call_id: str, number: str, **extra: str) -> httpx.Response:
    return await post(server, event="newCall", **{"from": number}, to="0201234567", direction="in", callId=call_id,
                      **extra)


async def test_a_call_pops_the_customer_in_the_agents_page(browser: Browser, server: LiveServer,
                                                           tmp_path: Path) -> None:
    page = await browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(server.url + "/")
    await page.fill("input[name=email]", "anna@x.nl")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("#connection")).to_have_class("connection connected", timeout=10_000)
    await page.click("#agent-status button[value=available]")
    await expect(page.locator("#agent-status")).to_have_class("status status-available")

    reply = await new_call(server, "browser-1", "+31 6 1234 5678")
    assert reply.json()["target"] == "201"
    pop = page.locator("#screen-pop .pop")
    await expect(pop.locator(".customer-name")).to_have_text("Jan Jansen", timeout=10_000)
    await expect(pop).to_contain_text("Jansen Installatietechniek")
    await expect(pop).to_contain_text("Anna de Vries")
    await page.screenshot(path=str(tmp_path / "pop.png"))

    await post(server, event="answer", callId="browser-1", answeringNumber="201")
    await expect(page.locator("#current-conversation")).to_contain_text("+31 6 12345678")
    await post(server, event="hangup", callId="browser-1", cause="normalClearing")
    await expect(page.locator("#screen-pop .pop")).to_have_count(0)
    wrap_up = page.locator("form.wrap-up")
    await expect(page.locator("#agent-status")).to_have_class("status status-wrap_up")
    await wrap_up.locator("select[name=disposition]").select_option("resolved")
    await wrap_up.locator("textarea[name=note]").fill("Explained the invoice")
    await wrap_up.locator("button[type=submit]").click()
    await expect(page.locator("form.wrap-up")).to_have_count(0)
    await expect(page.locator("#agent-status")).to_have_class("status status-available")

    # The next call is accepted from the keyboard, then the other way round: declined.
    await new_call(server, "browser-2", "+31 6 1234 5678", queue="service")
    await expect(page.locator(".pop .ringing .countdown")).to_contain_text(" s", timeout=10_000)
    await expect(page.locator(".pop:has(.ringing)")).to_contain_text("Queue: service")
    await page.keyboard.press("a")
    await expect(page.locator("#agent-status")).to_have_class("status status-busy")
    await expect(page.locator(".pop:has(> .active)")).to_have_count(1)
    assert errors == []


async def test_several_matches_let_the_agent_choose_and_an_unknown_caller_gets_a_form(
        browser: Browser, server: LiveServer) -> None:
    page = await browser.new_page()
    await page.goto(server.url + "/login")
    await page.fill("input[name=email]", "anna@x.nl")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("#connection")).to_have_class("connection connected", timeout=10_000)
    await post(server, event="newCall", **{"from": "020-1111111"}, to="0201234567", direction="in",
               callId="choose", user="201")
    choice = page.locator(".candidates button", has_text="Bob Acme")
    await choice.click()
    await expect(page.locator(".pop .customer-name")).to_have_text("Bob Acme", timeout=10_000)

    await post(server, event="hangup", callId="choose")
    await post(server, event="newCall", **{"from": "0655555555"}, to="0201234567", direction="in",
               callId="stranger", user="201")
    form = page.locator("form.new-customer")
    await expect(form.locator("input[name=phone]")).to_have_value("0655555555", timeout=10_000)
    # A push while the agent types (a second call rings) keeps what was typed.
    await form.locator("input[name=company]").fill("Typed But Not Sent")
    await post(server, event="newCall", **{"from": "0612345678"}, to="0201234567", direction="in",
               callId="second", user="201")
    await expect(page.locator(".pop")).to_have_count(2, timeout=10_000)
    await expect(form.locator("input[name=company]")).to_have_value("Typed But Not Sent")
    await post(server, event="hangup", callId="second")
    await expect(page.locator(".pop")).to_have_count(1, timeout=10_000)
    await form.locator("input[name=name]").fill("   ")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("form.new-customer .error")).to_contain_text("Name is required.")
    await page.locator("form.new-customer input[name=name]").fill("Nieuwe Klant")
    await page.locator("form.new-customer button[type=submit]").click()
    await expect(page.locator(".pop .customer-name")).to_have_text("Nieuwe Klant", timeout=10_000)
