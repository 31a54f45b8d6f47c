"""B1 screen-pop latency: CTI newCall at a fixed rate, timed until the pop frame reaches the agent's socket.

Production shape: one node (`python -m console serve`, one worker) on the 1,000,000-customer
PostgreSQL database with the Redis bus; 1,000 agents with a socket each, all available. Embedded
default: the same node on a SQLite file with 10,000 seeded customers and the in-process bus.

Each newCall comes from a different seeded customer (so the pop shows a real picture: history,
tickets, notes). The clock starts when the call is due to be sent (open loop: on schedule whatever
the answers; a wait for a free connection counts) and stops when the agent's socket delivers a
frame holding `data-offer="<conversation id>"`, the offered pop of that call (templates/partials/
pop.html). To keep the agents available (steady state rather than 1,000 agents used up after 10 s),
every popped call is worked like a real one: the PBX posts `answer` 0.5 s after the pop, `hangup`
3 s later, and the agent posts the wrap-up disposition 0.5 s after that, which makes them available
again. So each call also costs the node two more CTI events and one agent request, as in life.

Two windows on the same sockets: first a low rate (the latency of a pop when the node is not
overloaded), then the issue's rate (100 per second for 60 s). A call still without its pop GRACE
seconds after the last was sent counts as infinitely late. On the embedded default, short windows
at rising rates between the two show where it starts to shed newCalls with 503 and Retry-After.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks import dataset
from benchmarks.client import AgentSocket, HttpPool, close_sockets, open_sockets
from benchmarks.common import (
    Login,
    PhaseResult,
    Summary,
    copy_database,
    cpu_seconds,
    delete_redis_keys,
    drop_database,
    loadavg,
    mint_session,
    sa_url,
    start_node,
    wait_healthy,
)
from benchmarks.load import Meter, PopLoad, bucket_quantile, histogram, paced
from benchmarks.profile import DbSampler

AGENTS = 1000
GRACE = 15.0
POP_HISTOGRAM = "console_pop_latency_seconds"
HTTP_SAMPLE = 50  # agents that press Available through HTTP; the others are set so in one transaction


async def press_available(pools: list[HttpPool], logins: list[Login], parallel: int = 10) -> list[float]:
    """Agents press Available through their node (POST /agent/status); returns each request's seconds."""
    gate = asyncio.Semaphore(parallel)
    spent: list[float] = []

    async def one(index: int) -> None:
        login = logins[index]
        pool = pools[index % len(pools)]
        async with gate:
            began = time.perf_counter()
            status, _ = await pool.request("POST", "/agent/status", {"status": "available"}, {
                "Cookie": login.cookie, "X-CSRF-Token": login.csrf, "Origin": pool.origin, "HX-Request": "true"})
            spent.append(time.perf_counter() - began if status in (200, 204) else float("inf"))

    await asyncio.gather(*(one(i) for i in range(len(logins))))
    return spent


async def make_available(database_url: str, agent_ids: list[int]) -> None:
    """What POST /agent/status does to each agent's row (console.lifecycle.set_presence: status, idle
    since now, a new status period), in one transaction and without rendering each page's answer."""
    from sqlalchemy import select

    from console.db import Database
    from console.lifecycle import set_presence
    from console.models import Agent, AgentStatus

    db = Database(database_url)
    try:
        async with db.transaction() as session:
            agents = list(await session.scalars(select(Agent).where(Agent.id.in_(agent_ids))
                                                .order_by(Agent.id).with_for_update()))
            for agent in agents:
                await set_presence(session, agent, AgentStatus.AVAILABLE)
    finally:
        await db.close()


async def scrape(pool: HttpPool) -> str:
    try:
        status, body = await asyncio.wait_for(pool.request("GET", "/metrics"), 10)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return ""
    return body.decode() if status == 200 else ""


async def idle_share(pid: int, seconds: float = 5.0) -> float:
    """The share of a core the node uses with its sockets open and no calls (sweeps, keep-alives)."""
    before, began = cpu_seconds(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.perf_counter() - began)


async def window(result: PhaseResult, load: PopLoad, label: str, admin: HttpPool, pid: int, database: str | None,
                 *, rate: float, duration: float, warm_up: float, tag: str, idle: float = 0.0) -> dict[str, Any]:
    """One measured window: `warm_up` s then `duration` s of newCall at `rate` per second; returns
    its figures, with the errors the calls met."""
    load.run = f"{tag}-{int(time.time())}"
    warm = int(warm_up * rate)
    total = warm + int(duration * rate)
    meter = Meter([pid])
    sampler = DbSampler(database) if database else None
    marks: dict[str, object] = {}

    async def open_window() -> None:
        await asyncio.sleep(warm_up)
        marks["before"] = await scrape(admin)
        marks["load"] = loadavg()
        marks["popped"] = len(load.popped)
        meter.start()
        if sampler:
            sampler.start()

    opener = asyncio.create_task(open_window())
    tasks = await paced(total, rate, load.new_call)
    await opener
    deadline = time.perf_counter() + GRACE
    while time.perf_counter() < deadline:
        _, _, missing = load.latencies(range(warm, total))
        if not missing and all(task.done() for task in tasks):
            break
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    wall = time.perf_counter() - meter.began
    node_cpu = meter.cpu_used()
    usage = await meter.stop()
    popped_in_window = len(load.popped) - int(marks["popped"])  # type: ignore[call-overload]
    after = await scrape(admin)
    pops, replies, missing = load.latencies(range(warm, total))
    pop, reply = Summary.of(pops), Summary.of(replies)
    key = f"B1 {label} @{rate:g}/s"
    result.figures[key] = {"p50 ms": round(pop.p50, 1), "p95 ms": round(pop.p95, 1), "p99 ms": round(pop.p99, 1),
                           "calls": pop.count, "without pop": missing,
                           "pops per s": round(popped_in_window / wall, 1),
                           "node CPU ms per pop": round(1000 * node_cpu / max(popped_in_window, 1), 0)}
    result.note(f"{key}: {total} calls in {total / rate:.0f} s ({warm} warm-up); load average at start "
                f"{marks['load']}, at end {loadavg()}")
    result.note(f"{key}: request sent -> pop received: {pop.ms()}; {missing} measured calls without a pop "
                f"{GRACE:g} s after the last was sent (counted as infinitely late)")
    result.note(f"{key}: request sent -> newCall reply: {reply.ms()}")
    result.note(f"{key}: pops received {popped_in_window} in {wall:.0f} s = {popped_in_window / wall:.1f}/s; "
                f"node CPU {node_cpu:.1f} s = {1000 * node_cpu / max(popped_in_window, 1):.0f} ms per pop "
                f"(each popped call also answered, hung up and wrapped up)")
    worked = 1000 * max(node_cpu - idle * wall, 0.0) / max(popped_in_window, 1)
    result.figures[key]["node CPU ms per pop above idle"] = round(worked, 0)  # type: ignore[index]
    result.note(f"{key}: above the node's idle use ({100 * idle:.1f} % of a core with the sockets open and no calls): "
                f"{worked:.0f} ms per pop")
    result.note(f"{key}: newCall replies by state: {dict(load.states)} (queued = no agent free at arrival)")
    if load.errors:
        result.note(f"{key}: errors: {dict(load.errors)}")
    seen: dict[str, Any] = {**result.figures[key], "errors": dict(load.errors)}
    before_h, after_h = histogram(str(marks.get("before", "")), POP_HISTOGRAM), histogram(after, POP_HISTOGRAM)
    if after_h and before_h:
        result.note(f"{key}: the node's own histogram (newCall received -> pop published): p50 in "
                    f"{bucket_quantile(before_h, after_h, 0.5)}, p99 in {bucket_quantile(before_h, after_h, 0.99)}")
    result.note(f"{key}: {usage}")
    result.figures[f"{key} usage"] = usage
    if sampler:
        for line in await sampler.stop():
            result.note(f"{key}: database {line}")
    load.states.clear()
    load.errors.clear()
    return seen


async def rate_sweep(result: PhaseResult, load: PopLoad, label: str, admin: HttpPool, pid: int,
                     database: str | None, rates: tuple[float, ...], duration: float, idle: float) -> None:
    """Short windows at rising rates: the first rate at which newCalls are shed with 503 (or pops
    go missing) is where the node's capacity ends."""
    lines, shed_from = [], None
    for rate in rates:
        seen = await window(result, load, label, admin, pid, database, rate=rate, duration=duration, warm_up=2,
                            tag=f"sweep{rate:g}", idle=idle)
        errors = seen["errors"]
        shed = sum(count for what, count in errors.items() if what.startswith("newCall"))
        later = {what: count for what, count in errors.items() if not what.startswith("newCall")}
        lines.append(f"{rate:g}/s: pop p99 {seen['p99 ms']} ms, {seen['pops per s']} pops/s, {shed} newCalls "
                     f"refused, {seen['without pop']} without a pop"
                     + (f", later steps refused (the phone system retries them) {later}" if later else ""))
        if shed_from is None and (shed or seen["without pop"]):
            shed_from = rate
    result.figures[f"B1 {label} sheds from"] = shed_from
    where = f"sheds from {shed_from:g}/s" if shed_from is not None else f"no shedding up to {rates[-1]:g}/s"
    result.note(f"B1 {label} rate sweep ({duration:g} s each): " + "; ".join(lines) + f"; {where}")


async def run_pop(result: PhaseResult, label: str, base: str, ws: str, pid: int, callers: list[str],
                  database_url: str, sockets_left: list[AgentSocket], *, rate: float, duration: float,
                  warm_up: float, low_rate: float, low_duration: float, database: str | None = None,
                  sweep: tuple[float, ...] = (), sweep_duration: float = 10.0) -> PopLoad:
    """Both windows on one node, with a window at each rate of `sweep` between them (where the node
    starts to shed); the sockets are left in `sockets_left` for the caller to close after
    stopping the node (closing 1,000 sockets first would make the node record each closing)."""
    logins = [mint_session(agent_id) for agent_id in range(1, AGENTS + 1)]
    cti = [HttpPool(base, size=1024)]
    agent_http = [HttpPool(base, size=128)]
    admin = HttpPool(base, size=2)
    load = PopLoad(cti, agent_http, callers, run="")
    sockets: list[AgentSocket] = []
    try:
        began = time.perf_counter()
        sockets = await open_sockets(logins, [ws], [base], parallel=50, on_frame=load.on_frame)
        opened = time.perf_counter() - began
        pressed = await press_available(agent_http, logins[:HTTP_SAMPLE])
        await make_available(database_url, [login.agent_id for login in logins[HTTP_SAMPLE:]])
        result.note(f"{label}: {len(sockets)} sockets open in {opened:.1f} s ({1000 * opened / len(sockets):.0f} ms "
                    f"each, 50 at a time); POST /agent/status for {HTTP_SAMPLE} agents: "
                    f"{Summary.of(pressed).ms()}; the other {AGENTS - HTTP_SAMPLE} set available in one transaction")
        result.figures[f"B1 {label} socket open ms"] = round(1000 * opened / len(sockets), 1)
        idle = await idle_share(pid)
        await window(result, load, label, admin, pid, database, rate=low_rate, duration=low_duration, warm_up=2,
                     tag="low", idle=idle)
        if sweep:
            await rate_sweep(result, load, label, admin, pid, database, sweep, sweep_duration, idle)
        await window(result, load, label, admin, pid, database, rate=rate, duration=duration, warm_up=warm_up,
                     tag="spec", idle=idle)
        sizes = sorted(load.frame_sizes)
        if sizes:
            result.note(f"{label}: pop frame size (characters, as received): median {sizes[len(sizes) // 2]}, "
                        f"min {sizes[0]}, max {sizes[-1]}")
            result.figures[f"B1 {label} frame chars"] = sizes[len(sizes) // 2]
        every = sorted(load.all_sizes)
        if every:
            result.note(f"{label}: all {len(every)} frames the agents received (snapshots, pops, active calls, "
                        f"wrap-ups): median {every[len(every) // 2]}, p90 {every[int(len(every) * 0.9)]}, "
                        f"largest {every[-1]} characters")
        await load.finish(5)
        return load
    finally:
        for pool in (*cti, *agent_http, admin):
            await pool.close()
        sockets_left.extend(sockets)


async def run_postgres(result: PhaseResult, template: str, work: Path, run: str, **rates: float) -> PopLoad:
    database = f"bench_{run}_b1"
    prefix = f"bench-{run}-b1:"
    result.note(f"copied {template} to {database} in {await copy_database(template, database):.1f} s")
    node = None
    sockets: list[AgentSocket] = []
    try:
        needed = int((rates["duration"] + rates["warm_up"]) * rates["rate"]
                     + (rates["low_duration"] + 2) * rates["low_rate"]) + 10
        callers = await dataset.callers(database, needed)
        if len(callers) < needed:
            result.note(f"only {len(callers)} distinct seeded callers for {needed} calls: some call twice")
        node = start_node(sa_url(database), work / "b1-postgres", redis_prefix=prefix)
        await wait_healthy(node.base, node.process)
        return await run_pop(result, "PostgreSQL 1M + Redis", node.base, node.ws, node.process.pid, callers,
                             sa_url(database), sockets, database=database, **rates)
    finally:
        if node is not None:
            node.stop()
        await close_sockets(sockets)
        await drop_database(database)
        await delete_redis_keys(prefix)


SQLITE_SWEEP = (10.0, 20.0, 30.0, 40.0)  # calls per second, 10 s each: where the embedded default starts to shed


async def run_sqlite(result: PhaseResult, work: Path, *, customers: int = 10_000,
                     sweep: tuple[float, ...] = SQLITE_SWEEP, **rates: float) -> PopLoad:
    var = work / "b1-sqlite"
    var.mkdir(parents=True, exist_ok=True)
    path = var / "console.db"
    built = await dataset.build_sqlite(path, AGENTS, customers)
    result.note(f"SQLite: {AGENTS} agents and {built['seed']} ({built['seconds']:.1f} s)")
    needed = int((rates["duration"] + rates["warm_up"]) * rates["rate"]
                 + (rates["low_duration"] + 2) * rates["low_rate"] + sum(12 * rate for rate in sweep)) + 10
    callers = await dataset.sqlite_callers(built["url"], needed)
    node = start_node(built["url"], var, redis_prefix=None)
    sockets: list[AgentSocket] = []
    try:
        await wait_healthy(node.base, node.process)
        return await run_pop(result, "SQLite 10k + memory bus", node.base, node.ws, node.process.pid, callers,
                             built["url"], sockets, sweep=sweep, **rates)
    finally:
        node.stop()
        await close_sockets(sockets)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
