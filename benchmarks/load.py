"""Open-loop load: requests at a fixed rate whatever the answers, and the agents' part of each call."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from benchmarks.client import AgentSocket, HttpPool
from benchmarks.common import CTI_TOKEN, Login, LoopLag, Summary, cpu_seconds, self_cpu

OFFER = re.compile(r'data-offer="(\d+)"')
CTI_PATH = f"/integrations/cti/{CTI_TOKEN}"
SERVICE_NUMBER = "+31208084400"


async def paced(count: int, rate: float, start: Callable[[int], Awaitable[None]]) -> list[asyncio.Task[None]]:
    """Start `start(i)` for i in 0..count-1 at `rate` per second, on schedule, without waiting for any."""
    tasks: list[asyncio.Task[None]] = []
    began = time.perf_counter()
    for i in range(count):
        delay = began + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(start(i)))
    return tasks


@dataclass
class Behaviour:
    """What an agent does with an offer: the PBX reports the answer after `ring` seconds, the caller
    hangs up after `talk`, and the agent picks a disposition `wrap` seconds later."""

    ring: float = 0.5
    talk: float = 3.0
    wrap: float = 0.5


@dataclass
class PopLoad:
    """B1: newCall at `rate`/s; each pop frame is timestamped on the agent's socket; agents then work the call."""

    cti: list[HttpPool]
    agent_http: list[HttpPool]
    callers: list[str]
    run: str
    behaviour: Behaviour = field(default_factory=Behaviour)
    sent: dict[str, float] = field(default_factory=dict)
    conversation_of: dict[str, int] = field(default_factory=dict)
    call_of: dict[int, str] = field(default_factory=dict)
    popped: dict[int, tuple[float, int]] = field(default_factory=dict)  # conversation -> (time, frame size)
    answered: dict[str, float] = field(default_factory=dict)  # newCall reply time
    states: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    frame_sizes: list[int] = field(default_factory=list)
    all_sizes: list[int] = field(default_factory=list)  # every frame the agents' sockets received
    _known: dict[int, asyncio.Future[str]] = field(default_factory=dict)
    _work: set[asyncio.Task[None]] = field(default_factory=set)
    stopping: bool = False

    def on_frame(self, sock: AgentSocket, text: str, now: float) -> None:
        self.all_sizes.append(len(text))
        for match in OFFER.finditer(text):
            conversation = int(match.group(1))
            if conversation in self.popped:
                continue
            self.popped[conversation] = (now, len(text))
            self.frame_sizes.append(len(text))
            if len(self.samples) < 500:
                self.samples.append(text)
            if not self.stopping:
                task = asyncio.create_task(self._work_call(sock, conversation))
                self._work.add(task)
                task.add_done_callback(self._work.discard)

    def median_frame(self) -> str:
        """A pop frame as sent, of the median size: what B2 sends pre-rendered."""
        ordered = sorted(self.samples, key=len)
        return ordered[len(ordered) // 2] if ordered else ""

    def _call_id(self, conversation: int) -> asyncio.Future[str]:
        future = self._known.get(conversation)
        if future is None:
            future = self._known[conversation] = asyncio.get_running_loop().create_future()
        return future

    async def new_call(self, i: int) -> None:
        call_id = f"{self.run}-{i}"
        pool = self.cti[i % len(self.cti)]
        form = {"event": "newCall", "from": self.callers[i % len(self.callers)], "to": SERVICE_NUMBER,
                "direction": "in", "callId": call_id}

        # The clock starts when the phone system sends the call: if this client has to wait for a free
        # connection because the node is slow to answer, that wait is part of the latency too.
        self.sent[call_id] = time.perf_counter()
        try:
            status, body = await pool.request("POST", CTI_PATH, form)
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.errors[f"newCall {exc.__class__.__name__}"] += 1
            return
        self.answered[call_id] = time.perf_counter()
        if status != 200:
            self.errors[f"newCall HTTP {status}"] += 1
            return
        reply = json.loads(body)
        conversation = int(reply["conversation"])
        self.states[reply.get("state", "?")] += 1
        self.conversation_of[call_id] = conversation
        self.call_of[conversation] = call_id
        future = self._call_id(conversation)
        if not future.done():
            future.set_result(call_id)

    async def _post(self, pools: list[HttpPool], what: str, path: str, form: dict[str, str],
                    headers: dict[str, str] | None = None, node: int = 0) -> bool:
        try:
            status, _ = await pools[node % len(pools)].request("POST", path, form, headers)
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.errors[f"{what} {exc.__class__.__name__}"] += 1
            return False
        if status not in (200, 204):  # agent actions answer 204: the socket carries the change
            self.errors[f"{what} HTTP {status}"] += 1
            return False
        return True

    async def _work_call(self, sock: AgentSocket, conversation: int) -> None:
        b = self.behaviour
        login: Login = sock.login
        node = login.agent_id
        try:
            call_id = await asyncio.wait_for(self._call_id(conversation), 30)
        except TimeoutError:
            self.errors["pop without newCall reply"] += 1
            return
        await asyncio.sleep(b.ring)
        extension = str(100_000 + login.agent_id)
        if not await self._post(self.cti, "answer", CTI_PATH, {"event": "answer", "callId": call_id,
                                                                "answeringNumber": extension}, node=node):
            return
        await asyncio.sleep(b.talk)
        if not await self._post(self.cti, "hangup", CTI_PATH, {"event": "hangup", "callId": call_id,
                                                                "cause": "normalClearing"}, node=node):
            return
        await asyncio.sleep(b.wrap)
        pools = self.agent_http
        headers = {"Cookie": login.cookie, "X-CSRF-Token": login.csrf, "Origin": pools[node % len(pools)].origin,
                   "HX-Request": "true"}
        await self._post(pools, "wrap-up", f"/conversations/{conversation}/wrap-up", {"disposition": "resolved"},
                         headers, node=node)

    async def finish(self, timeout: float = 10.0) -> None:
        """Let calls under way finish (agents free again), then stop working new ones."""
        deadline = time.perf_counter() + timeout
        while self._work and time.perf_counter() < deadline:
            await asyncio.sleep(0.2)
        self.stopping = True
        for task in list(self._work):
            task.cancel()
        await asyncio.gather(*self._work, return_exceptions=True)

    def latencies(self, calls: range) -> tuple[list[float], list[float], int]:
        """(request sent -> pop received, request sent -> newCall reply, calls without a pop) for these calls.

        A call without a reply or a pop by now counts as infinitely late, so percentiles stay honest.
        """
        pops: list[float] = []
        replies: list[float] = []
        missing = 0
        inf = float("inf")
        for i in calls:
            call_id = f"{self.run}-{i}"
            sent = self.sent.get(call_id)
            if sent is None:
                missing += 1
                pops.append(inf)
                replies.append(inf)
                continue
            replies.append(self.answered[call_id] - sent if call_id in self.answered else inf)
            conversation = self.conversation_of.get(call_id)
            popped = self.popped.get(conversation) if conversation is not None else None
            if popped is None:
                missing += 1
                pops.append(inf)
            else:
                pops.append(popped[0] - sent)
        return pops, replies, missing


@dataclass
class Meter:
    """CPU used by the node processes and by this (client) process over a window, and the client's loop lag."""

    pids: list[int]
    lag: LoopLag = field(default_factory=LoopLag)
    began: float = 0.0
    cpu: dict[int, float] = field(default_factory=dict)
    client: float = 0.0

    def start(self) -> None:
        self.began = time.perf_counter()
        self.cpu = {pid: cpu_seconds(pid) for pid in self.pids}
        self.client = self_cpu()
        self.lag.start()

    def cpu_used(self) -> float:
        """CPU seconds the node processes used since start()."""
        return sum(cpu_seconds(pid) - self.cpu[pid] for pid in self.pids)

    async def stop(self) -> dict[str, float]:
        await self.lag.stop()
        wall = time.perf_counter() - self.began
        used = {f"node {n} CPU %": round(100 * (cpu_seconds(pid) - self.cpu[pid]) / wall, 0)
                for n, pid in enumerate(self.pids, 1)}
        used["client CPU %"] = round(100 * (self_cpu() - self.client) / wall, 0)
        lag = Summary.of(self.lag.samples)
        used["client loop lag p99 ms"] = round(lag.p99, 1)
        return used


def histogram(metrics: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of one Prometheus histogram: {upper bound: count}."""
    buckets: dict[float, float] = {}
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if bound == "+Inf" else float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> str:
    """The histogram bucket holding the q-quantile of what was observed between two scrapes."""
    deltas = {bound: after.get(bound, 0) - before.get(bound, 0) for bound in sorted(after)}
    total = deltas.get(float("inf"), 0)
    if not total:
        return "n/a"
    lower = 0.0
    for bound, count in deltas.items():
        if count >= q * total:
            return f"{lower * 1000:g}-{bound * 1000:g} ms" if bound != float("inf") else f"> {lower * 1000:g} ms"
        lower = bound
    return "n/a"
