"""Two app processes on one PostgreSQL database, 20 agents, 200 calls at once.

Checks from the stored history: every call was offered to one agent at a time, none was lost,
and no agent ever had more than their capacity (one call) at once.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import datetime

import httpx
from sqlalchemy import insert, select
from websockets.asyncio.client import connect

from console import readiness
from console.auth import hash_password
from console.db import Database
from console.models import Agent, Conversation, Offer, OfferState, State
from tests.conftest import CLIENT_LIMITS, CTI_TOKEN, free_port, start_node, wait_healthy
from tests.helpers import PASSWORD, log_in

AGENTS = 20
CALLS = 200
DEADLINE = 240.0


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda p: (p[0], p[1]))  # an end at the same instant comes before a start
    level = peak = 0
    for _, step in points:
        level += step
        peak = max(peak, level)
    return peak


async def test_two_processes_route_200_concurrent_calls_to_20_agents_safely(pg_url: str, tmp_path: object) -> None:
    db = Database(pg_url)
    password_hash = hash_password(PASSWORD)
    async with db.transaction() as session:
        await session.execute(insert(Agent), [
            {"email": f"agent{i}@load.test", "name": f"Agent {i}", "password_hash": password_hash,
             "extension": str(300 + i)} for i in range(AGENTS)])
    ports = [free_port(), free_port()]
    nodes = [start_node(pg_url, port, tmp_path) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    clients: list[httpx.AsyncClient] = []
    sockets = []
    try:
        await asyncio.gather(*(wait_healthy(base) for base in bases))
        tokens = []
        for i in range(AGENTS):
            client = httpx.AsyncClient(base_url=bases[i % 2], timeout=30, limits=CLIENT_LIMITS)
            clients.append(client)
            tokens.append(await log_in(client, f"agent{i}@load.test"))
            cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
            ws = await connect(bases[i % 2].replace("http", "ws") + "/ws", origin=bases[i % 2],  # type: ignore[arg-type]
                               additional_headers={"Cookie": cookie})
            sockets.append(ws)
            response = await client.post("/agent/status", data={"status": "available"},
                                         headers={"X-CSRF-Token": tokens[i]})
            assert response.status_code == 204

        async def drain(ws: object) -> None:
            try:
                async for _ in ws:  # type: ignore[attr-defined]
                    pass
            except Exception:
                return

        drains = [asyncio.create_task(drain(ws)) for ws in sockets]

        async def post_call(n: int) -> None:
            async with httpx.AsyncClient(base_url=bases[n % 2], timeout=60) as pbx:
                response = await pbx.post(f"/integrations/cti/{CTI_TOKEN}", data={
                    "event": "newCall", "from": f"06{10000000 + n}", "to": "0201234567", "direction": "in",
                    "callId": f"load-{n}"})
                assert response.status_code == 200, response.text

        await asyncio.gather(*(post_call(n) for n in range(CALLS)))

        rng = random.Random(7)

        async def work(i: int) -> int:
            handled = 0
            while True:
                async with db.transaction() as session:
                    offered = await session.scalar(select(Offer.conversation_id).where(
                        Offer.agent_id == i + 1, Offer.state == OfferState.PENDING).limit(1))
                    open_calls = await session.scalar(select(Conversation.id).where(
                        Conversation.state.in_((State.QUEUED, State.OFFERED, State.ACTIVE, State.WRAP_UP))).limit(1))
                if offered is None:
                    if open_calls is None:
                        return handled
                    await asyncio.sleep(0.05)
                    continue
                client, headers = clients[i], {"X-CSRF-Token": tokens[i]}
                node = bases[rng.randrange(2)]  # act through either node
                accepted = await client.post(f"{node}/conversations/{offered}/accept", headers=headers)
                if accepted.status_code == 409:
                    continue  # rang out meanwhile; it went to someone else
                assert accepted.status_code == 204, accepted.text
                async with db.transaction() as session:
                    external_id = await session.scalar(select(Conversation.external_id)
                                                       .where(Conversation.id == offered))
                async with httpx.AsyncClient(base_url=bases[rng.randrange(2)], timeout=60) as pbx:
                    hung_up = await pbx.post(f"/integrations/cti/{CTI_TOKEN}",
                                             data={"event": "hangup", "callId": external_id})
                    assert hung_up.status_code == 200, hung_up.text
                wrapped = await client.post(f"{bases[rng.randrange(2)]}/conversations/{offered}/wrap-up",
                                            data={"disposition": "resolved"}, headers=headers)
                assert wrapped.status_code == 204, wrapped.text
                handled += 1

        differing: list[object] = []
        checks = 0

        async def watch_readiness() -> None:
            # While both nodes route, the stored readiness always equals a fresh count.
            nonlocal checks
            while True:
                async with db.reading() as session:
                    differing.extend(await readiness.mismatches(session))
                checks += 1
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch_readiness())
        try:
            handled = await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(AGENTS))), DEADLINE)
        finally:
            watcher.cancel()
        assert checks > 5 and differing == [], differing[:5]
        for task in drains:
            task.cancel()
    finally:
        for ws in sockets:
            await ws.close()
        for client in clients:
            await client.aclose()
        for node in nodes:
            node.terminate()
        for node in nodes:
            node.wait(15)

    assert sum(handled) == CALLS and all(n > 0 for n in handled)
    async with db.transaction() as session:
        conversations = list(await session.scalars(select(Conversation)))
        offers = list(await session.scalars(select(Offer)))
    await db.close()
    assert len(conversations) == CALLS, "no call lost, none stored twice"
    assert all(c.state is State.CLOSED and c.disposition == "resolved" for c in conversations)
    by_conversation: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    work_of_agent: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
    for record in offers:
        assert record.ended_at is not None
        by_conversation[record.conversation_id].append((record.created_at, record.ended_at))
        if record.state is not OfferState.ACCEPTED:
            work_of_agent[record.agent_id].append((record.created_at, record.ended_at))
    for c in conversations:
        assert sum(o.state is OfferState.ACCEPTED and o.conversation_id == c.id for o in offers) == 1
        assert max_overlap(by_conversation[c.id]) == 1, f"call {c.id} was offered to two agents at once"
        accepted = next(o for o in offers if o.conversation_id == c.id and o.state is OfferState.ACCEPTED)
        assert c.closed_at is not None
        work_of_agent[accepted.agent_id].append((accepted.created_at, c.closed_at))
    for agent_id, intervals in work_of_agent.items():
        assert max_overlap(intervals) <= 1, f"agent {agent_id} had more than one call at once"
