"""The websocket against a real uvicorn: pops arrive, refusals close with 1008, missed frames replay."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from console.db import Database
from console.models import Tier
from tests.conftest import CTI_TOKEN, LiveServer, make_settings
from tests.helpers import add_agent, add_customer, log_in

CURSOR = re.compile(r'<meta id="ws-cursor" name="ws-cursor" content="([^"]+)"')


async def prepare(server: LiveServer, database_url: str) -> None:
    db = Database(database_url)
    try:
        owner = await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
        await add_customer(db, "Jan <b>Jansen</b>", phones=("0612345678",), company="Jansen & Zonen", tier=Tier.A,
                           owner_id=owner, lifetime_value="125000")
    finally:
        await db.close()


@asynccontextmanager
async def agent_session(server: LiveServer) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        token = await log_in(client, "anna@x.nl")
        yield client, token


def cookie_header(client: httpx.AsyncClient) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)


@asynccontextmanager
async def socket(server: LiveServer, client: httpx.AsyncClient, since: str | None = None, view: str | None = None
                 ) -> AsyncIterator[ClientConnection]:
    url = server.ws_url + "/ws" + (f"?since={since}" if since else "") + (f"?view={view}" if view else "")
    async with connect(url, origin=server.url, additional_headers={"Cookie": cookie_header(client)}) as ws:  # type: ignore[arg-type]
        yield ws


async def frame_with(ws: ClientConnection, text: str, timeout: float = 10) -> str:
    """Wait for the frame that contains `text`, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no frame with {text!r} within {timeout} s")
        frame = await asyncio.wait_for(ws.recv(), remaining)
        assert isinstance(frame, str)
        if text in frame:
            return frame


async def close_code(ws: ClientConnection) -> int | None:
    """The code the server closed the socket with, waiting for it with a deadline."""
    with pytest.raises(ConnectionClosed) as closed:
        await frame_with(ws, "no such frame: only the close is expected", timeout=5)
    return closed.value.rcvd.code if closed.value.rcvd else None


async def post_call(client: httpx.AsyncClient, call_id: str, number: str = "06-12345678", **extra: str) -> dict:
    response = await client.post(f"/integrations/cti/{CTI_TOKEN}", data={
        "event": "newCall", "from": number, "to": "0201234567", "direction": "in", "callId": call_id, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_an_available_agent_receives_the_screen_pop(live_server: LiveServer, database_url: str) -> None:
    await prepare(live_server, database_url)
    async with agent_session(live_server) as (client, token), socket(live_server, client) as ws:
        snapshot = await frame_with(ws, 'id="agent-status"')
        assert CURSOR.search(snapshot), "every frame carries the stream cursor"
        await client.post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": token})
        await frame_with(ws, "status-available")
        reply = await post_call(client, "ws-1")
        assert reply["action"] == "transfer" and reply["target"] == "201"
        pop = await frame_with(ws, "pop-")
        assert "Jan &lt;b&gt;Jansen&lt;/b&gt;" in pop and "<b>Jansen" not in pop, "names are escaped"
        assert "Jansen &amp; Zonen" in pop and "Anna de Vries" in pop and "125,000.00" in pop
        assert 'hx-swap-oob' in pop and CURSOR.search(pop)


async def test_hangup_before_answer_withdraws_the_pop(live_server: LiveServer, database_url: str) -> None:
    await prepare(live_server, database_url)
    async with agent_session(live_server) as (client, _), socket(live_server, client) as ws:
        await frame_with(ws, 'id="agent-status"')
        await post_call(client, "ws-2", user="201")
        await frame_with(ws, "pop-")
        await client.post(f"/integrations/cti/{CTI_TOKEN}", data={"event": "hangup", "callId": "ws-2",
                                                                  "cause": "cancel"})
        withdrawn = await frame_with(ws, "data-delete")
        assert re.search(r'<div id="pop-\d+" data-v="\d+" data-delete>', withdrawn), "only the pop goes"
        assert 'id="screen-pop"' not in withdrawn, "a change, not the whole view"


async def test_frames_missed_while_disconnected_arrive_after_reconnect(live_server: LiveServer,
                                                                       database_url: str) -> None:
    await prepare(live_server, database_url)
    async with agent_session(live_server) as (client, _):
        async with socket(live_server, client) as ws:
            snapshot = await frame_with(ws, 'id="agent-status"')
            match = CURSOR.search(snapshot)
            assert match
            cursor = match.group(1)
        # While the socket is down two calls ring Anna.
        await post_call(client, "missed-1", user="201")
        await post_call(client, "missed-2", "0687654321", user="201")
        async with socket(live_server, client, since=cursor) as ws:
            first = await frame_with(ws, "pop-")
            second = await frame_with(ws, "pop-")
            assert first.count('<article id="pop-') == 1 and second.count('<article id="pop-') == 1
            assert "0612345678" not in second.replace(" ", ""), "each frame holds its own pop only"
            # Replay, not a snapshot: the cursors continue from the one we had.
            cursors = [CURSOR.search(f).group(1) for f in (first, second)]  # type: ignore[union-attr]
            assert cursors[0] != cursor and cursors[0] != cursors[1]


async def test_an_unknown_cursor_gets_a_full_snapshot(live_server: LiveServer, database_url: str) -> None:
    await prepare(live_server, database_url)
    async with agent_session(live_server) as (client, _):
        await post_call(client, "snap", user="201")
        async with socket(live_server, client, since="1.bogus-99") as ws:
            frame = await frame_with(ws, 'id="agent-status"')
            assert "pop-" in frame and 'id="current-conversation"' in frame


async def test_a_socket_without_a_session_is_closed_with_1008(live_server: LiveServer) -> None:
    async with connect(live_server.ws_url + "/ws", origin=live_server.url) as ws:  # type: ignore[arg-type]
        assert await close_code(ws) == 1008


async def test_a_socket_from_another_origin_is_closed_with_1008(live_server: LiveServer,
                                                                database_url: str) -> None:
    await prepare(live_server, database_url)
    async with agent_session(live_server) as (client, _):
        url = live_server.ws_url + "/ws"
        async with connect(url, origin="https://evil.example",  # type: ignore[arg-type]
                           additional_headers={"Cookie": cookie_header(client)}) as ws:
            assert await close_code(ws) == 1008


async def test_logout_closes_open_sockets_and_the_old_cookie_stops_working(live_server: LiveServer,
                                                                           database_url: str) -> None:
    await prepare(live_server, database_url)
    async with agent_session(live_server) as (client, token):
        stolen = cookie_header(client)
        async with socket(live_server, client) as ws:
            await frame_with(ws, 'id="agent-status"')
            await client.post("/logout", headers={"X-CSRF-Token": token})
            assert await close_code(ws) == 1008
        async with httpx.AsyncClient(base_url=live_server.url, headers={"Cookie": stolen}) as thief:
            assert (await thief.get("/")).status_code == 303
        async with connect(live_server.ws_url + "/ws", origin=live_server.url,  # type: ignore[arg-type]
                           additional_headers={"Cookie": stolen}) as ws:
            assert await close_code(ws) == 1008


async def test_a_cursor_from_another_agents_page_is_refused(live_server: LiveServer, database_url: str) -> None:
    await prepare(live_server, database_url)
    async with agent_session(live_server) as (client, _), socket(live_server, client, since="999.x-1") as ws:
        assert await close_code(ws) == 1008


async def test_an_agent_whose_socket_is_gone_for_the_grace_period_goes_offline(database_url: str,
                                                                               tmp_path: Path) -> None:
    from console.models import Agent, AgentStatus

    settings = make_settings(database_url, tmp_path, presence_grace=1.0, sweep_interval=0.1)
    with LiveServer(settings) as server:
        await prepare(server, database_url)
        async with agent_session(server) as (client, token):
            async with socket(server, client) as ws:
                await frame_with(ws, 'id="agent-status"')
                await client.post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": token})
                await frame_with(ws, "status-available")
                await asyncio.sleep(1.5)  # longer than the grace period, socket open: still present
                db = Database(database_url)
                async with db.transaction() as session:
                    assert (await session.get(Agent, 1)).status is AgentStatus.AVAILABLE  # type: ignore[union-attr]
            deadline = time.monotonic() + 10
            while True:
                async with db.transaction() as session:
                    status = (await session.get(Agent, 1)).status  # type: ignore[union-attr]
                if status is AgentStatus.OFFLINE:
                    break
                assert time.monotonic() < deadline, f"still {status} 10 s after the socket closed"
                await asyncio.sleep(0.1)
            await db.close()


async def test_a_call_posted_to_one_node_pops_on_the_socket_held_by_the_other(pg_url: str, tmp_path: Path) -> None:
    """Two nodes sharing PostgreSQL and Redis; the agent's socket is on node B, the call comes to A."""
    from tests.conftest import REDIS_URL, redis_prefix

    async with redis_prefix() as prefix:
        settings = make_settings(pg_url, tmp_path, redis_url=REDIS_URL, redis_prefix=prefix)
        with LiveServer(settings) as node_a, LiveServer(settings) as node_b:
            await prepare(node_a, pg_url)
            async with agent_session(node_a) as (client, token):
                async with socket(node_b, client) as ws:
                    await frame_with(ws, 'id="agent-status"')
                    await client.post("/agent/status", data={"status": "available"},
                                      headers={"X-CSRF-Token": token})
                    await frame_with(ws, "status-available")
                    reply = await post_call(client, "two-nodes")  # the client talks to node A
                    assert reply["target"] == "201"
                    pop = await frame_with(ws, "pop-")
                    assert "Jan &lt;b&gt;Jansen&lt;/b&gt;" in pop
                    cursor = CURSOR.search(pop)
                    assert cursor is not None
                # Node A honours the cursor node B handed out: a replay, not a snapshot.
                await post_call(client, "while-away", "0687654321", user="201")
                async with socket(node_a, client, since=cursor.group(1)) as ws:
                    replayed = await frame_with(ws, "pop-")
                    assert replayed.count('<article id="pop-') == 1 and 'id="pop-2"' in replayed


async def test_a_language_switched_on_one_node_is_what_the_other_renders_next(pg_url: str, tmp_path: Path) -> None:
    """Node A renders a push for Anna (and keeps her language); she switches to Dutch on node B;
    A's next push for her is Dutch at once, not after its copy of her ages out."""
    from tests.conftest import REDIS_URL, redis_prefix

    async with redis_prefix() as prefix:
        settings = make_settings(pg_url, tmp_path, redis_url=REDIS_URL, redis_prefix=prefix)
        with LiveServer(settings) as node_a, LiveServer(settings) as node_b:
            await prepare(node_a, pg_url)
            async with agent_session(node_a) as (client, token), socket(node_b, client) as ws:
                headers = {"X-CSRF-Token": token}
                await frame_with(ws, 'id="agent-status"')
                await client.post("/agent/status", data={"status": "available"}, headers=headers)
                assert "Available" in await frame_with(ws, "status-available")
                switched = await client.post(node_b.url + "/agent/language", data={"language": "nl"}, headers=headers)
                assert switched.status_code == 204
                await asyncio.sleep(0.3)  # the word travels over Redis
                await client.post("/agent/status", data={"status": "away", "reason": "Lunch"}, headers=headers)
                assert "Afwezig" in await frame_with(ws, "status-away")


async def test_metrics_count_sockets_frames_pops_and_queues(live_server: LiveServer, database_url: str) -> None:
    await prepare(live_server, database_url)
    async with agent_session(live_server) as (client, token), socket(live_server, client) as ws:
        await frame_with(ws, 'id="agent-status"')
        await post_call(client, "queued-1")  # nobody available: it waits
        await client.post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": token})
        await frame_with(ws, "pop-")
        await post_call(client, "queued-2", "0687654321")
        deadline = time.monotonic() + 10
        # The queue figures come from a sweep once a second: wait for the round that saw both calls
        # (the one before queued-2 said size 1 too: queued-1 waiting, before Anna was available).
        while True:
            text = (await client.get("/metrics")).text
            if 'console_queue_size{queue="(none)"} 1.0' in text and \
                    'console_queue_ringing{queue="(none)"} 1.0' in text:  # queued-1 rings Anna
                break
            assert time.monotonic() < deadline, text
            await asyncio.sleep(0.1)
        assert "console_open_sockets 1.0" in text
        assert "console_pop_latency_seconds_count 2.0" in text
        pushed = float(next(line.split()[1] for line in text.splitlines()
                            if line.startswith("console_push_latency_seconds_count")))
        assert pushed >= 1, "changes are timed from their commit to their frames published"
        frames = float(next(line.split()[1] for line in text.splitlines()
                            if line.startswith("console_frames_sent_total")))
        assert frames >= 2, "the snapshot, then the pop"
        assert re.search(r"^console_push_backlog \d", text, re.M), "the push backlog is reported"


async def test_a_wallboard_published_once_reaches_supervisors_and_no_agent(sqlite_url: str, tmp_path: Path) -> None:
    from console.web.board import wallboard_stream
    from realtime import make_bus
    from tests.conftest import REDIS_URL, redis_prefix

    db = Database(sqlite_url)
    try:
        await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
        await add_agent(db, "sanne@x.nl", "Sanne Supervisor", role="supervisor")
    finally:
        await db.close()
    async with redis_prefix() as prefix:
        settings = make_settings(sqlite_url, tmp_path, redis_url=REDIS_URL, redis_prefix=prefix)
        with LiveServer(settings) as server:
            async with httpx.AsyncClient(base_url=server.url) as agent, \
                    httpx.AsyncClient(base_url=server.url) as supervisor:
                await log_in(agent, "anna@x.nl")
                await log_in(supervisor, "sanne@x.nl")
                async with socket(server, agent, view="wallboard") as refused:
                    with pytest.raises(ConnectionClosed) as closed:
                        await asyncio.wait_for(refused.recv(), 10)
                    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008, "agents get no wallboard"
                async with socket(server, agent) as agent_ws, \
                        socket(server, supervisor, view="wallboard") as board_ws:
                    await frame_with(agent_ws, 'id="agent-status"')
                    snapshot = await frame_with(board_ws, 'id="wallboard"')
                    assert "Queues today" in snapshot
                    publisher = make_bus(REDIS_URL, prefix=prefix)  # another node, publishing once
                    await publisher.start()
                    try:
                        await publisher.publish(wallboard_stream("en"), '<section id="wallboard">3 waiting</section>')
                        board = await frame_with(board_ws, "3 waiting")
                        assert 'id="wallboard"' in board
                        await publisher.publish("agent:1", '<p id="marker">for Anna</p>')
                        seen = []
                        while not seen or 'id="marker"' not in seen[-1]:
                            seen.append(str(await asyncio.wait_for(agent_ws.recv(), 10)))
                        assert not any("wallboard" in frame for frame in seen), \
                            "agents do not get the supervisors' broadcast"
                    finally:
                        await publisher.close()


async def _tasks_on(server: LiveServer) -> int:
    """How many tasks the server's event loop runs now (asked on that loop)."""
    loop = server.server.servers[0].get_loop()

    async def count() -> int:
        return len(asyncio.all_tasks())

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(count(), loop))


async def test_an_idle_socket_costs_its_connection_one_task_and_still_gets_every_frame(
        live_server: LiveServer, database_url: str) -> None:
    await prepare(live_server, database_url)
    async with agent_session(live_server) as (client, token), socket(live_server, client) as first:
        await frame_with(first, 'id="agent-status"')
        await asyncio.sleep(0.2)
        before = await _tasks_on(live_server)
        async with socket(live_server, client) as second, socket(live_server, client) as third:
            for ws in (second, third):
                await frame_with(ws, 'id="agent-status"')
            await asyncio.sleep(0.2)  # the snapshots' sender tasks have ended
            assert await _tasks_on(live_server) - before <= 2, "one task per idle socket"
            await client.post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": token})
            for ws in (first, second, third):
                await frame_with(ws, "status-available")
