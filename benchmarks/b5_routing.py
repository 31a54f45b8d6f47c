"""B5 routing throughput: calls routed per second on PostgreSQL with two nodes and 500 agents.

Two nodes (`python -m console serve`, one worker each) share the 1,000,000-customer database and
the Redis bus; 500 agents each have a socket (250 per node) and are available. A closed loop of
CONCURRENCY phone-system connections, half to each node, posts newCall from seeded customers as
fast as the nodes answer; a call is routed when its reply says `offered` (the console picked an
agent and the offer was committed and pushed). One round is at most 500 calls (one per agent);
after a round every call is hung up (abandoned: the offers are withdrawn, the agents stay
available) and the next round starts, until ROUND_SECONDS of routing have been measured.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

from benchmarks import dataset
from benchmarks.b1_pop import make_available
from benchmarks.client import AgentSocket, HttpPool, close_sockets, open_sockets
from benchmarks.common import (
    PhaseResult,
    Summary,
    copy_database,
    delete_redis_keys,
    drop_database,
    loadavg,
    mint_session,
    sa_url,
    start_node,
    wait_healthy,
)
from benchmarks.load import CTI_PATH, SERVICE_NUMBER, Meter
from benchmarks.profile import DbSampler

AGENTS = 500
CONCURRENCY = 32
MEASURE_SECONDS = 30.0


async def run(result: PhaseResult, template: str, work: Path, run_id: str) -> None:
    database = f"bench_{run_id}_b5"
    prefix = f"bench-{run_id}-b5:"
    result.note(f"copied {template} to {database} in {await copy_database(template, database):.1f} s")
    nodes = []
    sockets: list[AgentSocket] = []
    pools: list[HttpPool] = []
    try:
        callers = await dataset.callers(database, 3000, seed=55)
        nodes = [start_node(sa_url(database), work / "b5", redis_prefix=prefix) for _ in range(2)]
        await asyncio.gather(*(wait_healthy(node.base, node.process) for node in nodes))
        logins = [mint_session(agent_id) for agent_id in range(1, AGENTS + 1)]
        began = time.perf_counter()
        sockets = await open_sockets(logins, [n.ws for n in nodes], [n.base for n in nodes], parallel=50)
        await make_available(sa_url(database), [login.agent_id for login in logins])
        result.note(f"{len(sockets)} sockets open on 2 nodes and agents available in "
                    f"{time.perf_counter() - began:.1f} s")
        pools = [HttpPool(node.base, size=CONCURRENCY) for node in nodes]
        meter = Meter([node.process.pid for node in nodes])
        sampler = DbSampler(database)
        states: Counter[str] = Counter()
        replies: list[float] = []
        routed_total = 0
        measured = 0.0
        next_caller = 0
        rounds = 0
        meter.start()
        sampler.start()
        load = loadavg()
        while measured < MEASURE_SECONDS and rounds < 6:
            rounds += 1
            calls = [f"b5-{run_id}-{rounds}-{i}" for i in range(AGENTS)]
            queue = list(enumerate(calls))
            routed = 0
            stop_at = time.perf_counter() + (MEASURE_SECONDS - measured)

            async def worker(w: int, queue: list[tuple[int, str]], stop_at: float) -> None:
                nonlocal routed, next_caller
                while queue and time.perf_counter() < stop_at:
                    _, call_id = queue.pop(0)
                    number = callers[next_caller % len(callers)]
                    next_caller += 1
                    sent = time.perf_counter()
                    status, body = await pools[w % 2].request("POST", CTI_PATH, {
                        "event": "newCall", "from": number, "to": SERVICE_NUMBER, "direction": "in",
                        "callId": call_id})
                    replies.append(time.perf_counter() - sent)
                    state = json.loads(body).get("state", "?") if status == 200 else f"HTTP {status}"
                    states[state] += 1
                    routed += state == "offered"

            round_began = time.perf_counter()
            await asyncio.gather(*(worker(w, queue, stop_at) for w in range(CONCURRENCY)))
            spent = time.perf_counter() - round_began
            measured += spent
            routed_total += routed
            posted = AGENTS - len(queue)
            result.note(f"round {rounds}: {routed} of {posted} calls routed in {spent:.1f} s = {routed / spent:.1f}/s")
            # Hang every call of the round up (not measured): the offers are withdrawn, agents stay available.
            hang = list(calls[:posted])

            async def hang_up(w: int, hang: list[str]) -> None:
                while hang:
                    call_id = hang.pop()
                    await pools[w % 2].request("POST", CTI_PATH, {"event": "hangup", "callId": call_id,
                                                                  "cause": "cancel"})

            paused = time.perf_counter()
            await asyncio.gather(*(hang_up(w, hang) for w in range(CONCURRENCY)))
            result.note(f"round {rounds}: hung up {posted} calls in {time.perf_counter() - paused:.1f} s "
                        "(not measured)")
        usage = await meter.stop()
        profile = await sampler.stop()
        rate = routed_total / measured if measured else 0.0
        reply = Summary.of(replies)
        result.figures["B5 routed per s"] = round(rate, 1)
        result.figures["B5 newCall reply"] = {"p50 ms": round(reply.p50, 1), "p99 ms": round(reply.p99, 1)}
        result.note(f"routed {routed_total} calls in {measured:.1f} s of routing = {rate:.1f} calls/s over 2 nodes; "
                    f"replies by state {dict(states)}; newCall reply {reply.ms()}")
        result.note(f"load average at start {load}, at end {loadavg()}; over all rounds (hang-ups included): {usage}")
        for line in profile:
            result.note(f"database {line}")
    finally:
        for pool in pools:
            await pool.close()
        for node in nodes:
            node.stop()
        await close_sockets(sockets)
        await drop_database(database)
        await delete_redis_keys(prefix)
