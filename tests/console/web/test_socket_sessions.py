"""A socket lives no longer than the session that opened it: a new role (or a logout everywhere,
a new second factor) closes it with 1008 within seconds, and at the session's lifetime or idle
end it closes with 1013, so the page reconnects and the handshake checks the session again.
"""

from __future__ import annotations

import time
from pathlib import Path

from console import config
from console.db import Database
from tests.conftest import LiveServer, make_settings
from tests.console.web.test_live import agent_session, close_code, frame_with, socket
from tests.helpers import add_agent


async def _anna(url: str, role: str = "agent") -> None:
    db = Database(url)
    try:
        await add_agent(db, "anna@x.nl", "Anna", extension="201", role=role)
    finally:
        await db.close()


async def test_a_new_role_closes_the_open_socket(sqlite_url: str, tmp_path: Path) -> None:
    await _anna(sqlite_url, role="supervisor")
    # presence_grace 3: the node checks its sockets' sessions every second.
    with LiveServer(make_settings(sqlite_url, tmp_path, presence_grace=3)) as server:
        async with agent_session(server) as (client, _), socket(server, client) as ws:
            await frame_with(ws, 'id="agent-status"')
            db = Database(sqlite_url)
            async with db.transaction() as session:
                await config.configure_agent(session, "anna@x.nl", role="agent")
            await db.close()
            started = time.monotonic()
            assert await close_code(ws) == 1008, "no supervisor frames for someone who is no supervisor now"
            assert time.monotonic() - started < 4


async def test_a_socket_closes_when_its_session_times_out_and_cannot_come_back(sqlite_url: str,
                                                                                tmp_path: Path) -> None:
    await _anna(sqlite_url)
    with LiveServer(make_settings(sqlite_url, tmp_path, session_idle=2)) as server:
        async with agent_session(server) as (client, _):
            async with socket(server, client) as ws:
                await frame_with(ws, 'id="agent-status"')
                assert await close_code(ws) == 1013, "the page reconnects, which checks the session"
            async with socket(server, client) as again:
                assert await close_code(again) == 1008, "the session has ended: signed out"
