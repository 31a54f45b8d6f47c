"""B3 sockets: 10,000 idle agent sockets on one node (memory per socket), and one wallboard-sized frame
to 1,000 supervisor sockets (time until the last one has it).

One node on the 1,000,000-customer database with the Redis bus. Every socket is a logged-in agent
page (sessions minted as login makes them) that received its snapshot; the first 1,000 are the
supervisors' (agents 9001-10000). Memory per socket is the growth of the node's resident set from
WARM sockets to all of them, divided by their number, measured after the sockets have been idle
for a few seconds. Opening stops at OPEN_BUDGET seconds if the node is slower than that allows;
the figure is then per socket of those opened, and says so.

The supervisors' sockets are their wallboard pages' (`/ws?view=wallboard`). The frame is published
once per language on the wallboard's broadcast streams (console.web.board.wallboard_stream: the
supervisors work in English and Dutch) through the same bus (realtime's RedisBus, the node's
prefix), as the node that renders the wallboard publishes it; every supervisor socket follows that stream, and the node's reader fans
the one frame out to them. The clock runs from the publish to the moment the last supervisor
socket delivered the frame.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from benchmarks.client import AgentSocket, close_sockets, open_sockets
from benchmarks.common import (
    REDIS_URL,
    Login,
    PhaseResult,
    copy_database,
    cpu_seconds,
    delete_redis_keys,
    drop_database,
    loadavg,
    mint_session,
    rss_bytes,
    sa_url,
    start_node,
    wait_healthy,
)
from benchmarks.dataset import AGENTS, ALL_AGENTS, SUPERVISORS_FROM, add_agents

WARM = 200
OPEN_BUDGET = 100.0
WALLBOARD_BYTES = 32 * 1024
REPEATS = 3
PLAIN = 1000  # sockets opened afterwards without permessage-deflate, to split the memory figure


def wallboard(number: int, size: int = WALLBOARD_BYTES) -> str:
    """A wallboard-sized fragment: queue figures and a table of agent states."""
    rows = []
    n = 0
    while sum(len(r) for r in rows) < size - 200:
        n += 1
        rows.append(f'<tr><td>Agent {n}</td><td class="status-available">available</td><td>00:0{n % 10}:1{n % 6}</td>'
                    f'<td>{n % 17}</td></tr>')
    return (f'<section id="wallboard" data-board="wallboard-{number}" hx-swap-oob="outerMorph"><h2>Queues</h2>'
            f'<table>{"".join(rows)}</table></section>')


async def run(result: PhaseResult, template: str, work: Path, run_id: str, target: int = ALL_AGENTS) -> None:
    from console.web.board import wallboard_stream
    from realtime import make_bus

    from console.i18n import LANGUAGES

    board_streams = [wallboard_stream(language) for language in LANGUAGES]

    database = f"bench_{run_id}_b3"
    prefix = f"bench-{run_id}-b3:"
    result.note(f"copied {template} to {database} in {await copy_database(template, database):.1f} s")
    await add_agents(sa_url(database), ALL_AGENTS, SUPERVISORS_FROM, first=AGENTS + 1)
    result.note(f"added agents {AGENTS + 1}-{ALL_AGENTS} to this copy ({ALL_AGENTS - SUPERVISORS_FROM + 1} "
                f"supervisors: {SUPERVISORS_FROM}-{ALL_AGENTS})")
    node = None
    sockets: list[AgentSocket] = []
    got: dict[int, dict[int, float]] = {}

    def on_frame(sock: AgentSocket, text: str, now: float) -> None:
        marker = text.find('data-board="wallboard-')
        if marker >= 0:
            number = int(text[marker + 22:text.index('"', marker + 22)])
            got.setdefault(number, {})[sock.login.agent_id] = now

    try:
        node = start_node(sa_url(database), work / "b3", redis_prefix=prefix)
        await wait_healthy(node.base, node.process)
        pid = node.process.pid
        order = list(range(SUPERVISORS_FROM, ALL_AGENTS + 1)) + list(range(1, SUPERVISORS_FROM))
        logins = [mint_session(agent_id) for agent_id in order[:target]]
        began = time.perf_counter()
        async def open_some(chunk: list[Login], parallel: int) -> list[AgentSocket]:
            supervising = [login for login in chunk if login.agent_id >= SUPERVISORS_FROM]
            agents = [login for login in chunk if login.agent_id < SUPERVISORS_FROM]
            return (await open_sockets(supervising, [node.ws], [node.base], parallel=parallel, on_frame=on_frame,
                                       path="/ws?view=wallboard")
                    + await open_sockets(agents, [node.ws], [node.base], parallel=parallel, on_frame=on_frame))

        sockets = await open_some(logins[:WARM], 50)
        await asyncio.sleep(3)
        base_rss = rss_bytes(pid)
        rest = logins[WARM:]
        opened_at = time.perf_counter()
        batch = 500
        while rest and time.perf_counter() - began < OPEN_BUDGET:
            chunk, rest = rest[:batch], rest[batch:]
            sockets += await open_some(chunk, 100)
        spent = time.perf_counter() - opened_at
        count = len(sockets)
        result.note(f"{count} sockets open in {time.perf_counter() - began:.0f} s "
                    f"({1000 * spent / max(count - WARM, 1):.1f} ms per socket after the first {WARM}, 100 at a time)"
                    + ("" if count >= target else f"; stopped at the {OPEN_BUDGET:g} s budget"))
        await asyncio.sleep(5)
        rss = rss_bytes(pid)
        per_socket = (rss - base_rss) / max(count - WARM, 1)
        result.figures["B3 sockets open"] = count
        result.figures["B3 KiB per socket"] = round(per_socket / 1024, 1)
        result.figures["B3 node RSS MiB"] = round(rss / 2**20, 0)
        result.note(f"node resident memory {base_rss / 2**20:.0f} MiB with {WARM} sockets, {rss / 2**20:.0f} MiB with "
                    f"{count}: {per_socket / 1024:.1f} KiB per socket (the clients offer permessage-deflate as "
                    "browsers do; the node declines it)")
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(10)
        idle = 100 * (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
        result.figures["B3 idle node CPU %"] = round(idle, 0)
        result.note(f"node CPU with {count} idle sockets: {idle:.0f} % of a core (load average {loadavg()})")

        supervisors = [s.login.agent_id for s in sockets if s.login.agent_id >= SUPERVISORS_FROM]
        bus = make_bus(REDIS_URL, prefix=prefix)
        await bus.start()
        times: list[float] = []
        try:
            # Round 0 is not measured: it opens the publishing client's connection to Redis.
            for stream in board_streams:
                await bus.publish(stream, wallboard(0, 100))
            await asyncio.sleep(1)
            for number in range(1, REPEATS + 1):
                frame = wallboard(number)
                start = time.perf_counter()
                for stream in board_streams:  # once per language, as the wallboard's node does
                    await bus.publish(stream, frame)
                published = time.perf_counter() - start
                deadline = start + 30
                while len(got.get(number, {})) < len(supervisors) and time.perf_counter() < deadline:
                    await asyncio.sleep(0.005)
                arrivals = got.get(number, {})
                # A supervisor who never got it counts as infinitely late.
                last = max(arrivals.values()) - start if len(arrivals) == len(supervisors) else float("inf")
                times.append(last)
                result.note(f"wallboard {number} ({len(frame)} characters) to {len(supervisors)} supervisor sockets: "
                            f"published once per language in {1000 * published:.1f} ms, {len(arrivals)} received, the last after "
                            f"{1000 * last:.0f} ms")
                await asyncio.sleep(1)
        finally:
            await bus.close()
        result.figures["B3 wallboard last ms"] = round(1000 * statistics.median(times), 0)

        # The same sockets without compression (second tabs of agents 1..PLAIN): what deflate costs.
        before = rss_bytes(pid)
        plain = [mint_session(agent_id) for agent_id in range(1, PLAIN + 1)]
        sockets += await open_sockets(plain, [node.ws], [node.base], parallel=100, compression=None)
        await asyncio.sleep(5)
        without = (rss_bytes(pid) - before) / PLAIN
        result.figures["B3 KiB per socket without deflate"] = round(without / 1024, 1)
        result.note(f"{PLAIN} more sockets without permessage-deflate: {without / 1024:.1f} KiB per socket "
                    f"(node RSS now {rss_bytes(pid) / 2**20:.0f} MiB)")
    finally:
        # The node first: closing 10,000 sockets one by one would make it record each closing.
        if node is not None:
            node.stop()
        await close_sockets(sockets)
        await drop_database(database)
        await delete_redis_keys(prefix)
