"""In Chromium, the supervisor's wallboard moves with the floor: a call that arrives shows as
ringing and offered, an answer moves it to answered and the agent to busy, without a reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout

from console import config
from console.db import Database
from tests.browser.conftest import signed_in_page
from tests.browser.test_desk import cti
from tests.conftest import LiveServer, make_settings
from tests.helpers import PASSWORD, add_agent, add_customer

pytestmark = pytest.mark.browser


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path) -> object:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="203")
    await add_agent(db, "bram@x.nl", "Bram Jansen", extension="204")
    await add_agent(db, "sophie@x.nl", "Sophie Visser", role="supervisor")
    await add_customer(db, "Jan Jansen", phones=("0612345678",))
    async with db.transaction() as session:
        await config.configure_queue(session, "Sales", config.QueueSettings())
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        yield live


async def test_the_wallboard_shows_a_call_arrive_and_be_answered(browser: Browser, server: LiveServer,
                                                                 tmp_path: Path) -> None:
    anna = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    await anna.click("#agent-status button[value=available]")
    sophie = await signed_in_page(browser, server.url, "sophie@x.nl", PASSWORD, viewport=(1366, 768))
    await sophie.goto(server.url + "/supervisor")
    await expect(sophie.locator("#connection")).to_have_class("connection connected", timeout=10_000)
    board = sophie.locator("#wallboard")
    anna_row = board.locator("table.agents tr", has_text="Anna de Vries")
    await expect(anna_row).to_contain_text("Available", timeout=10_000)
    sales = board.locator("table.queues tr[data-queue=Sales]")
    await expect(sales).to_have_count(1)

    await cti(server, event="newCall", **{"from": "0612345678"}, to="0201234567", direction="in", callId="w1",
              queue="Sales")
    await expect(anna.locator("#screen-pop .pop")).to_have_count(1, timeout=10_000)
    await expect(sales.locator(".offered")).to_have_text("1", timeout=10_000)
    await expect(sales.locator(".ringing")).to_have_text("1")
    waiting = board.locator("table.waiting tbody tr", has_text="+31 6 12345678")
    await expect(waiting).to_contain_text("Anna de Vries")
    await sophie.screenshot(path=str(tmp_path / "wallboard-ringing.png"))

    await cti(server, event="answer", callId="w1", answeringNumber="203")
    await expect(sales.locator(".answered")).to_have_text("1", timeout=10_000)
    await expect(sales.locator(".ringing")).to_have_text("0")
    await expect(sales.locator(".level")).to_contain_text("100 %")
    await expect(anna_row).to_contain_text("Busy")
    await expect(anna_row).to_contain_text("Call")
    await expect(board.locator("table.waiting")).to_contain_text("Nobody is waiting.")
    await sophie.screenshot(path=str(tmp_path / "wallboard-answered.png"))


async def test_agents_are_refused_the_wallboard(browser: Browser, server: LiveServer) -> None:
    anna = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD)
    response = await anna.goto(server.url + "/supervisor")
    assert response is not None and response.status == 403
    await expect(anna.locator("body")).to_contain_text("The wallboard and the reports are for supervisors.")


async def test_a_supervisor_sets_an_agent_away_and_moves_a_ringing_call_to_a_colleague(
        browser: Browser, server: LiveServer, tmp_path: Path) -> None:
    anna = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    await anna.click("#agent-status button[value=available]")
    bram = await signed_in_page(browser, server.url, "bram@x.nl", PASSWORD, viewport=(1366, 768))
    sophie = await signed_in_page(browser, server.url, "sophie@x.nl", PASSWORD, viewport=(1366, 768))
    await sophie.goto(server.url + "/supervisor")
    board = sophie.locator("#wallboard")

    # A call rings for Anna; Sophie moves it to Bram, who is available by then.
    await cti(server, event="newCall", **{"from": "0612345678"}, to="0201234567", direction="in", callId="m1",
              queue="Sales")
    await expect(anna.locator("#screen-pop .pop")).to_have_count(1, timeout=10_000)
    await bram.click("#agent-status button[value=available]")
    await expect(bram.locator("#agent-status")).to_have_class("status status-available")
    await board.locator("table.waiting tbody tr", has_text="Anna de Vries").get_by_role("button", name="Move").click()
    panel = sophie.locator("#step-in")
    await panel.locator("select[name=agent]").select_option(label="Bram Jansen (available)")
    await panel.get_by_role("button", name="Move").click()
    await expect(panel).to_contain_text("it rings for the agent now")
    await expect(bram.locator("#screen-pop .pop")).to_have_count(1, timeout=10_000)
    await expect(anna.locator("#screen-pop .pop")).to_have_count(0, timeout=10_000)
    await expect(anna.locator("#flash")).to_contain_text("Sophie Visser moved a contact that rang for you")
    await expect(bram.locator("#flash")).to_contain_text("Sophie Visser gave you a contact")
    await expect(board.locator("table.waiting tbody tr", has_text="+31 6 12345678")).to_contain_text("Bram Jansen")

    # Anna is set away for a meeting: her page says so, and who did it.
    await board.locator("table.agents tr", has_text="Anna de Vries").get_by_role("button", name="Step in").click()
    await panel.locator("select[name=status]").select_option("away")
    await panel.locator("select[name=reason]").select_option("Meeting")
    await panel.get_by_role("button", name="Set status").click()
    await expect(panel).to_contain_text("the status is set")
    await expect(anna.locator("#agent-status")).to_have_class("status status-away", timeout=10_000)
    await expect(anna.locator("#agent-status")).to_contain_text("Meeting")
    await expect(anna.locator("#flash")).to_contain_text("Sophie Visser set your status to away")
    await expect(board.locator("table.agents tr", has_text="Anna de Vries")).to_contain_text("Away (Meeting)",
                                                                                          timeout=10_000)
    await sophie.screenshot(path=str(tmp_path / "stepped-in.png"))


async def test_a_supervisor_watches_an_agents_screen_live_and_cannot_act_on_it(
        browser: Browser, server: LiveServer, tmp_path: Path) -> None:
    anna = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    await anna.click("#agent-status button[value=available]")
    sophie = await signed_in_page(browser, server.url, "sophie@x.nl", PASSWORD, viewport=(1366, 768))
    await sophie.goto(server.url + "/supervisor")
    anna_row = sophie.locator("#wallboard table.agents tr", has_text="Anna de Vries")
    await anna_row.get_by_role("button", name="Step in").click()
    watch = sophie.locator("#step-in").get_by_role("link", name="Watch their screen")
    await sophie.goto(server.url + str(await watch.get_attribute("href")))
    await expect(sophie.locator("#connection")).to_have_class("connection connected", timeout=10_000)
    await expect(sophie.locator("#agent-status")).to_have_class("status status-available")
    await expect(anna.locator("#flash")).to_contain_text("Sophie Visser is watching your screen")

    await cti(server, event="newCall", **{"from": "0612345678"}, to="0201234567", direction="in", callId="s1",
              queue="Sales")
    watched_pop = sophie.locator("#screen-pop .pop")
    await expect(watched_pop).to_have_count(1, timeout=10_000)
    await expect(watched_pop).to_contain_text("Jan Jansen")
    accept = watched_pop.get_by_role("button", name="Accept")
    await expect(accept).to_have_count(1)  # what Anna sees, she sees
    with pytest.raises(PlaywrightTimeout):  # but nothing on a silent view can be pressed
        await accept.click(timeout=1_000)
    await sophie.keyboard.press("a")  # nor reached by Anna's shortcuts
    await anna.locator("#screen-pop .pop").get_by_role("button", name="Accept").click()  # she answers herself
    await expect(sophie.locator("#screen-pop .pop")).to_contain_text("Talking", timeout=10_000)
    await sophie.screenshot(path=str(tmp_path / "watching.png"))
