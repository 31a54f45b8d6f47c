"""Export and erasure as a supervisor meets them over HTTP: a readable page and a JSON download that
no cache keeps, names escaped, erasure confirmed and visible afterwards; agents are refused."""

from __future__ import annotations

from pathlib import Path

from console.db import Database
from tests.conftest import make_settings, served
from tests.helpers import add_agent, add_customer, log_in

HX = {"HX-Request": "true"}
NAME = 'Jan <script>alert("x")</script> Jansen'


async def _prepare(url: str) -> int:
    db = Database(url)
    try:
        await add_agent(db, "anna@x.nl", "Anna", extension="201")
        await add_agent(db, "sanne@x.nl", "Sanne", role="supervisor", language="nl")
        return await add_customer(db, NAME, phones=("0612345678",), emails=("jan@jansen.nl",))
    finally:
        await db.close()


async def test_a_supervisor_reads_downloads_and_erases_a_customer(sqlite_url: str, tmp_path: Path) -> None:
    customer = await _prepare(sqlite_url)
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client):
        token = await log_in(client, "sanne@x.nl")  # type: ignore[arg-type]
        page = await client.get(f"/customers/{customer}/export")  # type: ignore[attr-defined]
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "<script>alert" not in page.text and "Jan &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Jansen" in \
            page.text.replace("&quot;", "&#34;")
        assert "0612345678" in page.text and "jan@jansen.nl" in page.text
        assert "Persoonsgegevens" in page.text, "Sanne reads Dutch"

        download = await client.get(f"/customers/{customer}/export.json")  # type: ignore[attr-defined]
        assert download.status_code == 200 and download.headers["cache-control"] == "no-store"
        assert download.headers["content-disposition"] == f'attachment; filename="customer-{customer}.json"'
        assert download.json()["customer"]["name"] == NAME, "the download holds the data as it is, unescaped"

        panel = await client.post(f"/customers/{customer}/open", headers={"X-CSRF-Token": token, **HX})  # type: ignore[attr-defined]
        assert panel.status_code == 204
        erased = await client.post(f"/customers/{customer}/erase", headers={"X-CSRF-Token": token, **HX})  # type: ignore[attr-defined]
        assert erased.status_code == 200 and "Klant #" in erased.text and "gewist" in erased.text
        again = await client.post(f"/customers/{customer}/erase", headers={"X-CSRF-Token": token, **HX})  # type: ignore[attr-defined]
        assert again.status_code == 409 and "al gewist" in again.text

        after = await client.get(f"/customers/{customer}/export.json")  # type: ignore[attr-defined]
        record = after.json()
        assert record["customer"]["name"] == "Erased customer" and record["customer"]["erased_at"]
        assert "0612345678" not in after.text and "jan@jansen.nl" not in after.text and "Jansen" not in after.text
        shown = await client.get(f"/customers/{customer}/export")  # type: ignore[attr-defined]
        assert "op verzoek gewist" in shown.text


async def test_an_agent_can_neither_export_nor_erase(sqlite_url: str, tmp_path: Path) -> None:
    customer = await _prepare(sqlite_url)
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client):
        token = await log_in(client, "anna@x.nl")  # type: ignore[arg-type]
        for path in (f"/customers/{customer}/export", f"/customers/{customer}/export.json"):
            refused = await client.get(path, headers=HX)  # type: ignore[attr-defined]
            assert refused.status_code == 403 and "Only supervisors" in refused.text
            assert "Jansen" not in refused.text
        erase = await client.post(f"/customers/{customer}/erase", headers={"X-CSRF-Token": token, **HX})  # type: ignore[attr-defined]
        assert erase.status_code == 403 and "Only supervisors can erase" in erase.text
        opened = await client.post(f"/customers/{customer}/open", headers={"X-CSRF-Token": token, **HX})  # type: ignore[attr-defined]
        assert opened.status_code == 204
        page = await client.get("/")  # type: ignore[attr-defined]
        assert 'id="customer-panel"' in page.text and "Jan &lt;script&gt;" in page.text, "the customer is open"
        assert "/export" not in page.text and "/erase" not in page.text, "no export or erase for agents"


async def test_a_supervisor_finds_export_and_erase_on_the_customer_page(sqlite_url: str, tmp_path: Path) -> None:
    customer = await _prepare(sqlite_url)
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client):
        token = await log_in(client, "sanne@x.nl")  # type: ignore[arg-type]
        await client.post(f"/customers/{customer}/open", headers={"X-CSRF-Token": token, **HX})  # type: ignore[attr-defined]
        page = await client.get("/")  # type: ignore[attr-defined]
        assert f'href="/customers/{customer}/export"' in page.text
        assert f'hx-post="/customers/{customer}/erase"' in page.text
        assert 'hx-confirm="Deze klant wissen?' in page.text, "asked first, in Sanne's language"


async def test_an_export_opened_without_a_session_goes_to_the_login(sqlite_url: str, tmp_path: Path) -> None:
    customer = await _prepare(sqlite_url)
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client):
        page = await client.get(f"/customers/{customer}/export", headers={"Accept": "text/html"})  # type: ignore[attr-defined]
        assert page.status_code == 303 and page.headers["location"] == "/login"
        api = await client.get(f"/customers/{customer}/export.json")  # type: ignore[attr-defined]
        assert api.status_code == 401, "a client that is no browser is told, not redirected"


async def test_an_export_opened_from_another_site_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    customer = await _prepare(sqlite_url)
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client):
        await log_in(client, "sanne@x.nl")  # type: ignore[arg-type]
        for path in (f"/customers/{customer}/export", f"/customers/{customer}/export.json"):
            refused = await client.get(path, headers={"Sec-Fetch-Site": "cross-site"})  # type: ignore[attr-defined]
            assert refused.status_code == 403 and "Jansen" not in refused.text
        db = Database(sqlite_url)
        try:
            async with db.reading() as session:
                from sqlalchemy import func, select

                from console.models import AuditEvent

                exports = await session.scalar(select(func.count()).select_from(AuditEvent).where(
                    AuditEvent.action == "export"))
        finally:
            await db.close()
        assert exports == 0, "a link on another site records no export in the supervisor's name"
