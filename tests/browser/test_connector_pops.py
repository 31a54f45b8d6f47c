"""In Chromium: a Twilio call, an SMS, a WhatsApp message and an Asterisk queue call each pop in the agent's page."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from console.db import Database
from console.models import Tier
from tests.browser.conftest import signed_in_page
from tests.conftest import LiveServer, make_settings
from tests.helpers import PASSWORD, add_agent, add_customer
from tests.integrations.fake_twilio import TWILIO_SETTINGS, FakeApi, Signer, new_sid
from tests.integrations.telephony.amipeer import SECRET, AmiPeer

pytestmark = pytest.mark.browser


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, FakeApi]]:
    async def seed() -> None:
        db = Database(sqlite_url)
        await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
        await add_customer(db, "Jan Jansen", phones=("0612345678",), company="Jansen Installatietechniek",
                           tier=Tier.A)
        await db.close()

    asyncio.run(seed())
    api = FakeApi()
    with LiveServer(make_settings(sqlite_url, tmp_path, **TWILIO_SETTINGS)) as live:
        live.server.config.app.state.wiring.twilio.transport = httpx.MockTransport(api)
        yield live, api


async def twilio(live: LiveServer, path: str, params: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live.url) as client:
        response = await Signer(client).post(path, params)
    assert response.status_code in (200, 204), response.text
    return response


async def available(browser: Browser, live: LiveServer) -> Page:
    page = await signed_in_page(browser, live.url, "anna@x.nl", PASSWORD)
    await page.click("#agent-status button[value=available]")
    await expect(page.locator("#agent-status")).to_have_class("status status-available")
    return page


async def test_a_twilio_call_pops_and_its_answer_makes_it_current(browser: Browser,
                                                                  server: tuple[LiveServer, FakeApi]) -> None:
    live, _ = server
    page = await available(browser, live)
    call = new_sid("CA")
    twiml = await twilio(live, "/integrations/twilio/voice", {"CallSid": call, "From": "+31612345678",
                                                             "To": "+31201234567", "Direction": "inbound"})
    assert "<Client" in twiml.text
    pop = page.locator("#screen-pop .pop")
    await expect(pop.locator(".customer-name")).to_have_text("Jan Jansen", timeout=10_000)
    await expect(pop.locator(".badge")).to_have_text("Call")
    await twilio(live, "/integrations/twilio/voice/status?leg=agent&agent=1",
                 {"CallSid": new_sid("CA"), "ParentCallSid": call, "CallStatus": "in-progress"})
    await expect(page.locator("#current-conversation")).to_contain_text("+31 6 12345678", timeout=10_000)
    await twilio(live, "/integrations/twilio/voice/status", {"CallSid": call, "CallStatus": "completed"})
    await expect(page.locator("form.wrap-up")).to_have_count(1, timeout=10_000)


async def test_an_sms_pops_is_answered_from_the_composer_and_shows_its_delivery(
        browser: Browser, server: tuple[LiveServer, FakeApi], tmp_path: Path) -> None:
    live, api = server
    page = await available(browser, live)
    await twilio(live, "/integrations/twilio/messaging", {
        "MessageSid": new_sid("SM"), "From": "+31612345678", "To": "+31201234567",
        "Body": "Mijn pakket <img src=x onerror=alert(1)> is niet aangekomen"})
    pop = page.locator("#screen-pop .pop")
    await expect(pop.locator(".badge")).to_have_text("SMS", timeout=10_000)
    await expect(pop.locator(".customer-name")).to_have_text("Jan Jansen")
    await expect(pop.locator(".texts .chat-text")).to_have_text(
        "Mijn pakket <img src=x onerror=alert(1)> is niet aangekomen")  # shown as text
    await page.keyboard.press("a")
    composer = pop.locator("form.text-composer textarea")
    await expect(composer).to_be_enabled(timeout=10_000)
    await composer.fill("Het komt morgen tussen 9 en 12 uur.")
    await composer.press("Enter")
    line = pop.locator(".texts .chat-line.from-agent")
    await expect(line).to_contain_text("Het komt morgen", timeout=10_000)
    await expect(line.locator(".text-state")).to_have_text("sent", timeout=10_000)
    [(_, form)] = [r for r in api.requests if r[0].endswith("/Messages.json")]
    assert form["To"] == ["+31612345678"]
    from sqlalchemy import select

    from console.models import TextMessage

    async with live.server.config.app.state.wiring.ctx.db.reading() as session:
        sid = await session.scalar(select(TextMessage.sid).where(TextMessage.direction == "out"))
    assert sid is not None
    await twilio(live, "/integrations/twilio/messaging/status", {"MessageSid": sid, "MessageStatus": "delivered"})
    await expect(line.locator(".text-state")).to_have_text("delivered", timeout=10_000)
    await twilio(live, "/integrations/twilio/messaging/status", {"MessageSid": sid, "MessageStatus": "sent"})
    await page.screenshot(path=str(tmp_path / "sms.png"))
    await expect(line.locator(".text-state")).to_have_text("delivered")


async def test_a_whatsapp_message_pops_as_whatsapp(browser: Browser, server: tuple[LiveServer, FakeApi]) -> None:
    live, _ = server
    page = await available(browser, live)
    await twilio(live, "/integrations/twilio/messaging", {
        "MessageSid": new_sid("SM"), "From": "whatsapp:+31699999999", "To": "whatsapp:+14155238886",
        "Body": "Hoi, is de winkel zaterdag open?"})
    pop = page.locator("#screen-pop .pop")
    await expect(pop.locator(".badge")).to_have_text("WhatsApp", timeout=10_000)
    await expect(pop).to_contain_text("Hoi, is de winkel zaterdag open?")
    await expect(pop).to_contain_text("free text until")


async def test_an_asterisk_queue_call_pops_when_it_rings_the_agent(browser: Browser, sqlite_url: str,
                                                                   tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    await add_customer(db, "Jan Jansen", phones=("0612345678",), company="Jansen Installatietechniek")
    await db.close()
    peer = AmiPeer(secret=SECRET)
    await peer.start()
    settings = make_settings(sqlite_url, tmp_path, asterisk_url=f"ami://console:{SECRET}@127.0.0.1:{peer.port}")
    try:
        with LiveServer(settings) as live:
            await peer.logged_in()
            page = await available(browser, live)
            await peer.play("queue_call", "join", "ring")
            pop = page.locator("#screen-pop .pop")
            await expect(pop.locator(".customer-name")).to_have_text("Jan Jansen", timeout=10_000)
            await expect(pop.locator(".pop-state")).to_contain_text("Ringing")
            await peer.play("queue_call", "connect")
            await expect(page.locator("#current-conversation")).to_contain_text("+31 6 12345678", timeout=10_000)
            await peer.play("queue_call", "hangup")
            await expect(page.locator("form.wrap-up")).to_have_count(1, timeout=10_000)
    finally:
        await peer.stop()
