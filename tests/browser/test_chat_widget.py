"""In Chromium: a visitor chats from a website on another origin than the console, while an agent
answers in a second browser; markup in what they type never runs; a reload brings the chat back."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from console import chat
from console.db import Database
from console.models import CannedResponse
from tests.browser.conftest import signed_in_page
from tests.conftest import LiveServer, free_port, make_settings
from tests.helpers import PASSWORD, add_agent

pytestmark = pytest.mark.browser

XSS = 'Hallo <img src=x onerror="alert(1)"><script>alert(2)</script>'


class Shop:
    """A website of the console's customer: its own origin, a page with the widget's one tag."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(directory))  # noqa: E731
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Shop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    (tmp_path / "shop").mkdir()
    with Shop(tmp_path / "shop") as site:
        yield site


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path, shop: Shop) -> object:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    async with db.transaction() as session:
        site, _ = await chat.configure_site(session, "Bakkerij", chat.SiteSettings(
            origins=[shop.url], greeting="Goedemiddag! Waar kunnen we mee helpen?"))
        key = site.key
        session.add(CannedResponse(title="Welkom", body="Goedemiddag {customer.first_name}, ik help u graag."))
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        # Another origin than the console's: localhost against the shop's 127.0.0.1.
        console = live.url.replace("127.0.0.1", "localhost")
        (tmp_path / "shop" / "index.html").write_text(
            '<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>Bakkerij</title>'
            '<style>button { background: hotpink !important; font-size: 40px }</style></head>'
            f'<body><h1>Bakkerij</h1><script src="{console}/chat/widget.js" data-site="{key}" async></script>'
            '</body></html>', encoding="utf-8")
        yield live


async def _visitor(browser: Browser, shop: Shop, dialogs: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1000, "height": 700}, locale="nl-NL")
    page = await context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    await page.goto(shop.url + "/index.html")
    return page


async def test_a_visitor_and_an_agent_chat_across_origins_and_a_reload_keeps_the_chat(
        browser: Browser, server: LiveServer, shop: Shop) -> None:
    dialogs: list[str] = []
    agent = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    await agent.click("#agent-status button[value=available]")
    visitor = await _visitor(browser, shop, dialogs)
    opener = visitor.get_by_role("button", name="Chat met ons")
    await expect(opener).to_be_visible(timeout=10_000)
    color = await opener.evaluate("b => getComputedStyle(b).backgroundColor")
    assert color != "rgb(255, 105, 180)", "the shop's styles do not reach the widget"
    await opener.click()
    window = visitor.get_by_role("dialog", name="Chat")
    await expect(window.get_by_role("log")).to_contain_text("Goedemiddag!", timeout=10_000)
    box = window.get_by_role("textbox", name="Je bericht")
    await expect(box).to_be_focused()
    await box.fill(XSS)
    await box.press("Enter")
    await expect(window.get_by_role("log")).to_contain_text("<script>alert(2)</script>", timeout=10_000)

    pop = agent.locator(".pop")
    await expect(pop.locator(".pop-state.ringing")).to_have_count(1, timeout=10_000)
    await expect(pop.locator(".chat-log")).to_contain_text('onerror="alert(1)"')
    await expect(pop.locator(".chat-composer textarea")).to_be_disabled()
    await agent.click("button.accept")
    composer = pop.locator(".chat-composer textarea")
    await expect(composer).to_be_enabled(timeout=10_000)
    mine = window.get_by_role("log").locator("li.mine[data-id]")
    await expect(mine).to_contain_text("gelezen", timeout=10_000)  # the agent's page shows it: read
    await box.press_sequentially("Nog iets")  # the visitor types again: the agent sees it
    await expect(pop.locator(".chat-typing")).to_have_text("The visitor is typing…", timeout=10_000)
    await composer.press_sequentially("Een moment")  # and the other way round
    await expect(window.get_by_role("status")).to_contain_text("Anna de Vries typt", timeout=10_000)
    await composer.fill("")
    await composer.fill("Goedemiddag! Uw taart staat klaar: https://bakkerij.example/ophalen")
    await composer.press("Enter")
    await expect(composer).to_have_value("", timeout=10_000)

    answer = window.get_by_role("log").locator("li", has_text="Uw taart staat klaar")
    await expect(answer).to_have_count(1, timeout=10_000)
    await expect(answer).to_contain_text("Anna de Vries")
    link = answer.get_by_role("link")
    assert await link.get_attribute("rel") == "noopener noreferrer nofollow ugc"
    await expect(pop.locator(".chat-line.from-agent .chat-mark")).to_have_text("read", timeout=10_000)
    await box.fill("")

    await visitor.reload()  # the chat comes back: each message once, in order, the window open
    window = visitor.get_by_role("dialog", name="Chat")
    lines = window.get_by_role("log").locator("li[data-id]")
    await expect(lines).to_have_count(2, timeout=10_000)
    assert "alert(2)" in (await lines.nth(0).inner_text()) and "taart" in (await lines.nth(1).inner_text())
    await expect(agent.locator(".pop .chat-log li")).to_have_count(2)

    # The visitor ends the chat: Anna reads it and goes to wrap-up; the visitor may rate the chat
    # and take its transcript along.
    await window.get_by_role("button", name="De chat beëindigen").click()
    await expect(window.get_by_role("log")).to_contain_text("Je hebt de chat beëindigd.", timeout=10_000)
    wrap_up = agent.locator("form.wrap-up")
    await expect(wrap_up).to_be_visible(timeout=10_000)
    await expect(wrap_up).to_contain_text("visitor")  # who it was, never the site's key
    await expect(window.get_by_role("button", name="De chat beëindigen")).to_be_hidden()
    await window.get_by_role("radio", name="4 van 5 sterren").check()
    await window.get_by_role("textbox", name="Nog iets kwijt? (niet verplicht)").fill("<b>Snel</b> geholpen")
    await window.get_by_role("button", name="Beoordeling versturen").click()
    await expect(window.get_by_role("log")).to_contain_text("Dank je wel voor je beoordeling.", timeout=10_000)
    await expect(window.get_by_role("button", name="Beoordeling versturen")).to_be_hidden()
    async with visitor.expect_download() as waiting:
        await window.get_by_role("button", name="Gesprek downloaden").click()
    download = await waiting.value
    saved = Path(await download.path()).read_text(encoding="utf-8")
    assert download.suggested_filename.startswith("chat-") and download.suggested_filename.endswith(".txt")
    assert "Jij: Hallo <img" in saved and "Anna de Vries: Goedemiddag! Uw taart staat klaar" in saved
    assert saved.rstrip().endswith("Je hebt de chat beëindigd.")
    assert dialogs == [], "nothing a visitor typed ran as script"


async def test_a_site_that_may_not_use_the_chat_hears_why(browser: Browser, server: LiveServer, shop: Shop,
                                                           tmp_path: Path) -> None:
    page_html = (tmp_path / "shop" / "index.html").read_text(encoding="utf-8")
    (tmp_path / "shop" / "other.html").write_text(page_html.replace('data-site="', 'data-site="x'), encoding="utf-8")
    visitor = await _visitor(browser, shop, [])
    await visitor.goto(shop.url + "/other.html")
    await visitor.get_by_role("button", name="Chat met ons").click()
    window = visitor.get_by_role("dialog", name="Chat")
    await expect(window.get_by_role("log")).to_contain_text("niet ingesteld", timeout=10_000)


async def _chat_from(browser: Browser, shop: Shop, dialogs: list[str], first: str) -> Page:
    visitor = await _visitor(browser, shop, dialogs)
    opener = visitor.get_by_role("button", name="Chat met ons")
    await expect(opener).to_be_visible(timeout=10_000)
    await opener.click()
    box = visitor.get_by_role("dialog", name="Chat").get_by_role("textbox", name="Je bericht")
    await box.fill(first)
    await box.press("Enter")
    return visitor


async def test_an_operator_keeps_several_chats_apart_in_tabs_with_unread_counts_and_keys(
        browser: Browser, server: LiveServer, shop: Shop, tmp_path: Path) -> None:
    dialogs: list[str] = []
    agent = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    await agent.click("#agent-status button[value=available]")
    first = await _chat_from(browser, shop, dialogs, "Is de appeltaart er nog?")
    await expect(agent.locator(".pop .pop-state.ringing")).to_have_count(1, timeout=10_000)
    await agent.keyboard.press("a")
    await expect(agent.locator(".pop .chat-composer fieldset:not([disabled])")).to_have_count(1, timeout=10_000)
    await expect(agent.locator("#work-tabs")).to_be_hidden()  # one conversation: no tabs

    second = await _chat_from(browser, shop, dialogs, "Bezorgen jullie ook in Gouda?")
    ringing = agent.locator("#work-tabs .work-tab.ringing")
    await expect(ringing).to_have_count(1, timeout=10_000)  # the offer shows beside the open chat
    await expect(agent.locator(".pop:has(> .pop-state.ringing)")).to_be_visible()
    await agent.keyboard.press("a")
    tabs = agent.locator("#work-tabs [role=tab]")
    await expect(tabs).to_have_count(2, timeout=10_000)
    await expect(agent.locator("#work-tabs .ringing")).to_have_count(0)
    # The chat just accepted is in front, the other behind its tab.
    front = agent.locator(".pop:visible")
    await expect(front).to_have_count(1)
    await expect(front.locator(".chat-log")).to_contain_text("Gouda")
    chosen = agent.locator("#work-tabs [aria-selected=true]")
    assert await chosen.get_attribute("aria-controls") == await front.get_attribute("id")
    await expect(chosen.locator(".badge")).to_have_text("Chat")

    # The first visitor writes while the operator is in the second chat: the count and the wait show.
    box = first.get_by_role("dialog", name="Chat").get_by_role("textbox", name="Je bericht")
    await box.fill("Ik kom hem om vier uur halen")
    await box.press("Enter")
    behind = agent.locator("#work-tabs [aria-selected=false]")
    # One unread: the first message was read while that chat was in front.
    await expect(behind.locator(".unread")).to_have_text("1", timeout=10_000)
    await expect(behind.locator("time.timer")).to_have_count(1)
    assert "(1)" in await agent.title()
    mine = first.get_by_role("dialog", name="Chat").get_by_role("log").locator("li.mine[data-id]")
    await expect(mine).to_have_count(2)
    await expect(mine.last).not_to_contain_text("gelezen")  # behind its tab: not read
    await agent.screenshot(path=str(tmp_path / "chat-tabs.png"))

    # Alt+Down from the composer: the other chat in front, its composer ready, its messages read.
    await front.locator(".chat-composer textarea").focus()
    await agent.keyboard.press("Alt+ArrowDown")
    front = agent.locator(".pop:visible")
    await expect(front.locator(".chat-log")).to_contain_text("om vier uur")
    await expect(front.locator(".chat-composer textarea")).to_be_focused()
    await expect(agent.locator("#work-tabs .unread")).to_have_count(0, timeout=10_000)
    await expect(mine.last).to_contain_text("gelezen", timeout=10_000)  # read once it was in front
    assert "(" not in await agent.title()
    # N writes a note on the chat in front, not on the other.
    await agent.keyboard.press("Escape")
    await agent.keyboard.press("n")
    note = agent.locator(".current-item:visible [data-focus=n]")
    await expect(note).to_be_focused()
    await expect(agent.locator(".current-item:visible")).to_have_count(1)
    # A click on the other tab brings it back.
    await agent.locator("#work-tabs [aria-selected=false]").click()
    await expect(agent.locator(".pop:visible .chat-log")).to_contain_text("Gouda")
    await expect(agent.locator(".pop:visible .chat-composer textarea")).to_be_focused()
    assert second is not None and dialogs == []


async def test_with_nobody_to_answer_the_visitor_leaves_a_message_and_the_agent_finds_it_later(
        browser: Browser, server: LiveServer, shop: Shop) -> None:
    dialogs: list[str] = []
    visitor = await _visitor(browser, shop, dialogs)  # Anna is not logged in: nobody could answer
    await visitor.get_by_role("button", name="Chat met ons").click()
    window = visitor.get_by_role("dialog", name="Chat")
    await expect(window.get_by_role("log")).to_contain_text("Er kan nu niemand antwoorden", timeout=10_000)
    details = window.get_by_role("group", name="Je gegevens")
    await expect(details).to_be_visible()
    box = window.get_by_role("textbox", name="Je bericht")
    await details.get_by_role("textbox", name="Naam").fill('<img src=x onerror="alert(3)">Piet')
    await box.fill("Kunnen jullie een taart bezorgen op zaterdag?")
    await box.press("Enter")
    await expect(window.get_by_role("status")).to_have_text("Geef je e-mailadres, zodat we je kunnen antwoorden.")
    await expect(box).to_have_value("Kunnen jullie een taart bezorgen op zaterdag?")  # nothing lost
    await details.get_by_role("textbox", name="E-mailadres").fill("piet@jansen.example")
    await box.press("Enter")
    await expect(window.get_by_role("log")).to_contain_text("We antwoorden zo snel mogelijk per e-mail",
                                                            timeout=10_000)
    await expect(details).to_be_hidden()

    agent = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    await agent.click("#agent-status button[value=available]")
    pop = agent.locator(".pop")
    await expect(pop.locator(".chat-log")).to_contain_text("taart bezorgen op zaterdag", timeout=10_000)
    await expect(pop.locator(".chat-visitor")).to_contain_text('<img src=x onerror="alert(3)">Piet')
    await expect(pop.locator(".chat-visitor")).to_contain_text("piet@jansen.example")
    await expect(pop.locator(".chat-visitor .identity")).to_have_text("Typed by the visitor, not verified")
    await expect(pop.locator(".chat-log")).to_contain_text("Left while nobody could answer")
    await agent.click("button.accept")
    composer = pop.locator(".chat-composer textarea")
    await expect(composer).to_be_enabled(timeout=10_000)
    pick = pop.locator(".chat-composer select.canned-pick")
    await expect(pick.locator("option", has_text="Welkom")).to_have_count(1, timeout=10_000)
    await pick.select_option(label="Welkom")  # filled in for the customer, as text, not sent
    # The first word of the name they typed: markup, kept as text.
    await expect(composer).to_have_value("Goedemiddag <img, ik help u graag.", timeout=10_000)
    await expect(composer).to_be_focused()
    await expect(pop.locator(".chat-line.from-agent")).to_have_count(0)
    assert dialogs == []


def _png() -> bytes:
    """A real 8x8 picture, so both browsers draw it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\xd9\x77\x06" * 8 for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


async def test_a_visitor_sends_a_picture_and_the_agent_a_pdf_and_a_page_posing_as_a_picture_is_refused(
        browser: Browser, server: LiveServer, shop: Shop) -> None:
    dialogs: list[str] = []
    agent = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    await agent.click("#agent-status button[value=available]")
    visitor = await _chat_from(browser, shop, dialogs, "Zo ziet de taart eruit:")
    window = visitor.get_by_role("dialog", name="Chat")
    await expect(window.get_by_role("log").locator("li.mine[data-id]")).to_have_count(1, timeout=10_000)
    picker = window.locator("input[type=file]")
    await picker.set_input_files({"name": "taart.png", "mimeType": "image/png", "buffer": _png()})
    sent = window.get_by_role("log").get_by_role("img", name="taart.png")
    await expect(sent).to_be_visible(timeout=10_000)
    assert await sent.evaluate("img => img.naturalWidth") == 8, "the picture loads from the console"
    await picker.set_input_files({"name": "taart.png", "mimeType": "image/png",
                                  "buffer": b'<html><body><script>alert("x")</script></body></html>'})
    await expect(window.get_by_role("log")).to_contain_text("Alleen foto's (PNG, JPEG, GIF, WebP) en pdf-documenten",
                                                            timeout=10_000)

    pop = agent.locator(".pop")
    await agent.click("button.accept")
    picture = pop.locator(".chat-file img[alt='taart.png']")
    await expect(picture).to_be_visible(timeout=10_000)
    assert await picture.evaluate("img => img.naturalWidth") == 8
    await expect(pop.locator(".chat-line")).to_have_count(2)  # the refused page never arrived
    await pop.locator("input[data-chat-file]").set_input_files(
        {"name": "factuur.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n%%EOF\n"})
    link = window.get_by_role("log").get_by_role("link", name="factuur.pdf")
    await expect(link).to_be_visible(timeout=10_000)
    await expect(pop.locator(".chat-line.from-agent .chat-file")).to_contain_text("factuur.pdf")
    await pop.locator("input[data-chat-file]").set_input_files(
        {"name": "virus.pdf", "mimeType": "application/pdf", "buffer": b"MZ\x90\x00"})
    await expect(agent.locator("#flash")).to_contain_text("Only pictures (PNG, JPEG, GIF, WebP) and PDF",
                                                          timeout=10_000)
    assert dialogs == []


async def test_a_signed_customer_is_recognised_a_forged_one_refused_and_after_hours_the_widget_says_so(
        browser: Browser, server: LiveServer, shop: Shop, tmp_path: Path, sqlite_url: str) -> None:
    from tests.helpers import add_customer

    db = Database(sqlite_url)
    await add_customer(db, "Jan de Bakker", emails=("jan@bakker.example",))
    async with db.transaction() as session:
        members, _ = await chat.configure_site(session, "Members", chat.SiteSettings(
            origins=[shop.url], identity_required=True))
        far = (datetime.now(UTC).hour + 12) % 24  # open one minute a day, half a day from now
        closed, _ = await chat.configure_site(session, "Closed", chat.SiteSettings(
            origins=[shop.url], hours=f"mon-sun {far:02d}:00-{far:02d}:01", timezone="UTC"))
        good = chat.signature(members, "jan@bakker.example")
        members_key, closed_key = members.key, closed.key
    await db.close()
    console = server.url.replace("127.0.0.1", "localhost")

    def tag(key: str, identity: str = "") -> str:
        return (f'<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>Bakkerij</title></head><body>'
                f'<script src="{console}/chat/widget.js" data-site="{key}"{identity} async></script></body></html>')

    folder = tmp_path / "shop"
    (folder / "signed.html").write_text(tag(members_key, f' data-identifier="jan@bakker.example" '
                                                         f'data-identifier-hash="{good}"'), encoding="utf-8")
    (folder / "forged.html").write_text(tag(members_key, ' data-identifier="jan@bakker.example" '
                                                         f'data-identifier-hash="{"0" * 64}"'), encoding="utf-8")
    (folder / "closed.html").write_text(tag(closed_key), encoding="utf-8")

    agent = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD, viewport=(1366, 768))
    await agent.click("#agent-status button[value=available]")
    dialogs: list[str] = []
    forged = await _visitor(browser, shop, dialogs)
    await forged.goto(shop.url + "/forged.html")
    await forged.get_by_role("button", name="Chat met ons").click()
    await expect(forged.get_by_role("dialog", name="Chat").get_by_role("log")).to_contain_text(
        "Deze website kon niet bevestigen wie je bent", timeout=10_000)

    signed = await _visitor(browser, shop, dialogs)
    await signed.goto(shop.url + "/signed.html")
    await signed.get_by_role("button", name="Chat met ons").click()
    box = signed.get_by_role("dialog", name="Chat").get_by_role("textbox", name="Je bericht")
    await box.fill("Is mijn bestelling al onderweg?")
    await box.press("Enter")
    pop = agent.locator(".pop")
    await expect(pop.locator(".chat-visitor .identity")).to_have_text("Verified by the website", timeout=10_000)
    await expect(pop).to_contain_text("Jan de Bakker")  # their customer picture pops

    late = await _visitor(browser, shop, dialogs)
    await late.goto(shop.url + "/closed.html")
    await late.get_by_role("button", name="Chat met ons").click()
    window = late.get_by_role("dialog", name="Chat")
    await expect(window.get_by_role("log")).to_contain_text("We zijn nu gesloten", timeout=10_000)
    await expect(window.get_by_role("group", name="Je gegevens")).to_be_visible()
    assert dialogs == []
