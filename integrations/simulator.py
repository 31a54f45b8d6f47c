"""Demo traffic: a pretend phone system posting realistic inbound calls to the console's CTI endpoint.

Every call is its own task and behaves like a PBX that lets the console route (see
integrations.telephony.cti): newCall without `user`; when the reply names a target extension the
call rings there. While it rings the PBX re-posts the same newCall about once a second: once the
console says `active` (the agent pressed Accept in the page) the PBX connects the call (answer with
that extension), it is talked over and hung up; when the target changes the call rings there
instead, and when there is no target any more the caller is back on hold. With `auto_answer` the
extension answers by itself a few seconds after the ring instead, as a desk phone would. When
nobody is free the caller waits on hold while the PBX re-posts the same newCall until a target
appears or the caller gives up. Some callers hang up while it rings. Errors are logged and
retried, never raised.

New calls start at most `rate` a minute and, given a `staffing` function, only while the calls in
progress are fewer than the agents logged in plus a caller or so waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from console.customers import normalize_phone
from console.db import Database
from console.models import Agent, AgentStatus, ContactKind, ContactPoint
from console.seed import SERVICE_NUMBERS

log = logging.getLogger("integrations.simulator")

SERVICE_LINES = tuple(number.replace(" ", "") for numbers in SERVICE_NUMBERS.values() for number in numbers)
NL_AREAS = ("10", "20", "30", "33", "40", "50", "70", "71", "76", "172", "318", "492")


class _Retry(Exception):
    """The console could not be reached or failed (5xx): try again later."""


@dataclass(frozen=True)
class _Timing:
    ring: tuple[float, float]
    talk: tuple[float, float]
    hold_retry: float
    hold_max: float
    retry_delay: float
    retry_for: float
    hang_up_ringing: float
    ring_poll: float


class _Phone:
    """One pretend phone system talking to one console."""

    def __init__(self, client: httpx.AsyncClient, endpoint: str, timing: _Timing, rng: random.Random, *,
                 auto_answer: bool = False) -> None:
        self.client = client
        self.endpoint = endpoint
        self.timing = timing
        self.rng = rng
        self.auto_answer = auto_answer

    def _seconds(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    async def _post_once(self, data: dict[str, str]) -> dict[str, Any] | None:
        """The reply, or None when the console refused the event (4xx): retrying would not help."""
        try:
            response = await self.client.post(self.endpoint, data=data)
        except httpx.HTTPError as exc:
            raise _Retry(f"{exc.__class__.__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise _Retry(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            log.warning("console refused %s for call %s: HTTP %s %s", data["event"], data["callId"],
                        response.status_code, response.text[:200])
            return None
        try:
            reply = response.json()
        except ValueError:
            return {}
        return reply if isinstance(reply, dict) else {}

    async def post(self, data: dict[str, str], *, patience: float | None = None) -> dict[str, Any] | None:
        """Post an event, retrying transient failures for up to `patience` seconds; None if it never got through."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timing.retry_for if patience is None else patience)
        while True:
            try:
                return await self._post_once(data)
            except _Retry as exc:
                if loop.time() + self.timing.retry_delay > deadline:
                    log.warning("gave up sending %s for call %s: %s", data["event"], data["callId"], exc)
                    return None
                log.warning("could not send %s for call %s (%s); retrying in %g s", data["event"], data["callId"],
                            exc, self.timing.retry_delay)
                await asyncio.sleep(self.timing.retry_delay)

    async def call(self, caller: str, callee: str, queue: str | None = None) -> str:
        """Play one inbound call from start to end; return how it ended, for the log."""
        timing, loop = self.timing, asyncio.get_running_loop()
        call_id = f"sim-{uuid.uuid4().hex[:20]}"
        new_call = {"event": "newCall", "from": caller, "to": callee, "direction": "in", "callId": call_id}
        if queue:
            new_call["queue"] = queue
        hangs_up_ringing = self.rng.random() < timing.hang_up_ringing
        reply = await self.post(new_call)
        if reply is None:
            return "not delivered"
        gives_up = loop.time() + timing.hold_max
        hangs_up_at: float | None = None  # while it rings, once it has rung
        unanswered_since: float | None = None  # the console stopped answering while it rang
        while True:
            if _ended(reply):
                return f"ended by the console ({reply.get('state')})"
            target = _target(reply)
            if reply.get("state") == "active":
                # The agent accepted in the page: the phone system connects the audio.
                return await self._connect(call_id, target)
            if target is None:
                # On hold. Re-posting the same newCall is how the phone system learns a target later.
                if loop.time() + timing.hold_retry > gives_up:
                    await self.post({"event": "hangup", "callId": call_id, "cause": "cancel"})
                    return "caller gave up on hold"
                await asyncio.sleep(timing.hold_retry)
                reply = await self.post(new_call, patience=0) or {}
                continue
            if self.auto_answer:
                return await self._answer_after_ring(call_id, target, hangs_up_ringing)
            # It rings at the target until the console says the agent accepted, or moves it.
            now = loop.time()
            if hangs_up_at is None and hangs_up_ringing:
                hangs_up_at = now + self._seconds(timing.ring) * self.rng.uniform(0.2, 0.9)
            if hangs_up_at is not None and now >= hangs_up_at:
                await self.post({"event": "hangup", "callId": call_id, "cause": "cancel"})
                return f"caller hung up while {target} rang"
            wait = timing.ring_poll if hangs_up_at is None else min(timing.ring_poll, hangs_up_at - now)
            await asyncio.sleep(max(0.0, wait))
            polled = await self.post(new_call, patience=0)
            if polled is not None:
                reply, unanswered_since = polled, None
                continue
            # No answer this time: it keeps ringing where it rang, for as long as a retry lasts.
            unanswered_since = loop.time() if unanswered_since is None else unanswered_since
            if loop.time() - unanswered_since > timing.retry_for:
                await self.post({"event": "hangup", "callId": call_id, "cause": "cancel"})
                return f"lost the console while {target} rang"

    async def _answer_after_ring(self, call_id: str, target: str, hangs_up_ringing: bool) -> str:
        """The extension answers by itself after the ring (auto_answer), unless the caller hangs up first."""
        ring = self._seconds(self.timing.ring)
        if hangs_up_ringing:
            await asyncio.sleep(ring * self.rng.uniform(0.2, 0.9))
            await self.post({"event": "hangup", "callId": call_id, "cause": "cancel"})
            return f"caller hung up while {target} rang"
        await asyncio.sleep(ring)
        return await self._connect(call_id, target)

    async def _connect(self, call_id: str, target: str | None) -> str:
        """Answer at `target` (the agent's extension), talk, hang up."""
        answer = {"event": "answer", "callId": call_id}
        if target:
            answer["answeringNumber"] = target
        who = target or "the agent"
        if await self.post(answer) is None:
            await self.post({"event": "hangup", "callId": call_id, "cause": "cancel"})
            return f"answer by {who} refused"
        await asyncio.sleep(self._seconds(self.timing.talk))
        await self.post({"event": "hangup", "callId": call_id, "cause": "normalClearing"})
        return f"answered by {who}"


def _target(reply: dict[str, Any]) -> str | None:
    target = reply.get("target")
    if reply.get("action") == "transfer" and isinstance(target, str) and target:
        return target
    return None


def _ended(reply: dict[str, Any]) -> bool:
    return reply.get("state") in ("closed", "abandoned", "transferred", "wrap_up")


def _unknown_number(rng: random.Random, known: set[str]) -> str:
    """A valid Dutch number that is none of the customers' (an unknown caller)."""
    while True:
        if rng.random() < 0.7:
            number = "+316" + rng.choice("123458") + f"{rng.randrange(10**7):07d}"
        else:
            area = rng.choice(NL_AREAS)
            number = f"+31{area}{rng.choice('23456789')}{rng.randrange(10 ** (8 - len(area))):0{8 - len(area)}d}"
        if number not in known:
            return number


async def run_simulator(
    url: str,
    token: str,
    *,
    rate: float = 4.0,
    count: int = 0,
    numbers: Sequence[str] = (),
    rng: random.Random | None = None,
    known_share: float = 0.75,
    hang_up_ringing: float = 0.1,
    ring_seconds: tuple[float, float] = (2.0, 5.0),
    talk_seconds: tuple[float, float] = (20.0, 45.0),
    hold_retry: float = 2.0,
    hold_max: float = 45.0,
    retry_delay: float = 2.0,
    retry_for: float = 30.0,
    ring_poll: float = 1.0,
    auto_answer: bool = False,
    staffing: Callable[[], Awaitable[int]] | None = None,
    waiting: int = 1,
    staffing_check: float = 1.0,
    transport: httpx.AsyncBaseTransport | None = None,
    queues: Sequence[str] = (),
) -> None:
    """Start at most `rate` calls a minute (0: no pause); after `count` calls (0: never) wait for them and return.

    `staffing` says how many agents are logged in; given it, a call starts only while the calls in
    progress are fewer than that plus `waiting` (asked again every `staffing_check` seconds), so
    nobody logged in means no calls. When it fails the last answer holds (0 before any).
    A call rings until the console says the agent accepted (asking every `ring_poll` seconds);
    with `auto_answer` the extension answers by itself after `ring_seconds`. `numbers` are the
    callers most calls come from (customers' numbers); the rest are unknown Dutch numbers.
    `queues` are named in the calls, one at random each. Cancelling stops at once and cancels the
    calls in progress.
    """
    rng = rng or random.Random()
    endpoint = f"{url.rstrip('/')}/integrations/cti/{token}"
    timing = _Timing(ring_seconds, talk_seconds, hold_retry, hold_max, retry_delay, retry_for, hang_up_ringing,
                     ring_poll)
    known = list(numbers)
    # The numbers are E.164 already (demo_numbers); "ZZ" reads only international numbers.
    known_normalized = {normalize_phone(n, "ZZ") or n for n in known}
    staffed = _Staffing(staffing) if staffing is not None else None
    async with httpx.AsyncClient(transport=transport, timeout=10.0) as client:
        phone = _Phone(client, endpoint, timing, rng, auto_answer=auto_answer)

        async def one_call(caller: str, callee: str) -> None:
            try:
                outcome = await phone.call(caller, callee, rng.choice(queues) if queues else None)
            except Exception:  # a bug in one call must not stop the traffic
                log.exception("simulated call from %s failed", caller)
            else:
                log.info("simulated call from %s to %s: %s", caller, callee, outcome)

        def next_call() -> Coroutine[Any, Any, None]:
            caller = rng.choice(known) if known and rng.random() < known_share else \
                _unknown_number(rng, known_normalized)
            return one_call(caller, rng.choice(SERVICE_LINES))

        async def room(in_progress: Callable[[], int]) -> None:
            if staffed is not None:
                await staffed.room(in_progress, waiting, staffing_check)

        await keep_starting(next_call, rate=rate, count=count, rng=rng, room=room)


async def keep_starting(start: Callable[[], Coroutine[Any, Any, None] | None], *, rate: float, count: int,
                        rng: random.Random, room: Callable[[Callable[[], int]], Awaitable[None]],
                        retry: float = 1.0) -> None:
    """The pace of every simulated customer: about `rate` a minute (0: no pause), each one started
    once `room` (told how many run now) returns, as a task of `start()` (None: nobody this round,
    asked again after `retry` seconds); after `count` (0: never) wait for them and return.
    Cancelling cancels those under way."""
    interval = 60.0 / rate if rate > 0 else 0.0
    running: set[asyncio.Task[None]] = set()
    try:
        started = 0
        while count <= 0 or started < count:
            if started and interval > 0:
                await asyncio.sleep(interval * rng.uniform(0.6, 1.4))
            await room(lambda: len(running))
            work = start()
            if work is None:
                await asyncio.sleep(retry)
                continue
            task = asyncio.create_task(work)
            running.add(task)
            task.add_done_callback(running.discard)
            started += 1
            await asyncio.sleep(0)  # the new one takes its first step (claims its address) before the next
        await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


class _Staffing:
    """How many agents are logged in, as the `staffing` function last said; its failures change nothing."""

    def __init__(self, ask: Callable[[], Awaitable[int]]) -> None:
        self.ask = ask
        self.known = 0
        self.failing = False
        self.idle = False  # told the log that nobody is logged in

    async def now(self) -> int:
        try:
            found = max(0, int(await self.ask()))
        except Exception as exc:  # the database may be away for a moment: keep the last answer
            if not self.failing:
                log.warning("cannot tell how many agents are logged in (%s: %s); going on as if %d",
                            exc.__class__.__name__, exc, self.known)
                self.failing = True
            return self.known
        if self.failing:
            log.info("can tell how many agents are logged in again: %d", found)
            self.failing = False
        self.known = found
        return found

    async def room(self, in_progress: Callable[[], int], waiting: int, check: float) -> None:
        """Return once a new call fits: fewer calls in progress than agents logged in plus `waiting`."""
        while True:
            staffed = await self.now()
            if staffed > 0 and in_progress() < staffed + max(0, waiting):
                self.idle = False
                return
            if staffed == 0 and not self.idle:
                log.info("no agent is logged in: no new calls until one is")
                self.idle = True
            await asyncio.sleep(check)


async def logged_in_agents(db: Database) -> int:
    """How many agents are logged in (any status but offline): one count, for pacing the demo's calls."""
    async with db.reading() as session:
        found = await session.scalar(
            select(func.count()).select_from(Agent).where(Agent.status != AgentStatus.OFFLINE))
    return int(found or 0)


async def demo_numbers(db: Database, limit: int = 500) -> list[str]:
    """Customers' phone numbers (E.164) for simulated callers, the shared switchboard numbers among them.

    A fifth of the sample are numbers several customers have, so some calls match more than one.
    """
    if limit <= 0:
        return []
    async with db.transaction() as session:
        shared = list(await session.scalars(
            select(ContactPoint.normalized)
            .where(ContactPoint.kind == ContactKind.PHONE)
            .group_by(ContactPoint.normalized)
            .having(func.count(func.distinct(ContactPoint.customer_id)) > 1)
            .order_by(func.random())
            .limit(max(1, limit // 5))
        ))
        sample = list(await session.scalars(
            select(ContactPoint.normalized)
            .where(ContactPoint.kind == ContactKind.PHONE)
            .order_by(func.random())
            .limit(limit)
        ))
    return list(dict.fromkeys(shared + sample))[:limit]
