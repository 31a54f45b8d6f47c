"""The demo's simulated Asterisk: a real manager interface that the connector follows."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import select

from console import config, routing
from console.models import Channel, Conversation, State
from console.ports import Context
from integrations import asterisk_simulator
from integrations.asterisk_simulator import Timing, serve
from integrations.telephony import ami
from integrations.telephony.ami import AmiUrl
from integrations.telephony.asterisk import AsteriskConnector
from tests.helpers import add_agent
from tests.integrations.telephony.amipeer import until

FAST = Timing(wait=(0.05, 0.1), ring=(0.1, 0.2), ring_out=0.3, talk=(0.2, 0.4), patience=(30.0, 30.0), retry=0.1,
              answered=1.0, abandoned=0.0)


def everyone(extensions: list[str]) -> Callable[[], Awaitable[list[str]]]:
    async def ringable() -> list[str]:
        return list(extensions)
    return ringable


@pytest.fixture
async def pbx() -> AsyncIterator[tuple[asyncio.Server, int]]:
    free = ["201"]

    async def ringable() -> list[str]:
        return list(free)

    server = await serve("127.0.0.1", 0, "console", "demo-secret", 120.0, ringable, queues=("service",),
                         timing=FAST, rng=random.Random(7))
    yield server, server.sockets[0].getsockname()[1]
    server.close()


async def test_calls_of_the_simulator_become_conversations_answered_by_the_agent_it_rings(
        ctx: Context, pbx: tuple[asyncio.Server, int]) -> None:
    async with ctx.db.transaction() as session:
        await config.configure_queue(session, "service", config.QueueSettings())
    anna = await add_agent(ctx.db, "anna@example.nl", "Anna de Vries", extension="201")
    await routing.set_status(ctx, anna, "available")
    url = AmiUrl("127.0.0.1", pbx[1], "console", "demo-secret")
    connector = AsteriskConnector(ctx, url, "demo", ping_seconds=0.5, silence_seconds=5.0, backoff=(0.05, 0.2),
                                  use_lease=False)
    task = asyncio.create_task(connector.run())

    async def one_wrapped_up() -> bool:
        async with ctx.db.reading() as session:
            found = await session.scalar(select(Conversation).where(
                Conversation.channel == Channel.CALL, Conversation.state == State.WRAP_UP).limit(1))
        return found is not None and found.agent_id == anna and not found.routed_by_console \
            and found.external_id.startswith("asterisk:") and found.from_address.startswith("0")

    try:
        await until(one_wrapped_up, timeout=20, what="a simulated call answered and ended")
        assert connector.state.failures == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_it_refuses_a_wrong_secret_and_lists_a_caller_nobody_answers() -> None:
    server = await serve("127.0.0.1", 0, "console", "demo-secret", 600.0, everyone([]), queues=("service",),
                         timing=FAST, rng=random.Random(3))
    port = server.sockets[0].getsockname()[1]
    try:
        wrong = await ami.Connection.open(AmiUrl("127.0.0.1", port, "console", "nope"), within=5)
        with pytest.raises(ami.LoginFailed, match="Authentication failed"):
            await wrong.login("console", "nope")
        await wrong.close()
        connection = await ami.Connection.open(AmiUrl("127.0.0.1", port, "console", "demo-secret"), within=5)
        try:
            await connection.login("console", "demo-secret")
            joined = await connection.event()
            while joined["Event"] != "QueueCallerJoin":
                joined = await connection.event()
            assert joined["Queue"] == "service" and joined["Uniqueid"] == joined["Linkedid"]
            assert joined["CallerIDNum"].startswith(("06", "01", "02", "03", "04", "05", "07"))
            _, status = await connection.action("QueueStatus", listing=True)
            assert any(item["Event"] == "QueueEntry" for item in status)
            _, channels = await connection.action("CoreShowChannels", listing=True)
            assert any(item["Application"] == "Queue" for item in channels)
            await connection.action("Ping")
        finally:
            await connection.close()
    finally:
        server.close()


def test_dutch_numbers_look_dutch() -> None:
    rng = random.Random(1)
    for _ in range(200):
        number = asterisk_simulator.dutch_number(rng)
        assert len(number) == 10 and number.startswith("0") and number.isdigit()
