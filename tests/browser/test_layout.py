"""In Chromium at 1366x768, the size of a common office laptop: no page or panel of the console
overflows sideways, in English and in Dutch (whose words are longer), with long names and
unbroken text such as addresses and links."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from console import canned, tickets
from console.db import Database
from console.ports import Context, NullNotifier
from tests.browser.conftest import signed_in_page
from tests.conftest import CTI_TOKEN, LiveServer, make_settings
from tests.helpers import PASSWORD, add_agent, add_customer

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1366, 768
LONG_EMAIL = "wilhelmina.van.oranje-nassau.klantenservice@installatietechniek-jansen-en-zonen.example.nl"
LONG_SUBJECT = ("Storing aan de warmtepompinstallatie na het vervangen van de buitenunit, monteur moet "
                "opnieuw langskomen: https://portaal.installatietechniek-jansen.example.nl/storingen/2026/12/000123456")

# Everything that sticks out on the right of the window, or scrolls sideways inside a box; an
# input whose placeholder is wider than the input counts too (it is cut off). Text cut with an
# ellipsis on purpose, whole in its tooltip, is not an overflow.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth, found = [];
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
    (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "");
  if (document.documentElement.scrollWidth > width)
    found.push("the page is " + document.documentElement.scrollWidth + " px wide");
  const ruler = document.createElement("canvas").getContext("2d");
  for (const el of document.querySelectorAll("body *")) {
    const style = getComputedStyle(el), box = el.getBoundingClientRect();
    if (!box.width || style.visibility === "hidden" || el.closest("dialog:not([open])")) continue;
    if (box.right > width + 1) found.push(name(el) + " ends at " + Math.round(box.right) + " px");
    const tag = el.tagName;
    if (tag !== "INPUT" && tag !== "TEXTAREA" && tag !== "SELECT" && el.scrollWidth > el.clientWidth + 1
        && ["auto", "scroll", "hidden", "clip"].includes(style.overflowX) && !el.classList.contains("visually-hidden")
        && !(style.textOverflow === "ellipsis" && el.title))  // cut on purpose, the whole text its tooltip
      found.push(name(el) + " scrolls sideways (" + el.scrollWidth + " in " + el.clientWidth + " px)");
    if (tag === "INPUT" && el.placeholder) {
      ruler.font = style.font;
      const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
      if (ruler.measureText(el.placeholder).width > room + 1) found.push(name(el) + " cuts its placeholder off");
    }
  }
  return found;
}"""


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path) -> object:
    db = Database(sqlite_url)
    ctx = Context(db, NullNotifier(), "NL")
    sophie = await add_agent(db, "sophie@x.nl", "Sophie Visser-van den Berghe", extension="201", role="supervisor",
                             language="nl")
    bram = await add_agent(db, "bram@x.nl", "Bram Bakker", extension="202", language="en")
    await add_agent(db, "alex@x.nl", "Alexandra Wilhelmina van Oranje-Nassau", role="admin", language="nl")
    jan = await add_customer(db, "Jan Jansen-Vermeulen", phones=("0612345678",), emails=(LONG_EMAIL,),
                             company="Jansen en Zonen Installatietechniek en Duurzame Energie B.V.")
    await add_customer(db, "Jan Janssen-Vermeulen", phones=("0612345679",), emails=("jan@jansen.example.nl",))
    for agent in (sophie, bram):
        await tickets.open_ticket(ctx, agent, tickets.Draft(subject=LONG_SUBJECT, description=LONG_SUBJECT * 3,
                                                            customer_id=jan, assignee_id=agent))
    await canned.save(ctx, sophie, "Terugbelafspraak bevestigen", "Beste {customer.first_name}, " + LONG_SUBJECT)
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        live.customer_id = jan  # type: ignore[attr-defined]
        yield live


async def _fits(page: Page, where: str, shots: Path) -> list[str]:
    await page.wait_for_timeout(150)  # a swap settles (htmx 4 settles after 1 frame)
    found = await page.evaluate(OVERFLOW)
    if found:
        await page.screenshot(path=str(shots / (where.replace(" ", "-") + ".png")), full_page=True)
    return [f"{where}: {item}" for item in found]


async def _cti(server: LiveServer, **data: str) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(f"/integrations/cti/{CTI_TOKEN}", data=data)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("email", "language"), [("sophie@x.nl", "nl"), ("bram@x.nl", "en")])
async def test_no_page_or_panel_overflows_at_1366_by_768(browser: Browser, server: LiveServer, tmp_path: Path,
                                                          email: str, language: str) -> None:
    problems: list[str] = []
    login = await browser.new_page(viewport={"width": WIDTH, "height": HEIGHT}, locale=language)
    await login.goto(server.url + f"/login?lang={language}")
    problems += await _fits(login, f"{language} login", tmp_path)
    await login.close()

    page = await signed_in_page(browser, server.url, email, PASSWORD, viewport=(WIDTH, HEIGHT))
    await expect(page.locator("html")).to_have_attribute("lang", language)
    problems += await _fits(page, f"{language} idle", tmp_path)
    await page.click("#agent-status button[value=available]")
    await expect(page.locator("#agent-status")).to_have_class("status status-available")
    await _cti(server, event="newCall", **{"from": "0612345678"}, to="0881234567", direction="in",
               callId=f"c-{language}")
    await expect(page.locator(".pop-state.ringing")).to_have_count(1, timeout=10_000)
    problems += await _fits(page, f"{language} ringing pop", tmp_path)
    await page.click("button.accept")
    await expect(page.locator("#agent-status")).to_have_class("status status-busy", timeout=10_000)
    problems += await _fits(page, f"{language} active call", tmp_path)

    panel = page.locator("#panel")
    for button, shows in (("/tickets", ".ticket-list"), ("/duplicates", "section"), ("/canned", ".canned"),
                          ("/account", ".account")):
        await page.click(f".tools button[hx-get='{button}'], .topbar button[hx-get='{button}']")
        await expect(panel.locator(shows).first).to_be_visible(timeout=10_000)
        problems += await _fits(page, f"{language} panel {button}", tmp_path)
    await page.click(".tools button[hx-get='/tickets']")
    await panel.locator(".ticket-list a").first.click()
    await expect(panel.locator("form[hx-post^='/tickets/']").first).to_be_visible(timeout=10_000)
    problems += await _fits(page, f"{language} ticket page", tmp_path)

    await page.fill("#customer-search", "Jan")
    await expect(page.locator("#search-results [role=option]").first).to_be_visible(timeout=10_000)
    problems += await _fits(page, f"{language} search results", tmp_path)
    await page.locator("#search-results [role=option] button").first.click()
    customer = page.locator("#customer-panel")
    await expect(customer.locator(".customer-name")).to_be_visible(timeout=10_000)
    for summary in await customer.locator("details > summary").all():
        await summary.click()  # every form of the customer page open at once
    problems += await _fits(page, f"{language} customer page", tmp_path)
    await customer.locator("button[hx-get$='/edit']").click()
    await expect(panel.locator("form").first).to_be_visible(timeout=10_000)
    problems += await _fits(page, f"{language} customer edit", tmp_path)
    await customer.locator("button[hx-get$='/duplicates']").click()
    await expect(panel.locator("section").first).to_be_visible(timeout=10_000)
    problems += await _fits(page, f"{language} duplicates of", tmp_path)
    if language == "nl":  # the supervisor
        await customer.locator("button[hx-get^='/audit/customer/']").click()
        await expect(panel.locator("table, ol, ul").first).to_be_visible(timeout=10_000)
        problems += await _fits(page, f"{language} audit trail", tmp_path)

    await page.keyboard.press("Escape")
    await _cti(server, event="hangup", callId=f"c-{language}", cause="normalClearing")
    await expect(page.locator("form.wrap-up")).to_be_visible(timeout=10_000)
    problems += await _fits(page, f"{language} wrap-up", tmp_path)
    await page.press("body", "?")
    await expect(page.locator("dialog#help")).to_be_visible()
    problems += await _fits(page, f"{language} shortcuts", tmp_path)
    await page.keyboard.press("Escape")

    if language == "nl":
        await page.goto(server.url + f"/customers/{server.customer_id}/export")  # type: ignore[attr-defined]
        problems += await _fits(page, f"{language} export", tmp_path)
    assert problems == [], "\n".join(problems) + f"\n(screenshots in {tmp_path})"


ADMIN_PAGES = ("/admin", "/admin/agents", "/admin/agents/1", "/admin/queues", "/admin/skills", "/admin/dispositions",
               "/admin/chat-sites", "/admin/connections")


@pytest.mark.parametrize("language", ["nl", "en"])
async def test_the_admin_pages_fit_at_1366_by_768(browser: Browser, server: LiveServer, tmp_path: Path,
                                                  language: str) -> None:
    problems: list[str] = []
    page = await signed_in_page(browser, server.url, "alex@x.nl", PASSWORD, viewport=(WIDTH, HEIGHT))
    if language == "en":
        await page.click("form.languages button[value=en]")
        await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.goto(server.url + "/admin/skills")
    await page.fill("input[name=skill]", "warmtepompen-en-duurzame-energie-installaties")
    await page.click("form.admin-form button[type=submit]")
    await expect(page.locator(".notice.ok")).to_be_visible(timeout=10_000)
    await page.goto(server.url + "/admin/queues")
    await page.fill("input[name=name]", "klantenservice-installatietechniek")
    await page.click("form.admin-form button[type=submit]")
    await expect(page.locator("input[name=service_level_goal]")).to_be_visible(timeout=10_000)
    problems += await _fits(page, f"{language} admin queue", tmp_path)
    await page.fill("input[name=service_level_goal]", "")
    await page.locator("input[name=service_level_goal]").evaluate("el => el.removeAttribute('required')")
    await page.click("form.admin-form button[type=submit]")
    await expect(page.locator("#error-service_level_goal")).to_be_visible(timeout=10_000)
    problems += await _fits(page, f"{language} admin queue refused", tmp_path)
    await page.goto(server.url + "/admin/chat-sites")
    await page.fill("input[name=name]", "Webwinkel")
    await page.fill("textarea[name=origins]", "https://www.installatietechniek-jansen-en-zonen.example.nl")
    await page.click("form.admin-form button[type=submit]")
    await expect(page.locator(".embed-tag")).to_be_visible(timeout=10_000)
    problems += await _fits(page, f"{language} admin chat site", tmp_path)
    for path in ADMIN_PAGES:
        await page.goto(server.url + path)
        await expect(page.locator("main#admin-main section").first).to_be_visible()
        problems += await _fits(page, f"{language} {path}", tmp_path)
    # An admin's agent page has the most links in its top bar; the wallboard and reports are theirs too.
    for path, shows in (("/", "#agent-status"), ("/supervisor", "#wallboard"), ("/reports", ".report-chart"),
                        ("/reports?interval=hour", ".report-chart")):
        await page.goto(server.url + path)
        await expect(page.locator(shows)).to_be_visible(timeout=10_000)
        problems += await _fits(page, f"{language} {path}", tmp_path)
    # Agent 1 is a supervisor: a refused reset, then the one-time codes' long otpauth address.
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(server.url + "/admin/agents/1")
    await page.fill("form[hx-post$='/password'] input[name=password]", "short")
    await page.click("form[hx-post$='/password'] button[type=submit]")
    await expect(page.locator("#error-reset-password")).to_be_visible(timeout=10_000)
    problems += await _fits(page, f"{language} admin reset refused", tmp_path)
    await page.click("form[hx-post$='/totp'] button[type=submit]")
    await expect(page.locator(".notice.ok code.new-password").first).to_be_visible(timeout=10_000)
    problems += await _fits(page, f"{language} admin one-time codes", tmp_path)
    assert problems == [], "\n".join(problems) + f"\n(screenshots in {tmp_path})"
