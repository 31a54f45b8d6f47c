"""In Chromium: a hostile mail pops as text, its HTML runs nothing and loads nothing until asked, and
the agent's reply goes out threaded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosmtplib
import pytest
from playwright.async_api import Browser, Request, expect

from console.db import Database
from tests.browser.conftest import signed_in_page
from tests.conftest import LiveServer, free_port, make_settings
from tests.helpers import PASSWORD, add_agent
from tests.integrations.email.test_smtp import outside_server

pytestmark = pytest.mark.browser

CORPUS = Path(__file__).resolve().parents[1] / "integrations" / "email" / "corpus"


async def test_a_hostile_mail_is_text_in_the_pop_and_its_html_runs_and_loads_nothing(
        browser: Browser, sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    await db.close()
    inbound, outbound = free_port(), free_port()
    settings = make_settings(sqlite_url, tmp_path, mailboxes=(
        ("support", f"smtp://127.0.0.1:{inbound}?address=support@shop.example"),),
        smtp_url=f"smtp://127.0.0.1:{outbound}")
    dialogs: list[str] = []
    outside: list[str] = []

    def watch(page: object) -> None:
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), asyncio.ensure_future(dialog.dismiss())))  # type: ignore[attr-defined]

        def asked(request: Request) -> None:
            if "127.0.0.1" not in request.url and "localhost" not in request.url:
                outside.append(request.url)
        page.on("request", asked)  # type: ignore[attr-defined]

    async with outside_server(outbound) as world:
        with LiveServer(settings) as live:
            agent = await signed_in_page(browser, live.url, "anna@x.nl", PASSWORD, watch=watch,
                                         viewport=(1366, 860))
            await agent.click("#agent-status button[value=available]")
            raw = (CORPUS / "xss.eml").read_bytes()
            await aiosmtplib.send(raw, sender="attacker@evil.example", recipients=["support@shop.example"],
                                  hostname="127.0.0.1", port=inbound)
            pop = agent.locator(".pop")
            await expect(pop.locator(".pop-state.ringing")).to_have_count(1, timeout=15_000)
            thread = pop.locator(".mail-thread")
            await expect(thread).to_contain_text("<script>alert('subject')</script> Klacht")
            await expect(thread).to_contain_text("<img src=x onerror=alert(1)>")
            await expect(thread).to_contain_text("Mijn bestelling is kapot aangekomen.")
            await expect(pop.locator(".unknown")).to_contain_text("Unknown sender")
            assert await pop.locator("input[name=name]").input_value() == "<img src=x onerror=alert(1)>", \
                "the new-customer form starts from the sender's name, as text"
            await agent.click("button.accept")
            composer = pop.locator(".mail-composer textarea")
            await expect(composer).to_be_enabled(timeout=10_000)

            # The mail as it was sent, in a page of its own: nothing runs, the tracker is not asked.
            link = pop.locator(".mail-html a")
            async with agent.context.expect_page() as opened:
                await link.click()
            sent_as = await opened.value
            watch(sent_as)
            await sent_as.wait_for_load_state()
            await expect(sent_as.locator("body")).to_contain_text("Mijn bestelling is kapot aangekomen.")
            assert await sent_as.locator("script, iframe, form, [onload], [onerror], [onclick]").count() == 0
            hrefs = await sent_as.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
            assert not [h for h in hrefs if h and h.lower().startswith("javascript")]
            assert await sent_as.locator("img[src*='tracker']").count() == 0
            await sent_as.get_by_role("link", name="Load them").click()
            await sent_as.wait_for_load_state()
            await expect(sent_as.locator("img[src*='tracker']")).to_have_count(1)
            await sent_as.close()

            await composer.fill("Beste klant,\n\nWe sturen een nieuwe.")
            await pop.get_by_role("button", name="Send reply").click()
            await expect(thread.locator(".mail.from-agent")).to_contain_text("We sturen een nieuwe.", timeout=10_000)
            await expect(thread.locator(".mail.from-agent .mail-state")).to_have_text("Sent", timeout=15_000)
            assert len(world.received) == 1
            assert world.received[0]["In-Reply-To"] == "<xss-1@attacker.example>"
            assert world.received[0]["To"] == "reply@evil.example", "answered at the Reply-To"
            await agent.screenshot(path=str(tmp_path / "mail-pop.png"))
    assert dialogs == [], f"something ran: {dialogs}"
    assert [u for u in outside if "tracker" not in u] == [], "only the tracker, and only when asked"
