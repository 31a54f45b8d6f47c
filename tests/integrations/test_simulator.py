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
from console.models import ContactKind, Conversation, State
from console.ports import Context, RecordingNotifier
from console.routing import set_status
from console.seed import seed
from integrations.simulator import SERVICE_LINES, demo_numbers, run_simulator
from tests.conftest import CTI_TOKEN, LiveServer, free_port, make_settings
from tests.helpers import add_agent, add_customer

TOKEN = "sim-token"
CUSTOMERS = ("+31612345678", "+31201234567", "+447412345678")
FAST: dict[str, Any] = {"interval": 0.01, "ring_seconds": (0.01, 0.02), "talk_seconds": (0.01, 0.02),
                        "hold_retry": 0.01, "hold_max": 0.05, "retry_delay": 0.01, "retry_for": 1.0}


class PBXPeer:
    """A tiny stand-in for the console's CTI endpoint that records every event it is sent."""

    def __init__(self, target: Callable[[int], str | None], failures: int = 0) -> None:
        self.target = target  # extension to route to, given how many newCalls this call has had
        self.failures = failures
        self.events: list[dict[str, str]] = []
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
        if event["event"] != "newCall":
            return JSONResponse({"conversation": 1, "state": "active" if event["event"] == "answer" else "closed"})
        seen = sum(1 for e in self.events if e["callId"] == event["callId"] and e["event"] == "newCall")
        target = self.target(seen)
        if target is None:
            return JSONResponse({"conversation": 1, "state": "queued"})
        return JSONResponse({"conversation": 1, "state": "offered", "action": "transfer", "target": target})

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


async def test_answered_calls_go_new_call_answer_hangup() -> None:
    peer = PBXPeer(lambda seen: "201")
    await peer.run(count=3, numbers=CUSTOMERS, known_share=1.0, hang_up_ringing=0.0)
    calls = peer.calls()
    assert len(calls) == 3
    for events in calls.values():
        assert [e["event"] for e in events] == ["newCall", "answer", "hangup"]
        new_call, answer, hangup = events
        assert new_call["from"] in CUSTOMERS and new_call["to"] in SERVICE_LINES
        assert new_call["direction"] == "in" and "user" not in new_call
        assert answer["answeringNumber"] == "201"
        assert hangup["cause"] == "normalClearing"


async def test_nobody_free_keeps_asking_then_the_caller_gives_up() -> None:
    peer = PBXPeer(lambda seen: None)
    await peer.run(count=2, numbers=CUSTOMERS, hang_up_ringing=0.0)
    calls = peer.calls()
    assert len(calls) == 2
    for events in calls.values():
        kinds = [e["event"] for e in events]
        assert kinds[-1] == "hangup" and events[-1]["cause"] == "cancel"
        assert kinds[:-1] == ["newCall"] * (len(kinds) - 1) and len(kinds) >= 3
        assert len({e["from"] for e in events[:-1]}) == 1


async def test_a_target_found_while_on_hold_is_answered() -> None:
    peer = PBXPeer(lambda seen: "202" if seen >= 3 else None)
    await peer.run(count=1, numbers=CUSTOMERS, hang_up_ringing=0.0, hold_max=5.0)
    [events] = peer.calls().values()
    assert [e["event"] for e in events] == ["newCall", "newCall", "newCall", "answer", "hangup"]
    assert events[3]["answeringNumber"] == "202"


async def test_some_callers_hang_up_while_it_rings() -> None:
    peer = PBXPeer(lambda seen: "201")
    await peer.run(count=2, numbers=CUSTOMERS, hang_up_ringing=1.0)
    for events in peer.calls().values():
        assert [e["event"] for e in events] == ["newCall", "hangup"]
        assert events[1]["cause"] == "cancel"


async def test_unknown_callers_have_valid_dutch_numbers() -> None:
    peer = PBXPeer(lambda seen: "201")
    await peer.run(count=5, numbers=CUSTOMERS, known_share=0.0, hang_up_ringing=0.0)
    callers = {e["from"] for e in peer.events if e["event"] == "newCall"}
    assert len(callers) == 5
    for caller in callers:
        assert caller not in CUSTOMERS
        number = phonenumbers.parse(caller)
        assert number.country_code == 31 and phonenumbers.is_valid_number(number)


async def test_server_errors_are_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    peer = PBXPeer(lambda seen: "201", failures=2)
    with caplog.at_level(logging.WARNING, logger="integrations.simulator"):
        await peer.run(count=1, numbers=CUSTOMERS, hang_up_ringing=0.0)
    [events] = peer.calls().values()
    assert [e["event"] for e in events] == ["newCall", "answer", "hangup"]
    assert any("HTTP 503" in record.getMessage() for record in caplog.records)


async def test_an_unreachable_console_does_not_crash_it(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING, logger="integrations.simulator"):
        await asyncio.wait_for(run_simulator(url, TOKEN, count=2, numbers=CUSTOMERS, **(FAST | {"retry_for": 0.05})),
                               timeout=10)
    assert any("gave up sending newCall" in record.getMessage() for record in caplog.records)


async def test_a_wrong_token_is_logged_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    peer = PBXPeer(lambda seen: "201")
    with caplog.at_level(logging.WARNING, logger="integrations.simulator"):
        await asyncio.wait_for(run_simulator("http://console.test", "wrong", count=1,
                                             transport=httpx.ASGITransport(app=peer.app), **FAST), timeout=10)
    assert peer.events == []
    assert any("HTTP 401" in record.getMessage() for record in caplog.records)


async def test_cancelling_stops_the_calls_in_progress() -> None:
    peer = PBXPeer(lambda seen: "201")
    options = FAST | {"talk_seconds": (60.0, 60.0), "interval": 0.05}
    runner = asyncio.create_task(run_simulator("http://console.test", TOKEN, numbers=CUSTOMERS, hang_up_ringing=0.0,
                                               transport=httpx.ASGITransport(app=peer.app), **options))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while sum(e["event"] == "answer" for e in peer.events) < 2:
        assert loop.time() < deadline, "no calls were answered"
        await asyncio.sleep(0.01)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(runner, timeout=2)
    assert all(e["event"] != "hangup" for e in peer.events)
    assert asyncio.all_tasks() == {asyncio.current_task()}


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
    """A simulated call from a known customer reaches a free agent and ends in their wrap-up."""
    db = Database(database_url)
    try:
        agent_id = await add_agent(db, "anna@sim.example", "Anna de Vries", "201")
        customer_id = await add_customer(db, "Jan Jansen", phones=("06-1234 5678",))
        await set_status(Context(db=db, notify=RecordingNotifier(), region="NL"), agent_id, "available")
        with LiveServer(make_settings(database_url, tmp_path)) as server:
            await asyncio.wait_for(run_simulator(server.url, CTI_TOKEN, count=1, numbers=["+31612345678"],
                                                 known_share=1.0, hang_up_ringing=0.0, **FAST), timeout=20)
        async with db.transaction() as session:
            [conversation] = list(await session.scalars(select(Conversation)))
        assert conversation.state is State.WRAP_UP
        assert conversation.agent_id == agent_id and conversation.customer_id == customer_id
        assert conversation.hangup_cause == "normalClearing"
    finally:
        await db.close()
