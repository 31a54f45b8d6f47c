"""A node killed with SIGKILL: its agents reconnect to the other node; its offers move on."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
from sqlalchemy import insert, select
from websockets.asyncio.client import connect

from console.auth import hash_password
from console.db import Database
from console.models import Agent, AgentStatus, Offer, OfferState
from tests.conftest import CLIENT_LIMITS, CTI_TOKEN, REDIS_URL, free_port, redis_prefix, start_node, wait_healthy
from tests.helpers import PASSWORD, log_in


async def wait_for(check: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        await asyncio.sleep(0.1)


async def test_a_killed_nodes_agents_reconnect_elsewhere_and_its_offers_move_on(pg_url: str, tmp_path: Path) -> None:
    async with redis_prefix() as prefix:
        await _kill_a_node(pg_url, tmp_path, prefix)


async def _kill_a_node(pg_url: str, tmp_path: Path, prefix: str) -> None:
    db = Database(pg_url)
    async with db.transaction() as session:
        await session.execute(insert(Agent), [
            {"email": f"agent{i}@kill.test", "name": f"Agent {i}", "password_hash": hash_password(PASSWORD),
             "extension": str(400 + i)} for i in range(2)])
    ports = [free_port(), free_port()]
    nodes = [start_node(pg_url, port, tmp_path, CONSOLE_REDIS_URL=REDIS_URL, CONSOLE_REDIS_PREFIX=prefix,
                        CONSOLE_PRESENCE_GRACE="2", CONSOLE_SWEEP_INTERVAL="0.2") for port in ports]
    a, b = (f"http://127.0.0.1:{port}" for port in ports)
    clients = [httpx.AsyncClient(base_url=a, limits=CLIENT_LIMITS), httpx.AsyncClient(base_url=b, limits=CLIENT_LIMITS)]
    try:
        await asyncio.gather(wait_healthy(a), wait_healthy(b))
        tokens = [await log_in(clients[i], f"agent{i}@kill.test") for i in range(2)]
        cookies = ["; ".join(f"{c.name}={c.value}" for c in client.cookies.jar) for client in clients]
        on_a = await connect(a.replace("http", "ws") + "/ws", origin=a, additional_headers={"Cookie": cookies[0]})  # type: ignore[arg-type]
        on_b = await connect(b.replace("http", "ws") + "/ws", origin=b, additional_headers={"Cookie": cookies[1]})  # type: ignore[arg-type]
        await clients[0].post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": tokens[0]})
        reply = await clients[1].post(f"/integrations/cti/{CTI_TOKEN}", data={
            "event": "newCall", "from": "0612345678", "to": "0201234567", "direction": "in", "callId": "k1"})
        assert reply.json()["target"] == "400", "agent 0, whose socket is on node A, gets the offer"
        await clients[1].post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": tokens[1]})

        nodes[0].send_signal(signal.SIGKILL)
        nodes[0].wait(10)

        async def moved() -> bool:
            async with db.transaction() as session:
                holder = await session.scalar(select(Offer.agent_id).where(Offer.state == OfferState.PENDING))
                status = await session.scalar(select(Agent.status).where(Agent.id == 1))
            return holder == 2 and status is AgentStatus.OFFLINE

        await wait_for(moved, "re-offer to agent 1 after the grace period")
        frame = ""
        while "pop-" not in frame:
            frame = str(await asyncio.wait_for(on_b.recv(), 10))

        # Agent 0's browser reconnects to node B and sees where they stand.
        cookie_b = cookies[0]
        async with connect(b.replace("http", "ws") + "/ws", origin=b,  # type: ignore[arg-type]
                           additional_headers={"Cookie": cookie_b}) as again:
            snapshot = str(await asyncio.wait_for(again.recv(), 10))
        assert 'id="agent-status"' in snapshot and "status-offline" in snapshot and "pop-" not in snapshot
        await on_b.close()
        await on_a.close()
    finally:
        for client in clients:
            await client.aclose()
        for node in nodes:
            if node.poll() is None:
                node.terminate()
                node.wait(15)
        await db.close()
