"""Redis restarted under the nodes: they reconnect, the agents' sockets resync, no offer is lost.

A redis-server of the test's own (the shared one is never stopped), killed and started again on
the same port, empty, as after a crash without persistence. End to end: two app nodes on one
PostgreSQL database, the agents' sockets on node B, the phone system posting to node A, so every
pop travels through Redis. The database is the source of truth: the calls of the outage are stored
and offered (the CTI answers 200), and once Redis is back each agent's page, reconnecting with its
cursor like hx-ws does, shows every offer pending for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import insert, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from console.auth import hash_password
from console.db import Database
from console.models import Agent, Offer, OfferState
from realtime import Overflow, make_bus
from tests.conftest import CLIENT_LIMITS, CTI_TOKEN, free_port, missing, start_node, wait_healthy
from tests.helpers import PASSWORD, log_in
from tests.pagemodel import PageModel

AGENTS = 3
BEFORE, DURING, AFTER = 3, 6, 3  # calls posted before the kill, while Redis is down, after it is back
OUTAGE = 3.0  # seconds Redis stays down at least: long enough for the reader's backoff to grow
RECONNECT_CODES = {1001, 1005, 1006, 1011, 1012, 1013, 1014}  # the codes hx-ws reconnects on
CURSOR = re.compile(r'id="ws-cursor" name="ws-cursor" content="([^"]*)"')
SKELETON = '<div id="live"><section id="screen-pop"></section></div>'


async def until(check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        await asyncio.sleep(0.05)


class RedisServer:
    """A redis-server of this test's own on a fixed port, without persistence, that can be killed."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            missing("redis-server")
        assert executable is not None
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await until(self.answers, f"redis-server on port {self.port}", timeout=15)

    async def answers(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, "redis-server exited"
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 1)
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(b"PING\r\n")
            reply = await asyncio.wait_for(reader.readline(), 1)
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return reply == b"+PONG\r\n"

    async def kill(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()
        process = self.process
        await until(lambda: process.poll() is not None, "redis-server to exit", timeout=10)


@dataclass
class Page:
    """An agent's page as the browser keeps it: the newest live view, and the cursor it reconnects with."""

    base: str
    cookie: str
    frames: list[str] = field(default_factory=list)
    closes: list[int | None] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    cursor: str = ""
    connected: bool = False

    model: PageModel = field(default_factory=lambda: PageModel(SKELETON))

    @property
    def pops(self) -> set[int]:
        """The conversations the page shows as pops now, with every frame applied as the browser does."""
        return {int(element_id.removeprefix("pop-")) for element_id in self.model.ids("pop")
                if element_id.startswith("pop-")}

    async def run(self) -> None:
        """Like hx-ws with console.js: reconnect on the retry codes, asking for what was missed."""
        delay = 0.2
        while True:
            url = self.base.replace("http", "ws", 1) + "/ws"
            if self.cursor:
                url += "?since=" + quote(self.cursor)
            self.urls.append(url)
            code: int | None = 1006
            try:
                async with connect(url, origin=self.base, additional_headers={"Cookie": self.cookie},  # type: ignore[arg-type]
                                   open_timeout=5, close_timeout=2) as ws:
                    self.connected = True
                    delay = 0.2
                    try:
                        async for message in ws:
                            frame = str(message)
                            self.frames.append(frame)
                            self.model.apply(frame)
                            if match := CURSOR.search(frame):
                                self.cursor = match.group(1)
                    except ConnectionClosed:
                        pass
                    code = ws.close_code
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed):
                code = 1006  # no connection: the node is unreachable, or the handshake was cut
            self.closes.append(code)
            self.connected = False
            if code not in RECONNECT_CODES:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def test_a_node_idle_while_redis_restarted_publishes_at_once_and_its_readers_resync(tmp_path: Path) -> None:
    redis = RedisServer(free_port(), tmp_path)
    await redis.start()
    bus = make_bus(redis.url, prefix=f"console-test-{secrets.token_hex(6)}:")
    await bus.start()
    try:
        async with bus.subscribe("agent:1", maxsize=16) as subscription:
            # Several at once, so the pool keeps several connections, all to the server about to go.
            cursors = await asyncio.gather(*(bus.publish("agent:1", f"before {i}") for i in range(4)))
            for _ in range(4):
                await asyncio.wait_for(subscription.get(), 5)
            await redis.kill()
            await redis.start()  # empty: the frames and the streams went with the old server
            with pytest.raises(Overflow):  # the reader lost its connection: this socket must resync
                await asyncio.wait_for(subscription.get(), 10)
        # Nothing was published meanwhile; the next commands must not fail on the old connections.
        assert await bus.replay("agent:1", max(cursors, key=lambda c: bus.order(c) or ())) is None, \
            "a cursor of the old server asks for a snapshot"
        await asyncio.wait_for(asyncio.gather(*(bus.publish("agent:1", f"after {i}") for i in range(4))), 10)
        async with bus.subscribe("agent:1", maxsize=16) as subscription:
            await bus.publish("agent:1", "live")
            assert (await asyncio.wait_for(subscription.get(), 10)).payload == "live", "the reader is back"
        assert getattr(bus, "reconnects", 0) >= 1
    finally:
        await asyncio.wait_for(bus.close(), 10)
        await redis.kill()


async def reconnects(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    match = re.search(r"^console_bus_reconnects (\S+)$", text, re.MULTILINE)
    assert match, text
    return float(match.group(1))


async def test_redis_restarted_during_calls_every_offer_reaches_its_agent(pg_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    redis = RedisServer(free_port(), tmp_path)
    await redis.start()
    db = Database(pg_url)
    async with db.transaction() as session:
        await session.execute(insert(Agent), [
            {"email": f"agent{i}@restart.test", "name": f"Agent {i}", "password_hash": hash_password(PASSWORD),
             "extension": str(500 + i)} for i in range(AGENTS)])
    prefix = f"console-test-{secrets.token_hex(6)}:"
    ports = [free_port(), free_port()]
    nodes = [start_node(pg_url, port, tmp_path, CONSOLE_REDIS_URL=redis.url, CONSOLE_REDIS_PREFIX=prefix)
             for port in ports]
    a, b = (f"http://127.0.0.1:{port}" for port in ports)
    agents = [httpx.AsyncClient(base_url=b, timeout=30, limits=CLIENT_LIMITS) for _ in range(AGENTS)]
    pbx = httpx.AsyncClient(base_url=a, timeout=30, limits=CLIENT_LIMITS)
    observer = httpx.AsyncClient(base_url=b, timeout=10, limits=CLIENT_LIMITS)
    pages: list[Page] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        await asyncio.gather(wait_healthy(a), wait_healthy(b))
        for i, client in enumerate(agents):
            token = await log_in(client, f"agent{i}@restart.test")
            reply = await client.post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": token})
            assert reply.status_code == 204, reply.text
            pages.append(Page(b, "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)))
        tasks = [asyncio.create_task(page.run()) for page in pages]
        await until(lambda: all(p.cursor for p in pages), "first snapshot on every socket")

        # The phone system posts to node A, one call at a time, each ringing one agent's extension.
        posted: list[tuple[int, float, int]] = []  # (call, sent at, status)
        sending: list[int] = []
        traffic, redis_down, redis_back = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def phone_system() -> None:
            for n in range(BEFORE + DURING + AFTER):
                if n == BEFORE:
                    await traffic.wait()
                if n == BEFORE + 1:
                    await redis_down.wait()  # call BEFORE races the kill; the rest come during the outage
                if n == BEFORE + DURING:
                    await redis_back.wait()
                await call(n)

        async def call(n: int) -> None:
            sending.append(n)
            sent = time.monotonic()
            response = await pbx.post(f"/integrations/cti/{CTI_TOKEN}", data={
                "event": "newCall", "from": f"06{20000000 + n}", "to": "0201234567", "direction": "in",
                "callId": f"restart-{n}", "user": str(500 + n % AGENTS)})
            posted.append((n, sent, response.status_code))

        async def pending() -> dict[int, set[int]]:
            """The database's word: the conversations pending for each agent."""
            async with db.transaction() as session:
                rows = (await session.execute(select(Offer.agent_id, Offer.conversation_id)
                                              .where(Offer.state == OfferState.PENDING))).all()
            offered: dict[int, set[int]] = {i + 1: set() for i in range(AGENTS)}
            for agent_id, conversation_id in rows:
                offered[agent_id].add(conversation_id)
            return offered

        async def pages_show_pending() -> bool:
            offered = await pending()
            return all(p.pops == offered[i + 1] for i, p in enumerate(pages))

        phone = asyncio.create_task(phone_system())
        tasks.append(phone)
        await until(lambda: len(posted) >= BEFORE, "the first calls")
        await until(pages_show_pending, "pops of the first calls through Redis")
        assert all(p.pops for p in pages)
        reconnects_before = await reconnects(observer)
        frames_before = [len(p.frames) for p in pages]

        traffic.set()
        await until(lambda: len(sending) > BEFORE, "a call under way")
        await redis.kill()
        killed_at = time.monotonic()
        redis_down.set()
        # Node B's reader loses Redis: every socket it feeds is told to resync (1013, try again later).
        await until(lambda: all(1013 in p.closes for p in pages), "sockets closed with 1013")
        await until(lambda: len(posted) >= BEFORE + DURING, "the calls of the outage", timeout=30)
        assert [status for _, _, status in posted] == [200] * (BEFORE + DURING), \
            "the database stores and offers calls while the bus is down; the CTI says so"
        assert (await observer.get("/readyz")).status_code == 503, "node B says it is not ready meanwhile"
        outage = await pending()
        assert all(len(outage[i + 1]) == (BEFORE + DURING) // AGENTS for i in range(AGENTS)), outage
        await asyncio.sleep(max(0.0, killed_at + OUTAGE - time.monotonic()))
        assert all(p.pops != outage[i + 1] for i, p in enumerate(pages)), "no pop could travel meanwhile"
        assert not any(task.done() for task in tasks), "every page keeps trying, the phone system waits"
        attempts = [len(p.urls) for p in pages]

        await redis.start()  # on the same port, empty
        restarted_at = time.monotonic()
        # Each page reconnects with its cursor; the new Redis does not know it, so a snapshot comes.
        await until(lambda: all(p.pops == outage[i + 1] and p.connected for i, p in enumerate(pages)),
                    "the outage's offers on every page after recovery")
        resynced = time.monotonic() - restarted_at
        assert (await observer.get("/readyz")).status_code == 200
        for page, before, tried in zip(pages, frames_before, attempts, strict=True):
            assert tried > 2, f"the page retried during the outage: {page.urls}"
            assert all("?since=" in url for url in page.urls[1:]), page.urls
            assert len(page.frames) > before

        redis_back.set()  # calls after the recovery travel through the new Redis as before
        await asyncio.wait_for(phone, 30)
        assert [status for _, _, status in posted] == [200] * (BEFORE + DURING + AFTER)
        final = await pending()
        assert sum(len(v) for v in final.values()) == BEFORE + DURING + AFTER, "no call lost, none offered twice"
        await until(pages_show_pending, "every pending offer on its agent's page")
        assert await reconnects(observer) > reconnects_before, "node B counted its bus reconnects"

        # Restarted again in a lull: no call meanwhile, so the nodes' pooled connections still lead
        # to the old server when the next calls come, together.
        frames_at_restart = [len(p.frames) for p in pages]
        await redis.kill()
        await redis.start()
        await until(lambda: all(p.connected and len(p.frames) > n for p, n in zip(pages, frames_at_restart,
                                                                                  strict=True)),
                    "the pages resynced after the second restart")
        lull = BEFORE + DURING + AFTER
        await asyncio.wait_for(asyncio.gather(*(call(n) for n in range(lull, lull + AGENTS))), 30)
        assert [status for _, _, status in posted] == [200] * (lull + AGENTS)
        await until(pages_show_pending, "the pops of the calls after the lull")
        print(f"outage {restarted_at - killed_at:.1f} s, pages resynced {resynced:.1f} s after the restart, "
              f"test {time.monotonic() - started:.1f} s")
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        for client in (*agents, pbx, observer):
            await client.aclose()
        for node in nodes:
            if node.poll() is None:
                node.terminate()
        for node in nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(node.wait, 15)
            if node.poll() is None:  # it did not stop in time: killed, and reaped (said, as it should not happen)
                print(f"node {node.pid} did not stop within 15 s of SIGTERM; killed")
                node.kill()
                await asyncio.to_thread(node.wait, 15)
        await redis.kill()
        await db.close()
