"""In Chromium: find a customer from the search box, note something, edit the profile, see the help."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect

from console.db import Database
from tests.browser.test_handoff import agent_page
from tests.conftest import LiveServer, make_settings
from tests.helpers import add_agent, add_customer, log_in

pytestmark = pytest.mark.browser


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path) -> object:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    await add_agent(db, "bram@x.nl", "Bram Bakker", extension="202")
    await add_customer(db, "Jan Jansen", phones=("0612345678",), company="Jansen Installatietechniek")
    await add_customer(db, "Marieke <i>van Dijk</i>", emails=("marieke@example.nl",))
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        yield live


async def test_search_open_note_and_edit_a_customer(browser: Browser, server: LiveServer, tmp_path: Path) -> None:
    errors: list[str] = []
    page = await agent_page(browser, server, "anna@x.nl", errors)

    await page.keyboard.press("/")
    await expect(page.locator("#customer-search")).to_be_focused()
    await page.keyboard.type("0612 345")
    results = page.locator("#search-results [role=option]")
    await expect(results).to_have_count(1, timeout=10_000)
    await expect(results).to_contain_text("Jan Jansen")
    await results.locator("button").click()
    panel = page.locator("#customer-panel")
    await expect(panel.locator(".customer-name")).to_have_text("Jan Jansen", timeout=10_000)
    await expect(page.locator("#search-results [role=option]")).to_have_count(0)
    await expect(panel.locator(".missing")).to_contain_text("no email address")

    note = panel.locator("form.compose textarea[name=body]")
    await note.fill("Prefers a call after 16:00")
    await panel.locator("form.compose button[type=submit]").click()
    await expect(panel.locator(".timeline .kind-note")).to_contain_text("Prefers a call after 16:00")
    await expect(note).to_have_value("")

    # A colleague's note is pushed while Anna types an address: the form stays open, her text stays.
    await panel.locator("summary", has_text="Add address").click()
    street = panel.locator("input[name=street]")
    await street.fill("Dorpsstraat 12")
    async with httpx.AsyncClient(base_url=server.url) as colleague:
        token = await log_in(colleague, "bram@x.nl")
        action = await panel.locator("form[hx-post$='/addresses']").get_attribute("hx-post")
        assert action
        added = await colleague.post(action.replace("/addresses", "/notes"), data={"body": "Called from site"},
                                     headers={"X-CSRF-Token": token, "HX-Request": "true"})
        assert added.status_code == 204
    await expect(panel.locator(".timeline .kind-note").first).to_contain_text("Called from site", timeout=10_000)
    await expect(street).to_be_visible()
    await expect(street).to_have_value("Dorpsstraat 12")

    await panel.get_by_role("button", name="Edit profile").click()
    form = page.locator("#panel form.profile")
    await form.locator("select[name=tier]").select_option("A")
    await form.locator("input[name=segment]").fill("Installers")
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#panel")).to_contain_text("Saved.")
    await expect(panel.locator(".tier")).to_have_text("A")
    await expect(panel.locator(".profile-facts")).to_contain_text("Installers")

    # Untrusted names are shown as text, never as markup.
    await page.locator("#customer-search").fill("marieke")
    await expect(page.locator("#search-results")).to_contain_text("Marieke <i>van Dijk</i>", timeout=10_000)
    await page.keyboard.press("Escape")
    await expect(page.locator("#search-results [role=option]")).to_have_count(0)

    await page.locator("body").click()
    await page.keyboard.press("?")
    await expect(page.locator("#help")).to_be_visible()
    await expect(page.locator("#help")).to_contain_text("Open a ticket from the current conversation")
    await page.keyboard.press("Escape")
    await expect(page.locator("#help")).to_be_hidden()
    await page.screenshot(path=str(tmp_path / "customer.png"), full_page=True)
    assert errors == []
