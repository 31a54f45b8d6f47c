"""In Chromium, two agents in two browser contexts: a warm handoff with notes, from the keyboard.

Anna is on a call, writes a note, hands off warm to Bram with a context note; Bram's page
announces it, he accepts and sees the note, the conversation's notes and its history; Anna's
page goes to wrap-up.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from console.db import Database
from console.models import Tier
from tests.browser.test_screen_pop import new_call, post
from tests.conftest import LiveServer, make_settings
from tests.helpers import PASSWORD, add_agent, add_customer

pytestmark = pytest.mark.browser


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path) -> object:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    await add_agent(db, "bram@x.nl", "Bram Bakker", extension="202")
    await add_customer(db, "Jan Jansen", phones=("0612345678",), company="Jansen Installatietechniek",
                       tier=Tier.B, lifetime_value="4800")
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        yield live


async def agent_page(browser: Browser, server: LiveServer, email: str, errors: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"{email}: {exc}"))
    await page.goto(server.url + "/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("#connection")).to_have_class("connection connected", timeout=10_000)
    return page


async def test_warm_handoff_between_two_agents(browser: Browser, server: LiveServer, tmp_path: Path) -> None:
    errors: list[str] = []
    anna = await agent_page(browser, server, "anna@x.nl", errors)
    bram = await agent_page(browser, server, "bram@x.nl", errors)
    await anna.click("#agent-status button[value=available]")
    await expect(anna.locator("#agent-status")).to_have_class("status status-available")

    await new_call(server, "handoff-1", "+31 6 1234 5678")
    await expect(anna.locator(".pop:has(.ringing) .customer-name")).to_have_text("Jan Jansen", timeout=10_000)
    await expect(anna.locator("#announcer")).to_contain_text("Jan Jansen")
    await anna.keyboard.press("a")
    await expect(anna.locator("#agent-status")).to_have_class("status status-busy")
    await bram.click("#agent-status button[value=available]")
    await expect(bram.locator("#agent-status")).to_have_class("status status-available")

    # N: a note on the conversation, from the keyboard.
    await anna.keyboard.press("n")
    await expect(anna.locator(".current-item [name=body][data-focus=n]")).to_be_focused()
    await anna.keyboard.type("Invoice 2231 is charged twice")
    await anna.locator(".current-item form[id^=note-form] button[type=submit]").click()
    await expect(anna.locator(".pop:has(> .active) .conversation-note")).to_contain_text(
        "Invoice 2231 is charged twice")
    await expect(anna.locator(".current-item [name=body][data-focus=n]")).to_have_value("")

    # H: hand off warm to Bram with a context note.
    await anna.keyboard.press("Escape")
    await anna.keyboard.press("h")
    await expect(anna.locator(".current-item [data-focus=h]")).to_be_focused()
    target = anna.locator(".current-item [data-focus=h]")
    await expect(target.locator("option", has_text="Bram Bakker")).to_have_count(1, timeout=10_000)
    await target.select_option(label="Bram Bakker (available)")
    await anna.locator(".current-item textarea[id^=handoff-note]").fill(
        "Refund approved, please arrange the credit note")
    await anna.locator(".current-item form[id^=handoff-form] button[type=submit]").click()
    await expect(anna.locator(".handoff-status.pending")).to_contain_text("Bram Bakker", timeout=10_000)

    offer = bram.locator(".pop.handoff-offer")
    await expect(offer).to_contain_text("Refund approved, please arrange the credit note", timeout=10_000)
    await expect(offer.locator(".customer-name")).to_have_text("Jan Jansen")
    await expect(offer.locator(".conversation-note")).to_contain_text("Invoice 2231 is charged twice")
    await expect(bram.locator("#announcer")).to_contain_text("Anna de Vries")
    await bram.screenshot(path=str(tmp_path / "handoff-offer.png"))
    await bram.keyboard.press("a")

    active = bram.locator(".pop:has(> .active)")
    await expect(active.locator(".handoff-note")).to_contain_text("Refund approved", timeout=10_000)
    await expect(active.locator(".handoff-note")).to_contain_text("Anna de Vries")
    await expect(active.locator(".conversation-note")).to_contain_text("Invoice 2231 is charged twice")
    await expect(active.locator(".conversation-history")).to_contain_text("warm handoff to Bram Bakker")
    await expect(bram.locator("#agent-status")).to_have_class("status status-busy")

    await expect(anna.locator("#agent-status")).to_have_class("status status-wrap_up", timeout=10_000)
    await expect(anna.locator("form.wrap-up")).to_contain_text("handed off")
    await expect(anna.locator(".pop")).to_have_count(0)
    await bram.screenshot(path=str(tmp_path / "handoff-accepted.png"))

    # The phone system hangs up: Bram's part goes to his wrap-up; Anna finishes hers.
    await post(server, event="hangup", callId="handoff-1", cause="normalClearing")
    await expect(bram.locator("#agent-status")).to_have_class("status status-wrap_up", timeout=10_000)
    await anna.keyboard.press("w")
    await anna.locator("form.wrap-up select[name=disposition]").select_option("escalated")
    await anna.locator("form.wrap-up button[type=submit]").click()
    await expect(anna.locator("#agent-status")).to_have_class("status status-available")
    assert errors == []
