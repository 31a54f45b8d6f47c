"""The reports page and its CSV tables, as a supervisor reads them: numbers, errors in words, and
cells a spreadsheet must not run."""

from __future__ import annotations

from pathlib import Path

import httpx

from console import conversations, rollups
from console.db import Database
from console.models import Channel, Queue
from console.ports import Context, NullNotifier
from tests.conftest import make_settings, served
from tests.helpers import add_agent, log_in


async def test_a_supervisor_reads_a_report_and_takes_its_tables_as_csv(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    try:
        await add_agent(db, "anna@x.nl", "Anna")
        await add_agent(db, "sophie@x.nl", "Sophie", role="supervisor")
        async with db.transaction() as session:
            session.add(Queue(name="=HYPERLINK(\"http://evil.example\")"))
        ctx = Context(db, NullNotifier(), "NL")
        await conversations.arrive(ctx, channel=Channel.CALL, external_id="r1", from_address="0612345678",
                                   to_address="", queue="=HYPERLINK(\"http://evil.example\")")
        await rollups.sweep(db, "Europe/Amsterdam")
    finally:
        await db.close()
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client):
        assert isinstance(client, httpx.AsyncClient)
        await log_in(client, "anna@x.nl")
        assert (await client.get("/reports")).status_code == 403
        client.cookies.clear()
        await log_in(client, "sophie@x.nl")
        page = await client.get("/reports")
        assert page.status_code == 200
        assert "<svg" in page.text and "Per queue" in page.text and "=HYPERLINK(&#34;" in page.text
        assert "<script" not in page.text.split("<body", 1)[1], "no chart script: the chart is drawn on the server"
        wrong = await client.get("/reports", params={"from": "7 december"})
        assert wrong.status_code == 422 and "Give the date as YYYY-MM-DD" in wrong.text
        table = await client.get("/reports/queue.csv")
        assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
        assert table.headers["content-disposition"].startswith('attachment; filename="report-queue-')
        lines = table.text.splitlines()
        assert lines[0].startswith("queue,offered,answered")
        assert lines[1].startswith("\"'=HYPERLINK(\"\"http://evil.example\"\")\",1,0"), lines[1]
        assert (await client.get("/reports/everything.csv")).status_code == 404
