"""The agent page's weight: what a first visit transfers, compressed, and what later visits keep."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from console.db import Database
from tests.conftest import make_settings, served
from tests.helpers import add_agent, log_in

BASE = "http://testserver"
FIRST_LOAD_BUDGET = 100_000  # bytes transferred for the agent page and everything it loads
ASSET = re.compile(r'(?:src|href)="(/static/[^"]+)"')


@pytest.fixture
async def client(sqlite_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna", extension="201")
    await db.close()
    async with served(make_settings(sqlite_url, tmp_path), BASE, headers={"Accept-Encoding": "gzip"}) as (_, client):
        yield client


async def test_the_agent_page_first_load_stays_within_its_budget(client: httpx.AsyncClient) -> None:
    await log_in(client, "anna@x.nl")
    page = await client.get("/")
    assert page.headers.get("content-encoding") == "gzip"
    transferred = page.num_bytes_downloaded
    assets = ASSET.findall(page.text)
    assert len(assets) == 4, assets
    for url in assets:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert "?v=" in url and response.headers["cache-control"] == "public, max-age=31536000, immutable", url
        assert response.headers.get("content-encoding") == "gzip", url
        transferred += response.num_bytes_downloaded
    print(f"first load: {transferred} bytes transferred")
    assert transferred <= FIRST_LOAD_BUDGET, f"{transferred} bytes for the first load"


async def test_a_static_url_without_its_version_is_checked_every_time(client: httpx.AsyncClient) -> None:
    response = await client.get("/static/console.js")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-cache"
    assert (await client.get("/static/nothing.js?v=1")).status_code == 404
