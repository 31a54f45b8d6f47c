"""B2 the floor: the same load against a bare Starlette websocket endpoint sending a pre-rendered fragment.

benchmarks/floor_app.py runs under uvicorn like the console (httptools, websockets-sansio with
permessage-deflate, access log). The fragment is a real pop frame captured in B1 of the median size
(or, when B1 did not run, a pop-sized stand-in). 1,000 sockets are open; triggers go to them in
turn at the same rate as B1's windows, so each socket has at most one frame outstanding and the
frame that arrives on socket n answers the oldest trigger for n. The clock runs, as in B1, from
the moment the trigger is due to be sent to the frame's arrival.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from websockets.asyncio.client import connect

from benchmarks.client import HttpPool
from benchmarks.common import ROOT, PhaseResult, Summary, free_port, loadavg, wait_healthy
from benchmarks.load import Meter, paced

SOCKETS = 1000


def stand_in(size: int = 3300) -> str:
    row = '<tr><td>12 Mar 2025 14:02</td><td>Call</td><td>resolved</td></tr>'
    body = "".join(row for _ in range(size // len(row) + 1))
    html = f'<section id="screen-pop" hx-swap-oob="outerMorph"><article><table>{body}</table></article></section>'
    return html[:size]


class Floor:
    def __init__(self, fragment_file: Path, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "BENCH_FRAGMENT_FILE": str(fragment_file)}
        with open(log, "wb") as handle:
            self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.floor_app", str(self.port)], env=env,
                                            stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def run(result: PhaseResult, work: Path, fragment: str, windows: list[tuple[float, float]]) -> None:
    """`windows`: (rate per second, seconds) measured one after the other on the same sockets."""
    work.mkdir(parents=True, exist_ok=True)
    if not fragment:
        fragment = stand_in()
        result.note(f"no B1 pop frame captured; using a {len(fragment)}-character stand-in")
    path = work / "fragment.html"
    path.write_text(fragment)
    result.note(f"fragment: {len(fragment)} characters (a B1 pop frame of the median size)")
    result.figures["B2 fragment chars"] = len(fragment)
    floor = Floor(path, work / "floor.log")
    pending: dict[int, deque[float]] = {n: deque() for n in range(SOCKETS)}
    arrived: dict[str, list[float]] = {}
    conns = []
    readers = []
    try:
        await wait_healthy(floor.base, floor.process)
        ws = floor.base.replace("http", "ws")

        async def read(n: int, conn: object) -> None:
            async for _ in conn:  # type: ignore[attr-defined]
                now = time.perf_counter()
                if pending[n]:
                    sent = pending[n].popleft()
                    arrived.setdefault(current["tag"], []).append(now - sent)

        current = {"tag": "warm"}
        gate = asyncio.Semaphore(100)

        async def open_one(n: int) -> object:
            async with gate:
                return await connect(f"{ws}/ws/{n}", origin=floor.base, max_size=None, ping_interval=None,
                                     open_timeout=60)

        began = time.perf_counter()
        conns = list(await asyncio.gather(*(open_one(n) for n in range(SOCKETS))))
        result.note(f"{SOCKETS} sockets open in {time.perf_counter() - began:.1f} s")
        readers = [asyncio.create_task(read(n, conn)) for n, conn in enumerate(conns)]
        pool = HttpPool(floor.base, size=1024)

        async def trigger(i: int) -> None:
            n = i % SOCKETS
            pending[n].append(time.perf_counter())
            status, _ = await pool.request("POST", f"/trigger/{n}")
            if status != 200:
                result.note(f"trigger {i} answered {status}")

        for rate, seconds in windows:
            warm = int(2 * rate)
            current["tag"] = "warm"
            await asyncio.gather(*await paced(warm, rate, trigger))
            await asyncio.sleep(0.5)
            tag = current["tag"] = f"{rate:g}/s"
            meter = Meter([floor.process.pid])
            meter.start()
            load = loadavg()
            count = int(rate * seconds)
            tasks = await paced(count, rate, trigger)
            await asyncio.wait(tasks, timeout=15)
            deadline = time.perf_counter() + 15
            while len(arrived.get(tag, [])) < count and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            usage = await meter.stop()
            got = arrived.get(tag, [])
            lost = count - len(got)
            summary = Summary.of(got + [float("inf")] * lost)
            result.figures[f"B2 floor @{tag}"] = {"p50 ms": round(summary.p50, 2), "p95 ms": round(summary.p95, 2),
                                                  "p99 ms": round(summary.p99, 2), "calls": summary.count,
                                                  "without frame": lost}
            result.note(f"floor @{tag} for {seconds:g} s: trigger sent -> fragment received: {summary.ms()}, "
                        f"max {summary.max:.1f} ms; {lost} without a frame; load average at start {load}; {usage}")
        await pool.close()
    finally:
        for task in readers:
            task.cancel()
        for offset in range(0, len(conns), 500):
            await asyncio.gather(*(c.close() for c in conns[offset:offset + 500]),  # type: ignore[attr-defined]
                                 return_exceptions=True)
        floor.stop()
