"""The fuzzer for the agent's side: every route of the app (found in its routing table, so a new
route is covered the day it is added), with hostile path ids, query strings and form fields,
as a logged-in agent and as a supervisor, on SQLite and PostgreSQL. Every answer is below 500 and
nothing is logged with a traceback."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from console.db import Database
from console.models import Tier
from tests.conftest import CTI_TOKEN, make_settings, served
from tests.helpers import add_agent, add_customer, log_in

SKIPPED = {"/logout"}  # it ends the session the fuzzer works in (its own test covers it)
FIELDS = ["body", "city", "company", "consent_email", "consent_phone", "conversation", "country", "customer_id",
          "description", "disposition", "email", "ends_on", "kind", "language", "lifetime_value", "link", "mode",
          "name", "note", "password", "postal_code", "priority", "q", "reason", "segment", "selected", "since",
          "starts_on", "status", "street", "subject", "target", "terms", "tier", "title", "value", "version",
          "assignee_id", "queue_id", "phone", "owner", "into"]
HOSTILE = st.text(alphabet=st.characters(categories=["Cc", "L", "N", "P", "S", "Z"]), max_size=60)
VALUES = st.one_of(
    HOSTILE,
    st.sampled_from(["1", "2", "0", "-1", "999999999999999999999", "1e9", "NaN", "available", "away", "offline",
                     "A", "high", "resolved", "warm", "cold", "agent:2", "queue:1", "2026-02-30", "<b>x</b>", "é",
                     "phone", "email", "customer", "conversation", "ticket", " "]),
    st.integers(-5, 10**12).map(str),
)
INTS = st.sampled_from(["1", "2", "3", "0", "999999999"])
PARAM = re.compile(r"\{(\w+)(?::(\w+))?\}")


def _routes(app: object) -> list[tuple[str, str]]:
    """(method, path pattern) of every route, read from the app's routing table."""
    found = []
    for route in app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Route) and route.path not in SKIPPED:
            for method in sorted(route.methods or ()):
                if method in ("GET", "POST"):
                    found.append((method, route.path))
    return found


def _fill(pattern: str, draw: st.DrawFn) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(2) == "int":
            return draw(INTS)
        return draw(st.sampled_from(["customer", "conversation", "ticket", "assignee", "queue", "handoff", "x%00"]))
    return PARAM.sub(one, pattern)


@st.composite
def requests(draw: st.DrawFn, routes: list[tuple[str, str]]) -> tuple[str, str, dict[str, str]]:
    method, pattern = draw(st.sampled_from(routes))
    fields = draw(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6))
    return method, _fill(pattern, draw), fields


@pytest.mark.parametrize("who", ["anna@x.nl", "sanne@x.nl"])
def test_no_route_answers_500_to_any_input(database_url: str, tmp_path: Path, who: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    serving = served(make_settings(database_url, tmp_path))
    try:
        async def prepare() -> None:
            db = Database(database_url)
            await add_agent(db, "anna@x.nl", "Anna", extension="201")
            await add_agent(db, "bram@x.nl", "Bram", extension="202")
            await add_agent(db, "sanne@x.nl", "Sanne", role="supervisor")
            await add_customer(db, "Jan <b>Jansen</b>", phones=("0612345678",), tier=Tier.A)
            await add_customer(db, "Piet Jansen", emails=("piet@example.nl",))
            await db.close()

        loop.run_until_complete(prepare())
        app, http = loop.run_until_complete(serving.__aenter__())
        client: httpx.AsyncClient = http  # type: ignore[assignment]
        token = loop.run_until_complete(log_in(client, who))
        headers = {"X-CSRF-Token": token, "HX-Request": "true"}
        # Something to act on: a call ringing for Anna (conversation 1), a ticket (1).
        loop.run_until_complete(client.post("/agent/status", data={"status": "available"}, headers=headers))
        call = loop.run_until_complete(client.post(f"/integrations/cti/{CTI_TOKEN}", data={
            "event": "newCall", "from": "0612345678", "to": "0201234567", "direction": "in", "callId": "fuzz-1",
            "user": "201"}))
        assert call.status_code == 200, call.text
        ticket = loop.run_until_complete(client.post("/tickets", data={"subject": "Invoice", "customer_id": "1"},
                                                     headers=headers))
        assert ticket.status_code < 300, ticket.text
        seen: collections.Counter[int] = collections.Counter()

        @settings(max_examples=200, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
        @given(requests(_routes(app)))
        def send(request: tuple[str, str, dict[str, str]]) -> None:
            method, path, fields = request
            if method == "GET":
                call = client.get(path, params=fields, headers=headers)
            else:
                call = client.post(path, data=fields, headers=headers)
            response = loop.run_until_complete(call)
            seen[response.status_code] += 1
            assert response.status_code < 500, (method, path, fields, response.text[:300])

        with caplog.at_level(logging.INFO):
            send()
        assert not [r.getMessage() for r in caplog.records if r.exc_info], "a traceback was logged"
        assert seen[200] and (seen[404] or seen[422] or seen[409] or seen[403]), seen
    finally:
        loop.run_until_complete(serving.__aexit__(None, None, None))
        loop.close()
