"""Where a call's cost goes: the node's CPU per step of one call, and the plan of the agent-picking query.
Not part of `make bench`; its figures back RESULTS.md's "What limits it".

    .venv/bin/python -m benchmarks.steps [--calls 20] [--py-spy]

One node on a copy of the 1,000,000-customer template with the Redis bus, 1,000 agents with a socket
each, available. Calls are made one at a time, each step 0.3 s after the previous one settled:
newCall (CTI), answer (CTI), hangup (CTI), wrap-up (the agent's POST). For each step: the reply
time, the node's CPU time (minus its idle CPU over the same time), and the largest frame the agent's
socket received. Then EXPLAIN ANALYZE of the query console.routing.pick_agent sends runs on the same
database with its pending offers. With --py-spy (pip install py-spy) the node is
profiled during the calls and the functions with the most samples are listed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
import uvloop

from benchmarks import dataset
from benchmarks.b1_pop import make_available
from benchmarks.client import AgentSocket, HttpPool, close_sockets, open_sockets
from benchmarks.common import (
    ROOT,
    Summary,
    copy_database,
    cpu_seconds,
    delete_redis_keys,
    drop_database,
    dsn,
    loadavg,
    mint_session,
    raise_fd_limit,
    run_id,
    sa_url,
    start_node,
    wait_healthy,
)
from benchmarks.load import CTI_PATH, SERVICE_NUMBER

AGENTS = 1000
STEPS = ("newCall", "answer", "hangup", "wrap-up")

def pick_sql() -> str:
    """The statement pick_agent sends for a call without required skills (console.routing)."""
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    from console.models import Agent

    query = (select(Agent).where(Agent.ready_call).order_by(Agent.ready_since, Agent.id).limit(1)
             .with_for_update(skip_locked=True))
    return str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


async def explain(database: str, sql: str) -> tuple[float, str]:
    conn = await asyncpg.connect(dsn(database))
    try:
        async with conn.transaction():
            rows = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE) " + sql)]
        took = [float(r.split(":")[1].split()[0]) for r in rows if r.startswith("Execution Time")]
        scan = next((r.strip() for r in rows if "Scan" in r and "agents" in r), "")
        return (took[0] if took else float("nan")), scan
    finally:
        await conn.close()


SKIP = {"<module>", "main", "run", "serve", "__call__"}


def hot_functions(raw: Path, top: int = 30) -> list[str]:
    """Inclusive sample share per function from py-spy's raw output (console and realtime code only)."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        total += int(count)
        seen = set()
        for frame in stack.split(";"):
            name = frame.split(" (")[0]
            where = frame.split(" (")[1].split(":")[0] if " (" in frame else ""
            if name in SKIP:
                continue
            if where.startswith(("console/", "realtime/", "integrations/", "templates/", "jinja2/", "sqlalchemy/",
                                 "redis/", "websockets/", "asyncpg/")):
                key = f"{name} ({where})"
                if key not in seen:
                    seen.add(key)
                    inclusive[key] += int(count)
    return [f"{100 * n / max(total, 1):5.1f}%  {name}" for name, n in inclusive.most_common(top)]


async def main(args: argparse.Namespace) -> None:
    run = run_id()
    database = f"bench_{run}_steps"
    prefix = f"bench-{run}-steps:"
    work = ROOT / "benchmarks" / "out" / f"steps-{run}"
    data = await dataset.ensure_template()
    await copy_database(data.template, database)
    node = start_node(sa_url(database), work, redis_prefix=prefix)
    sockets: list[AgentSocket] = []
    spy: subprocess.Popen[bytes] | None = None
    try:
        await wait_healthy(node.base, node.process)
        pid = node.process.pid
        logins = [mint_session(i) for i in range(1, AGENTS + 1)]
        largest: dict[int, int] = {}

        def on_frame(sock: AgentSocket, text: str, now: float) -> None:
            largest[sock.login.agent_id] = max(largest.get(sock.login.agent_id, 0), len(text))

        sockets = await open_sockets(logins, [node.ws], [node.base], parallel=50, on_frame=on_frame)
        await make_available(sa_url(database), list(range(1, AGENTS + 1)))
        callers = await dataset.callers(database, args.calls + 10)
        pool = HttpPool(node.base, size=4)
        await asyncio.sleep(3)
        began, cpu = time.perf_counter(), cpu_seconds(pid)
        await asyncio.sleep(5)
        idle = (cpu_seconds(pid) - cpu) / (time.perf_counter() - began)
        print(f"load average {loadavg()}; node idle CPU with {AGENTS} sockets: {100 * idle:.0f} % of a core")
        if args.py_spy:
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            spy = subprocess.Popen([py_spy, "record", "-p", str(pid), "-r", "200", "-f", "raw", "--nonblocking",
                                    "-o", str(work / "py-spy.txt")], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            await asyncio.sleep(1)
        wall: dict[str, list[float]] = {s: [] for s in STEPS}
        cpu_ms: dict[str, list[float]] = {s: [] for s in STEPS}
        frames: dict[str, list[int]] = {s: [] for s in STEPS}
        for i in range(args.calls):
            call_id = f"steps-{run}-{i}"
            agent = 0
            conversation = 0
            for step in STEPS:
                largest.clear()
                began, cpu = time.perf_counter(), cpu_seconds(pid)
                if step == "newCall":
                    status, body = await pool.request("POST", CTI_PATH, {
                        "event": "newCall", "from": callers[i], "to": SERVICE_NUMBER, "direction": "in",
                        "callId": call_id})
                    reply = json.loads(body)
                    conversation, agent = int(reply["conversation"]), int(reply["target"]) - 100_000
                elif step == "answer":
                    status, body = await pool.request("POST", CTI_PATH, {
                        "event": "answer", "callId": call_id, "answeringNumber": str(100_000 + agent)})
                elif step == "hangup":
                    status, body = await pool.request("POST", CTI_PATH, {
                        "event": "hangup", "callId": call_id, "cause": "normalClearing"})
                else:
                    login = logins[agent - 1]
                    status, body = await pool.request("POST", f"/conversations/{conversation}/wrap-up",
                                                      {"disposition": "resolved"}, {
                                                          "Cookie": login.cookie, "X-CSRF-Token": login.csrf,
                                                          "Origin": node.base})
                replied = time.perf_counter() - began
                await asyncio.sleep(0.3)  # the pushes after the reply settle
                spent = cpu_seconds(pid) - cpu - idle * (time.perf_counter() - began)
                if status not in (200, 204):
                    raise RuntimeError(f"{step} answered {status}: {body[:200]!r}")
                wall[step].append(replied)
                cpu_ms[step].append(1000 * spent)
                frames[step].append(largest.get(agent, 0))
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
            spy.wait(30)
        print(f"{args.calls} calls, one step at a time ({loadavg()}):")
        total = 0.0
        for step in STEPS:
            mean = sum(cpu_ms[step]) / len(cpu_ms[step])
            total += mean
            print(f"  {step:8} reply {Summary.of(wall[step]).p50:6.1f} ms (p50); node CPU {mean:6.1f} ms (mean, "
                  f"clock ticks of 10 ms); largest frame to the agent {max(frames[step]):7d} characters")
        print(f"  a whole call: {total:.0f} ms of node CPU, so one node core serves about {1000 / total:.1f} calls/s")
        sql = pick_sql()
        plain, scan = await explain(database, sql)
        print(f"pick_agent's query with {AGENTS} available agents: {plain:.2f} ms execution ({scan})")
        if spy is not None and (work / "py-spy.txt").exists():
            if args.py_spy_raw:
                shutil.copy(work / "py-spy.txt", args.py_spy_raw)
            print("py-spy, inclusive share of the node's samples during the calls:")
            for line in hot_functions(work / "py-spy.txt"):
                print("  " + line)
        await pool.close()
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        node.stop()
        await close_sockets(sockets)
        await drop_database(database)
        await delete_redis_keys(prefix)
        with contextlib.suppress(OSError):
            shutil.rmtree(work)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m benchmarks.steps", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--py-spy", action="store_true", help="profile the node with py-spy (pip install py-spy)")
    parser.add_argument("--py-spy-raw", type=Path, help="with --py-spy: keep py-spy's raw samples in this file")
    raise_fd_limit()
    uvloop.run(main(parser.parse_args()))
