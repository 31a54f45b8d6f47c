"""The app's error answers: a shed write says so in the agent's language, with Retry-After."""

from __future__ import annotations

from pathlib import Path

from console.db import Database
from tests.conftest import make_settings, served
from tests.helpers import add_agent, log_in


async def test_an_agent_action_shed_by_a_full_embedded_writer_says_try_again(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201", language="nl")
    await db.close()
    async with served(make_settings(sqlite_url, tmp_path, write_wait=0.1)) as (app, client):
        token = await log_in(client, "anna@x.nl")
        held: Database = app.state.wiring.ctx.db  # type: ignore[attr-defined]
        async with held.transaction():
            response = await client.post("/agent/status", data={"status": "available"},
                                         headers={"X-CSRF-Token": token, "HX-Request": "true"})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "probeer het zo opnieuw" in response.text, "the agent's language, read beside the writer"
