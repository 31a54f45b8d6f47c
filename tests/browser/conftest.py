from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

import pytest

from tests.conftest import missing

CHROMIUM = os.environ.get("CONSOLE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"Chromium at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def signed_in_page(browser: object, base_url: str, email: str, password: str, *,
                         init_script: str | None = None, watch: Callable[[object], None] | None = None,
                         viewport: tuple[int, int] = (1280, 860)) -> object:
    """A new page logged in through the form, with its live socket connected.

    `init_script` runs in every document before the page's own scripts; `watch` gets the page
    before it loads anything (to listen to its console, say).
    """
    from playwright.async_api import Browser, expect

    assert isinstance(browser, Browser)
    page = await browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    if init_script is not None:
        await page.add_init_script(init_script)
    if watch is not None:
        watch(page)
    await page.goto(base_url + "/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await expect(page.locator("#connection")).to_have_class("connection connected", timeout=10_000)
    return page
