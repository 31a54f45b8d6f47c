"""In Chromium, with the console's Content-Security-Policy on: every page and panel works with no
policy violation and no console error (no inline script or style, no eval)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response, expect

from console.db import Database
from tests.browser.conftest import signed_in_page
from tests.browser.test_screen_pop import new_call
from tests.conftest import LiveServer, make_settings
from tests.helpers import PASSWORD, add_agent, add_customer

pytestmark = pytest.mark.browser

# Runs before the page's own scripts (through the browser's debugging protocol, which the policy
# does not cover): every violation the page reports is kept for the test to read.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__violations.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${where})`);
});
"""


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path) -> object:
    db = Database(sqlite_url)
    await add_agent(db, "sanne@x.nl", "Sanne Supervisor", extension="209", role="supervisor")
    await add_customer(db, "Jan Jansen", phones=("0612345678",), company="Jansen Installatietechniek")
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        yield live


async def test_every_page_and_panel_runs_under_the_policy(browser: Browser, server: LiveServer) -> None:
    problems: list[str] = []
    policies: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    def on_response(response: Response) -> None:
        if response.request.resource_type == "document":
            policies.append(response.headers.get("content-security-policy", ""))

    def watch(page: object) -> None:
        assert isinstance(page, Page)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", on_console)
        page.on("response", on_response)

    page = await signed_in_page(browser, server.url, "sanne@x.nl", PASSWORD, init_script=RECORD_VIOLATIONS,
                                watch=watch, viewport=(1366, 768))
    assert isinstance(page, Page)
    assert policies and all("frame-ancestors 'none'" in policy for policy in policies), policies

    # A call pops, is answered from the page, and its forms load their pickers.
    await page.click("#agent-status button[value=available]")
    await expect(page.locator("#agent-status")).to_have_class("status status-available")
    await new_call(server, "policy-1", "0612345678")
    await expect(page.locator(".pop .customer-name")).to_have_text("Jan Jansen", timeout=10_000)
    await page.keyboard.press("a")
    await expect(page.locator("#agent-status")).to_have_class("status status-busy", timeout=10_000)
    await expect(page.locator(".pop-state.active")).to_be_visible(timeout=10_000)

    # The panels: search and the customer page, tickets, duplicates, canned responses.
    await page.locator("#customer-search").fill("Jansen")
    result = page.locator("#search-results [role=option] button")
    await expect(result).to_have_count(1, timeout=10_000)
    await result.click()
    await expect(page.locator("#customer-panel .customer-name")).to_have_text("Jan Jansen", timeout=10_000)
    await page.get_by_role("button", name="Edit profile").click()
    await expect(page.locator("#panel form.profile")).to_be_visible()
    export = await page.get_by_role("link", name="Export personal data").get_attribute("href")
    for path, shown in (("/tickets", "#panel table, #panel .empty"), ("/duplicates", "#panel h2"),
                        ("/canned", "#panel h2")):
        await page.locator(f"button[hx-get='{path}']").click()
        await expect(page.locator(shown).first).to_be_visible(timeout=10_000)

    violations = await page.evaluate("window.__violations")
    assert not violations, violations

    # The supervisor's export of the customer's personal data (a page of its own).
    await page.goto(f"{server.url}{export}")
    await expect(page.locator("h1")).to_contain_text("Jan Jansen", timeout=10_000)
    violations = await page.evaluate("window.__violations")
    assert not violations, violations
    assert not problems, problems
    await page.close()
