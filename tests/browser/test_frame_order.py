"""In Chromium, with the page's own script: frames from two nodes in any order end at the newest state.

Frames are handed to the page's frame handler (what the socket does) in the orders two nodes can
produce: a removal before the insert it removes, an older state line after a newer one, a part
before the pop it belongs to, and several changes of one pop in a single frame.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from console.db import Database
from tests.browser.conftest import signed_in_page
from tests.conftest import LiveServer, make_settings
from tests.helpers import PASSWORD, add_agent

pytestmark = pytest.mark.browser


@pytest.fixture
async def server(sqlite_url: str, tmp_path: Path) -> object:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    await db.close()
    with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
        yield live


def pop(conversation: int, version: int, state: str = "Ringing", state_version: int | None = None) -> str:
    v = state_version if state_version is not None else version
    return (f'<article id="pop-{conversation}" class="pop" data-v="{version}" data-into="#screen-pop" '
            f'data-order="1-{conversation:012d}"><div id="pop-{conversation}-state" class="pop-state" data-v="{v}">'
            f'<span class="state">{state}</span></div></article>')


def state(conversation: int, version: int, text: str) -> str:
    return (f'<div id="pop-{conversation}-state" class="pop-state" data-v="{version}">'
            f'<span class="state">{text}</span></div>')


def removal(conversation: int, version: int) -> str:
    return f'<div id="pop-{conversation}" data-v="{version}" data-delete></div>'


async def deliver(page: Page, *frames: str) -> None:
    for frame in frames:
        await page.evaluate("(html) => window.consoleFrames.apply(html, document.getElementById('live'))", frame)


async def test_frames_in_any_order_leave_the_newest_state(browser: Browser, server: LiveServer) -> None:
    page = await signed_in_page(browser, server.url, "anna@x.nl", PASSWORD)
    assert isinstance(page, Page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await expect(page.locator("#ws-cursor")).not_to_have_attribute("content", "", timeout=10_000)

    # Node B's removal overtakes node A's insert: the pop must not come back.
    await deliver(page, removal(901, 12), pop(901, 10))
    await expect(page.locator("#pop-901")).to_have_count(0)
    # A newer state line, then an older one arriving late: the newer stays.
    await deliver(page, pop(902, 20), state(902, 25, "In conversation"), state(902, 21, "Ringing"))
    await expect(page.locator("#pop-902-state")).to_have_text("In conversation")
    # The state line before its pop: it waits, and wins over the pop's older one.
    await deliver(page, state(903, 35, "In conversation"), pop(903, 30))
    await expect(page.locator("#pop-903-state")).to_have_text("In conversation")
    # One frame holding an offer and its withdrawal (one batch on a busy node): nothing stays.
    await deliver(page, pop(904, 40) + removal(904, 41))
    await expect(page.locator("#pop-904")).to_have_count(0)
    # One frame holding a withdrawal and a newer offer of the same conversation: it is there.
    await deliver(page, pop(905, 50))
    await deliver(page, removal(905, 51) + pop(905, 52))
    await expect(page.locator("#pop-905")).to_have_count(1)
    # Inserted in order, whatever the order of arrival.
    ids = await page.locator("#screen-pop > .pop").evaluate_all("(els) => els.map((e) => e.id)")
    assert ids == ["pop-902", "pop-903", "pop-905"], ids
    assert errors == []
