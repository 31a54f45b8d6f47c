"""The demo traffic simulator: calls posted like a PBX, against a recording app and against the console."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import phonenumbers
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from console.customers import match
from console.db import Database
from console.models import AgentStatus, ContactKind, Conversation, State
from console.offers import accept
from console.ports import Context, RecordingNotifier
from console.routing import set_status
from console.seed import seed
from integrations.simulator import SERVICE_LINES, demo_numbers, logged_in_agents, run_simulator
from tests.conftest import CTI_TOKEN, LiveServer, free_port, make_settings
from tests.helpers import add_agent, add_customer

TOKEN = "sim-token"
CUSTOMERS = ("+31612345678", "+31201234567", "+447412345678")
FAST: dict[str, Any] = {"rate": 6000.0, "ring_seconds": (0.01, 0.02), "talk_seconds": (0.01, 0.02),
                        "hold_retry": 0.01, "hold_max": 0.05, "retry_delay": 0.01, "retry_for": 1.0,
                        "ring_poll": 0.01, "staffing_check": 0.01}

Routing = Callable[[int], tuple[str, str | None]]  # newCalls this call has had -> (state, target)


def offered(target: str | None) -> Routing:
    """The console offers every call to `target` (None: nobody is free) and nobody ever accepts."""
    return lambda seen: ("offered", target) if target else ("queued", None)


def accepted(target: str, after: int = 1) -> Routing:
    """Offered to `target`; the agent presses Accept after the phone system's `after`-th newCall."""
    return lambda seen: ("active" if seen > after else "offered", target)


def schedule(*replies: tuple[str, str | None]) -> Routing:
    """The console's answer to each newCall in turn; the last one repeats."""
    return lambda seen: replies[min(seen, len(replies)) - 1]


class PBXPeer:
    """A tiny stand-in for the console's CTI endpoint that records every event it is sent."""

    def __init__(self, route: Routing, failures: int = 0) -> None:
        self.route = route
        self.failures = failures
        self.events: list[dict[str, str]] = []
        self.open: set[str] = set()
        self.most_open = 0  # calls in progress at once, at the most
        self.app = Starlette(routes=[Route("/integrations/cti/{token}", self.endpoint, methods=["POST"])])

    async def endpoint(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != TOKEN:
            return JSONResponse({"error": "wrong or missing CTI token"}, status_code=401)
        if self.failures:
            self.failures -= 1
            return JSONResponse({"error": "temporarily unavailable, retry"}, status_code=503)
        form = await request.form()
        event = {key: str(value) for key, value in form.items()}
        self.events.append(event)
        if event["event"] == "hangup":
            self.open.discard(event["callId"])
        if event["event"] != "newCall":
            return JSONResponse({"conversation": 1, "state": "active" if event["event"] == "answer" else "wrap_up"})
        self.open.add(event["callId"])
        self.most_open = max(self.most_open, len(self.open))
        seen = sum(1 for e in self.events if e["callId"] == event["callId"] and e["event"] == "newCall")
        # What a repeated newCall answers (integrations.telephony.cti): the state, and the agent's
        # extension as target while the call is offered to them or active with them.
        state, target = self.route(seen)
        if target is None:
            return JSONResponse({"conversation": 1, "state": state})
        return JSONResponse({"conversation": 1, "state": state, "action": "transfer", "target": target})

    def calls(self) -> dict[str, list[dict[str, str]]]:
        by_call: dict[str, list[dict[str, str]]] = defaultdict(list)
        for event in self.events:
            by_call[event["callId"]].append(event)
        return by_call

    async def run(self, **options: Any) -> None:
        settings = FAST | options
        await asyncio.wait_for(
            run_simulator("http://console.test", TOKEN, transport=httpx.ASGITransport(app=self.app), **settings),
            timeout=10,
        )


def kinds(events: list[dict[str, str]]) -> list[str]:
    return [e["event"] for e in events]


async def stop_after(runner: asyncio.Task[None], peer: PBXPeer, event: str, count: int, why: str) -> None:
    """Wait until the fake console has seen `count` events of a kind, then cancel the simulator."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while sum(e["event"] == event for e in peer.events) < count:
        assert loop.time() < deadline, why
        await asyncio.sleep(0.01)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(runner, timeout=2)


async def test_accepted_calls_go_new_call_until_active_then_answer_hangup() -> None:
    peer = PBXPeer(accepted("201", after=3))
    await peer.run(count=3, numbers=CUSTOMERS, known_share=1.0, hang_up_ringing=0.0)
    calls = peer.calls()
    assert len(calls) == 3
    for events in calls.values():
        assert kinds(events) == ["newCall"] * 4 + ["answer", "hangup"]
        new_call, answer, hangup = events[0], events[-2], events[-1]
        assert new_call["from"] in CUSTOMERS and new_call["to"] in SERVICE_LINES
        assert new_call["direction"] == "in" and "user" not in new_call
        assert all(e == new_call for e in events[:4])  # the same newCall, re-posted while it rings
        assert answer["answeringNumber"] == "201"
        assert hangup["cause"] == "normalClearing"


async def test_the_phone_does_not_answer_before_the_console_says_active() -> None:
    peer = PBXPeer(offered("201"))
    runner = asyncio.create_task(peer.run(count=1, numbers=CUSTOMERS, hang_up_ringing=0.0))
    await stop_after(runner, peer, "newCall", 20, "the phone system stopped asking")
    assert set(kinds(peer.events)) == {"newCall"} and len(peer.calls()) == 1


async def test_an_offer_that_rings_out_goes_back_on_hold_unanswered() -> None:
    peer = PBXPeer(schedule(("offered", "201"), ("offered", "201"), ("queued", None)))
    await peer.run(count=1, numbers=CUSTOMERS, hang_up_ringing=0.0, hold_max=0.2)
    [events] = peer.calls().values()
    assert "answer" not in kinds(events)
    assert kinds(events)[-1] == "hangup" and events[-1]["cause"] == "cancel"
    assert kinds(events).count("newCall") > 3  # kept asking on hold after the ring-out


async def test_the_phone_follows_a_changed_target(caplog: pytest.LogCaptureFixture) -> None:
    peer = PBXPeer(schedule(("offered", "201"), ("offered", "201"), ("queued", None), ("offered", "202"),
                            ("offered", "202"), ("active", "202")))
    with caplog.at_level(logging.INFO, logger="integrations.simulator"):
        await peer.run(count=1, numbers=CUSTOMERS, hang_up_ringing=0.0, hold_max=5.0)
    [events] = peer.calls().values()
    assert kinds(events) == ["newCall"] * 6 + ["answer", "hangup"]
    assert events[-2]["answeringNumber"] == "202"
    assert any("answered by 202" in record.getMessage() for record in caplog.records)


async def test_auto_answer_answers_after_the_ring_by_itself() -> None:
    peer = PBXPeer(offered("201"))
    await peer.run(count=3, numbers=CUSTOMERS, known_share=1.0, hang_up_ringing=0.0, auto_answer=True)
    calls = peer.calls()
    assert len(calls) == 3
    for events in calls.values():
        assert kinds(events) == ["newCall", "answer", "hangup"]
        assert events[1]["answeringNumber"] == "201" and events[2]["cause"] == "normalClearing"


async def test_nobody_free_keeps_asking_then_the_caller_gives_up() -> None:
    peer = PBXPeer(offered(None))
    await peer.run(count=2, numbers=CUSTOMERS, hang_up_ringing=0.0)
    calls = peer.calls()
    assert len(calls) == 2
    for events in calls.values():
        assert kinds(events)[-1] == "hangup" and events[-1]["cause"] == "cancel"
        assert kinds(events)[:-1] == ["newCall"] * (len(events) - 1) and len(events) >= 3
        assert len({e["from"] for e in events[:-1]}) == 1


async def test_a_target_found_while_on_hold_is_answered() -> None:
    peer = PBXPeer(schedule(("queued", None), ("queued", None), ("offered", "202"), ("active", "202")))
    await peer.run(count=1, numbers=CUSTOMERS, hang_up_ringing=0.0, hold_max=5.0)
    [events] = peer.calls().values()
    assert kinds(events) == ["newCall"] * 4 + ["answer", "hangup"]
    assert events[4]["answeringNumber"] == "202"


async def test_some_callers_hang_up_while_it_rings() -> None:
    peer = PBXPeer(offered("201"))
    await peer.run(count=2, numbers=CUSTOMERS, hang_up_ringing=1.0)
    for events in peer.calls().values():
        assert kinds(events)[-1] == "hangup" and events[-1]["cause"] == "cancel"
        assert set(kinds(events)[:-1]) == {"newCall"}
    auto = PBXPeer(offered("201"))
    await auto.run(count=2, numbers=CUSTOMERS, hang_up_ringing=1.0, auto_answer=True)
    for events in auto.calls().values():
        assert kinds(events) == ["newCall", "hangup"] and events[1]["cause"] == "cancel"


async def test_unknown_callers_have_valid_dutch_numbers() -> None:
    peer = PBXPeer(accepted("201"))
    await peer.run(count=5, numbers=CUSTOMERS, known_share=0.0, hang_up_ringing=0.0)
    callers = {e["from"] for e in peer.events if e["event"] == "newCall"}
    assert len(callers) == 5
    for caller in callers:
        assert caller not in CUSTOMERS
        number = phonenumbers.parse(caller)
        assert number.country_code == 31 and phonenumbers.is_valid_number(number)


async def test_server_errors_are_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    peer = PBXPeer(accepted("201"), failures=2)
    with caplog.at_level(logging.WARNING, logger="integrations.simulator"):
        await peer.run(count=1, numbers=CUSTOMERS, hang_up_ringing=0.0)
    [events] = peer.calls().values()
    assert kinds(events) == ["newCall", "newCall", "answer", "hangup"]
    assert any("HTTP 503" in record.getMessage() for record in caplog.records)


async def test_an_unreachable_console_does_not_crash_it(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING, logger="integrations.simulator"):
        await asyncio.wait_for(run_simulator(url, TOKEN, count=2, numbers=CUSTOMERS, **(FAST | {"retry_for": 0.05})),
                               timeout=10)
    assert any("gave up sending newCall" in record.getMessage() for record in caplog.records)


async def test_a_wrong_token_is_logged_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    peer = PBXPeer(accepted("201"))
    with caplog.at_level(logging.WARNING, logger="integrations.simulator"):
        await asyncio.wait_for(run_simulator("http://console.test", "wrong", count=1,
                                             transport=httpx.ASGITransport(app=peer.app), **FAST), timeout=10)
    assert peer.events == []
    assert any("HTTP 401" in record.getMessage() for record in caplog.records)


async def test_cancelling_stops_the_calls_in_progress() -> None:
    peer = PBXPeer(accepted("201"))
    options = FAST | {"talk_seconds": (60.0, 60.0), "rate": 1200.0}
    runner = asyncio.create_task(run_simulator("http://console.test", TOKEN, numbers=CUSTOMERS, hang_up_ringing=0.0,
                                               transport=httpx.ASGITransport(app=peer.app), **options))
    await stop_after(runner, peer, "answer", 2, "no calls were answered")
    assert all(e["event"] != "hangup" for e in peer.events)
    assert asyncio.all_tasks() == {asyncio.current_task()}


def staff(*answers: int | Exception) -> tuple[Callable[[], Any], list[int]]:
    """A staffing function giving `answers` in turn (the last repeats; an exception is raised), and its calls."""
    asked: list[int] = []

    async def logged_in() -> int:
        asked.append(1)
        answer = answers[min(len(asked), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return logged_in, asked


async def test_with_nobody_logged_in_no_call_starts() -> None:
    peer = PBXPeer(accepted("201"))
    logged_in, asked = staff(0)
    runner = asyncio.create_task(peer.run(count=3, numbers=CUSTOMERS, staffing=logged_in))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(asked) < 20:
        assert loop.time() < deadline, "the simulator stopped asking who is logged in"
        await asyncio.sleep(0.01)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert peer.events == []


async def test_calls_follow_the_agents_logged_in() -> None:
    """One agent logged in: one call talking and one caller waiting at most, whatever the rate."""
    peer = PBXPeer(accepted("201", after=2))
    logged_in, _ = staff(1)
    await peer.run(count=8, numbers=CUSTOMERS, hang_up_ringing=0.0, staffing=logged_in, waiting=1,
                   talk_seconds=(0.05, 0.05), rate=0.0)
    assert len(peer.calls()) == 8
    assert peer.most_open == 2
    assert all(kinds(events)[-2:] == ["answer", "hangup"] for events in peer.calls().values())


async def test_more_agents_logged_in_let_more_calls_run() -> None:
    peer = PBXPeer(accepted("201", after=2))
    logged_in, _ = staff(3)
    await peer.run(count=10, numbers=CUSTOMERS, hang_up_ringing=0.0, staffing=logged_in, waiting=2,
                   talk_seconds=(0.1, 0.1), rate=0.0)
    assert len(peer.calls()) == 10 and peer.most_open == 5


async def test_a_failing_staffing_function_changes_nothing_and_is_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    peer = PBXPeer(accepted("201"))
    failure = ConnectionError("database restarting")
    logged_in, asked = staff(1, failure, failure, failure, failure, 1)
    with caplog.at_level(logging.INFO, logger="integrations.simulator"):
        await peer.run(count=8, numbers=CUSTOMERS, hang_up_ringing=0.0, staffing=logged_in)
    assert len(peer.calls()) == 8 and len(asked) >= 6  # calls went on meanwhile, as with one agent
    messages = [record.getMessage() for record in caplog.records]
    assert sum("cannot tell how many agents are logged in" in m for m in messages) == 1
    assert sum("can tell how many agents are logged in again" in m for m in messages) == 1


async def test_logged_in_agents_counts_everyone_not_offline(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        ctx = Context(db=db, notify=RecordingNotifier(), region="NL")
        ids = [await add_agent(db, f"agent{n}@sim.example", f"Agent {n}", f"20{n}") for n in range(4)]
        assert await logged_in_agents(db) == 0
        await set_status(ctx, ids[0], AgentStatus.AVAILABLE)
        await set_status(ctx, ids[1], AgentStatus.AWAY)
        assert await logged_in_agents(db) == 2
    finally:
        await db.close()


async def test_demo_numbers_include_shared_switchboards(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        await seed(db, customers=60, region="NL", rng_seed=9)
        numbers = await demo_numbers(db, limit=40)
        assert 0 < len(numbers) <= 40 and len(set(numbers)) == len(numbers)
        async with db.transaction() as session:
            matched = [await match(session, ContactKind.PHONE, number, "NL") for number in numbers]
        assert all(matched)
        assert any(len(ids) > 1 for ids in matched)
        assert await demo_numbers(db, limit=0) == []
    finally:
        await db.close()


async def test_against_the_console(database_url: str, tmp_path: Path) -> None:
    """A simulated call from a known customer reaches a free agent and ends in their wrap-up (auto answer)."""
    db = Database(database_url)
    try:
        agent_id = await add_agent(db, "anna@sim.example", "Anna de Vries", "201")
        customer_id = await add_customer(db, "Jan Jansen", phones=("06-1234 5678",))
        await set_status(Context(db=db, notify=RecordingNotifier(), region="NL"), agent_id, "available")
        with LiveServer(make_settings(database_url, tmp_path)) as server:
            await asyncio.wait_for(run_simulator(server.url, CTI_TOKEN, count=1, numbers=["+31612345678"],
                                                 known_share=1.0, hang_up_ringing=0.0, auto_answer=True, **FAST),
                                   timeout=20)
        async with db.transaction() as session:
            [conversation] = list(await session.scalars(select(Conversation)))
        assert conversation.state is State.WRAP_UP
        assert conversation.agent_id == agent_id and conversation.customer_id == customer_id
        assert conversation.hangup_cause == "normalClearing"
    finally:
        await db.close()


async def test_accept_in_the_page_connects_the_call_against_the_console(database_url: str, tmp_path: Path) -> None:
    """The call rings until the agent accepts; then the phone system answers at their extension."""
    db = Database(database_url)
    try:
        ctx = Context(db=db, notify=RecordingNotifier(), region="NL")
        agent_id = await add_agent(db, "anna@sim.example", "Anna de Vries", "201")
        await set_status(ctx, agent_id, "available")
        with LiveServer(make_settings(database_url, tmp_path)) as server:
            runner = asyncio.create_task(run_simulator(server.url, CTI_TOKEN, count=1, numbers=["+31612345678"],
                                                       known_share=1.0, hang_up_ringing=0.0,
                                                       **(FAST | {"ring_poll": 0.05, "hold_max": 20.0})))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while True:
                async with db.transaction() as session:
                    found = list(await session.scalars(select(Conversation)))
                if found and found[0].state is State.OFFERED:
                    offered_at = found[0]
                    break
                assert loop.time() < deadline, "the call was never offered"
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)  # it rings: the phone system does not answer by itself
            async with db.transaction() as session:
                ringing = await session.get(Conversation, offered_at.id)
                assert ringing is not None and ringing.state is State.OFFERED
            await accept(ctx, agent_id, offered_at.id)
            await asyncio.wait_for(runner, timeout=10)
        async with db.transaction() as session:
            [conversation] = list(await session.scalars(select(Conversation)))
        assert conversation.state is State.WRAP_UP and conversation.agent_id == agent_id
        assert conversation.hangup_cause == "normalClearing"
    finally:
        await db.close()

