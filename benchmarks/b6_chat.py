"""B6 chat: 1,000 open chats on one node, messages at 100/s in both directions.

One node on PostgreSQL with the Redis bus, a chat site, AGENTS agents who take CHATS_EACH chats
at once, each with their page's socket open. VISITORS visitor sockets say hello (memory per
visitor socket is the growth of the node's resident set over them, idle), each starts a chat
that is routed and accepted, and then messages go both ways, half from visitors over their
sockets and half from agents through POST /conversations/{id}/messages, in WINDOWS: a while at a
rate the node keeps up with, then at the target rate. Delivery is timed from the moment a
message is sent to the moment the other side's socket has it: the agent's page gets the chat's
transcript, the visitor's widget the message. CPU per message is the node's CPU time over a
window divided by the messages sent in it.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from benchmarks.client import AgentSocket, HttpPool, close_sockets, open_sockets
from benchmarks.common import (
    Login,
    PhaseResult,
    Summary,
    cpu_seconds,
    delete_redis_keys,
    drop_database,
    loadavg,
    mint_session,
    pg_admin,
    rss_bytes,
    sa_url,
    start_node,
    wait_healthy,
)

VISITORS = 1000
AGENTS = 100
CHATS_EACH = 10
WINDOWS = ((20.0, 15.0), (100.0, 20.0))  # (messages a second, seconds): below and at the target rate
ORIGIN = "https://shop.bench.example"
STARTING = 20  # chats started at once
MARK = re.compile(r"(bm-\d+)-")


class Visitor:
    """One widget's socket: says hello, reads frames, notes when each marked message arrived."""

    def __init__(self, index: int, url: str, arrivals: dict[str, float]) -> None:
        self.index, self.url, self.arrivals = index, url, arrivals
        self.conn: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.acks: dict[str, asyncio.Future[dict[str, object]]] = {}

    async def open(self) -> None:
        self.conn = await connect(self.url, origin=ORIGIN, ping_interval=None, open_timeout=60)  # type: ignore[arg-type]
        await self.conn.send(json.dumps({"type": "hello", "visitor": None, "after": 0, "lang": "nl",
                                         "page": ORIGIN + "/", "identifier": "", "identifier_hash": ""}))
        welcome = json.loads(await asyncio.wait_for(self.conn.recv(), 60))
        assert welcome["type"] == "welcome", welcome
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.conn is not None
        try:
            async for raw in self.conn:
                now = time.perf_counter()
                frame = json.loads(raw)
                if frame["type"] == "ack" and frame["id"] in self.acks:
                    self.acks.pop(frame["id"]).set_result(frame["message"])
                elif frame["type"] == "error" and frame.get("id") in self.acks:
                    self.acks.pop(frame["id"]).set_exception(RuntimeError(frame["message"]))
                elif frame["type"] == "message":
                    found = MARK.search(str(frame["message"]["text"]))
                    if found and found.group(1) not in self.arrivals:
                        self.arrivals[found.group(1)] = now
        except Exception:
            pass

    async def send(self, client_id: str, text: str, wait: bool = False) -> int:
        """Send a message; with `wait`, until it is confirmed, sending it again (same id) while the
        node sheds load. Returns how many times it was refused."""
        assert self.conn is not None
        refused = 0
        while True:
            if wait:
                self.acks[client_id] = asyncio.get_running_loop().create_future()
            await self.conn.send(json.dumps({"type": "message", "id": client_id, "text": text}))
            if not wait:
                return refused
            try:
                await asyncio.wait_for(self.acks[client_id], 60)
                return refused
            except RuntimeError:
                refused += 1
                if refused > 20:
                    raise
                await asyncio.sleep(0.5 * refused)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self.reader is not None:
            self.reader.cancel()


async def _prepare(url: str) -> str:
    """Agents who take CHATS_EACH chats, available, and the shop's chat site; returns its key."""
    from benchmarks.dataset import available_agents
    from console import chat

    async def site(session: Any) -> str:
        made, _ = await chat.configure_site(session, "Bench shop", chat.SiteSettings(origins=[ORIGIN]))
        return made.key

    return await available_agents(url, AGENTS, "chat", CHATS_EACH, site)


async def _offered(database: str) -> list[tuple[int, int]]:
    """(conversation, agent) of the chats ringing now."""
    rows = await pg_admin("SELECT id, agent_id FROM conversations WHERE state = 'offered'", database=database)
    return [(int(r[0]), int(r[1])) for r in rows]


async def _subjects(database: str) -> list[tuple[int, str]]:
    rows = await pg_admin("SELECT id, subject FROM conversations WHERE state = 'active'", database=database)
    return [(int(r[0]), str(r[1])) for r in rows]


BACKLOG = re.compile(rb"^console_push_backlog (\S+)$", re.M)


async def _push_backlog_drained(pool: HttpPool, timeout: float = 120.0) -> float:
    """Seconds until the node's push backlog (from /metrics) is empty."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        status, body = await pool.request("GET", "/metrics")
        found = BACKLOG.search(body) if status == 200 else None
        if found is not None and float(found.group(1)) == 0:
            return time.perf_counter() - began
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the push backlog did not drain in {timeout:.0f} s")


async def _window(result: PhaseResult, pid: int, pool: HttpPool, logins: dict[int, Login],
                  pairs: list[tuple[Visitor, int, int]], rate: float, seconds: float,
                  arrivals: dict[str, float]) -> None:
    """`rate` messages a second in all for `seconds`, alternating sides, each accepted chat in turn."""
    sent: dict[str, float] = {}
    direction: dict[str, str] = {}
    statuses: dict[int, int] = {}
    interval, total = 1.0 / rate, int(rate * seconds)
    base = len(arrivals) + 10_000_000 * int(rate)  # markers of this window only
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    tasks: list[asyncio.Task[object]] = []

    async def post(conversation: int, agent: int, n: int, marker: str) -> None:
        login = logins[agent]

        def stamp() -> None:
            sent[marker] = time.perf_counter()

        status, _ = await pool.request("POST", f"/conversations/{conversation}/messages",
                                       {"client_id": f"a-{n}", "text": f"{marker}- het is onderweg"},
                                       headers={"Cookie": login.cookie, "X-CSRF-Token": login.csrf,
                                                "HX-Request": "true"}, on_send=stamp)
        statuses[status] = statuses.get(status, 0) + 1

    next_at = time.perf_counter()
    for n in range(total):
        marker = f"bm-{base + n}"
        visitor, conversation, agent = pairs[(n // 2) % len(pairs)]
        if n % 2 == 0:
            sent[marker], direction[marker] = time.perf_counter(), "visitor→agent"
            tasks.append(asyncio.create_task(visitor.send(f"m-{base + n}", f"{marker}- waar blijft mijn pakket?")))
        else:
            direction[marker] = "agent→visitor"
            tasks.append(asyncio.create_task(post(conversation, agent, base + n, marker)))
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    await asyncio.gather(*tasks, return_exceptions=True)
    window = time.perf_counter() - t0
    await asyncio.sleep(3)  # the last deliveries
    cpu = cpu_seconds(pid) - cpu0
    label = f"@{rate:g}/s"
    for side in ("visitor→agent", "agent→visitor"):
        markers = [m for m, d in direction.items() if d == side and m in sent]
        delays = [arrivals[m] - sent[m] if m in arrivals else float("inf") for m in markers]
        summary = Summary.of(delays)  # a message never delivered counts as infinitely late
        lost = sum(1 for m in markers if m not in arrivals)
        result.figures[f"B6 {side} {label} p50 ms"] = round(summary.p50, 1)
        result.figures[f"B6 {side} {label} p99 ms"] = round(summary.p99, 1)
        result.figures[f"B6 {side} {label} lost"] = lost
        result.note(f"{label} {side}: {len(markers)} messages, delivered {summary.ms()}, {lost} not delivered")
    result.figures[f"B6 CPU ms per message {label}"] = round(1000 * cpu / total, 2)
    result.note(f"{label}: {total} messages in {window:.1f} s ({total / window:.0f}/s), agents' POSTs answered "
                f"{dict(sorted(statuses.items()))}; node CPU {cpu:.1f} s, {1000 * cpu / total:.2f} ms per message "
                f"({100 * cpu / window:.0f} % of a core; load average {loadavg()})")


async def run(result: PhaseResult, work: Path, run_id: str, visitors: int = VISITORS) -> None:
    database = f"bench_{run_id}_b6"
    prefix = f"bench-{run_id}-b6:"
    await pg_admin(f'CREATE DATABASE "{database}"')
    url = sa_url(database)
    node = None
    agents: list[AgentSocket] = []
    people: list[Visitor] = []
    pool: HttpPool | None = None
    arrivals: dict[str, float] = {}  # marker: when the other side's socket had it

    def on_frame(sock: AgentSocket, text: str, now: float) -> None:
        for marker in MARK.findall(text):
            arrivals.setdefault(marker, now)

    try:
        key = await _prepare(url)
        # Every simulated visitor comes from 127.0.0.1: the per-address limits would count them as one.
        node = start_node(url, work / "b6", redis_prefix=prefix, CONSOLE_CHAT_ADDRESS_MESSAGES_PER_MINUTE="1000000",
                          CONSOLE_CHAT_ADDRESS_VISITORS_PER_MINUTE="1000000")
        await wait_healthy(node.base, node.process)
        pid = node.process.pid
        logins = {i: mint_session(i) for i in range(1, AGENTS + 1)}
        agents = await open_sockets(list(logins.values()), [node.ws], [node.base], parallel=50, on_frame=on_frame)
        await asyncio.sleep(2)
        before = rss_bytes(pid)
        socket_url = f"{node.ws}/chat/ws?site={key}&lang=nl"
        gate = asyncio.Semaphore(100)

        async def open_one(i: int) -> Visitor:
            async with gate:
                visitor = Visitor(i, socket_url, arrivals)
                await visitor.open()
                return visitor

        began = time.perf_counter()
        people = list(await asyncio.gather(*(open_one(i) for i in range(visitors))))
        await asyncio.sleep(5)
        per_socket = (rss_bytes(pid) - before) / max(len(people), 1)
        result.figures["B6 KiB per visitor socket"] = round(per_socket / 1024, 1)
        result.note(f"{len(people)} visitor sockets open in {time.perf_counter() - began:.0f} s; node resident "
                    f"memory grew {per_socket / 1024:.1f} KiB per idle visitor socket")

        # Every visitor starts a chat; it is routed, and its agent accepts it.
        began = time.perf_counter()
        starting = asyncio.Semaphore(STARTING)

        async def start(v: Visitor) -> int:
            async with starting:
                return await v.send(f"start-{v.index}", f"Hallo, ik ben bezoeker {v.index}", wait=True)

        refusals = sum(await asyncio.gather(*(start(v) for v in people)))
        result.note(f"the first messages, {STARTING} at a time: {refusals} refused while the node shed load "
                    f"(sent again with the same id)")
        pool = HttpPool(node.base, size=32)
        active: dict[int, int] = {}  # conversation: agent
        deadline = time.perf_counter() + 120
        while len(active) < len(people) and time.perf_counter() < deadline:
            ringing = [(c, a) for c, a in await _offered(database) if c not in active]
            if not ringing:
                await asyncio.sleep(0.5)
                continue

            async def accept(conversation: int, agent: int) -> None:
                login = logins[agent]
                status, _ = await pool.request("POST", f"/conversations/{conversation}/accept", {}, headers={
                    "Cookie": login.cookie, "X-CSRF-Token": login.csrf, "HX-Request": "true"})
                if status == 204:
                    active[conversation] = agent

            await asyncio.gather(*(accept(c, a) for c, a in ringing))
        result.note(f"{len(active)} chats started, routed and accepted in {time.perf_counter() - began:.0f} s "
                    f"({AGENTS} agents, {CHATS_EACH} chats each)")
        chats = list(active.items())
        if not chats:
            raise RuntimeError("no chat was accepted")
        # Each accepted chat's visitor (their first message, the conversation's subject, names them).
        by_conversation = {int(r[0]): int(str(r[1]).rsplit(" ", 1)[1]) for r in await _subjects(database)}
        pairs = [(people[by_conversation[c]], c, a) for c, a in chats if c in by_conversation]
        # The accepts leave the node's push worker a backlog (every accept re-renders the agent's
        # pop); the windows measure messages, so they start once it is pushed, and its drain is
        # reported apart.
        drained = await _push_backlog_drained(pool)
        result.figures["B6 push backlog drained after the accepts s"] = round(drained, 1)
        result.note(f"the push backlog left by the accepts drained {drained:.1f} s after the last accept "
                    f"(console_push_backlog in /metrics)")
        for rate, seconds in WINDOWS:
            await _window(result, pid, pool, logins, pairs, rate, seconds, arrivals)
            await asyncio.sleep(2)
    finally:
        if node is not None:
            node.stop()
        if pool is not None:
            await pool.close()
        await asyncio.gather(*(v.close() for v in people), return_exceptions=True)
        await close_sockets(agents)
        await drop_database(database)
        await delete_redis_keys(prefix)
