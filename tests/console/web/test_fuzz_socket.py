"""The agent socket, fuzzed: whatever a client sends or asks (any cursor, any Origin, any cookie,
text and binary frames of any content, a frame over the size limit), the console answers with a
snapshot, a replay or a clear close code, never with a server error (1011) or a traceback, and a
fine socket keeps working after the junk. On SQLite with the in-process bus, and on PostgreSQL
with Redis (whose stream ids the cursors name).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from console.db import Database
from console.web.app import SERVER_OPTIONS
from tests.conftest import REDIS_URL, LiveServer, make_settings, pg_database, redis_keys
from tests.helpers import add_agent, log_in

MAX_MESSAGE = SERVER_OPTIONS["ws_max_size"]
POLICY_VIOLATION, TOO_BIG = 1008, 1009


@pytest.fixture(params=["sqlite-memory", "postgres-redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str) -> Iterator[tuple[LiveServer, str]]:
    if request.param == "sqlite-memory":
        with LiveServer(make_settings(sqlite_url, tmp_path)) as live:
            yield live, sqlite_url
        return

    with redis_keys() as prefix, pg_database() as url, LiveServer(
            make_settings(url, tmp_path, redis_url=REDIS_URL, redis_prefix=prefix)) as live:
        yield live, url


async def _signed_in(live: LiveServer, url: str) -> tuple[int, str]:
    db = Database(url)
    try:
        agent = await add_agent(db, "anna@x.nl", "Anna", extension="201")
    finally:
        await db.close()
    async with httpx.AsyncClient(base_url=live.url) as client:
        await log_in(client, "anna@x.nl")
        return agent, "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)


async def _outcome(live: LiveServer, since: str | None, origin: str | None, cookie: str,
                   messages: list[str | bytes]) -> str:
    """'snapshot' (and the socket still open after the messages), or 'closed <code>'."""
    query = f"?since={quote(since, safe='')}" if since is not None else ""
    headers = {"Cookie": cookie} if cookie else {}
    try:
        async with connect(f"{live.ws_url}/ws{query}", origin=origin, additional_headers=headers,  # type: ignore[arg-type]
                           max_size=None, open_timeout=10) as ws:
            try:
                first = await asyncio.wait_for(ws.recv(), 10)
                assert 'id="agent-status"' in str(first), "a fresh socket starts with the live view"
                for message in messages:
                    await ws.send(message)
                pong = await ws.ping()
                await asyncio.wait_for(pong, 10)
                return "snapshot"
            except ConnectionClosed as closed:
                return f"closed {closed.rcvd.code if closed.rcvd else None}"
    except InvalidStatus as refused:
        return f"http {refused.response.status_code}"


# "me" stands for the signed-in agent's id: the cursor's owner part is then right and the rest
# is fuzzed.
CURSORS = st.one_of(
    st.none(), st.text(max_size=150),
    st.builds(lambda a, b: f"{a}.{b}", st.sampled_from(["me", "me", "me", "1", "0", "-1", "01", "１"]),
              st.one_of(st.text(max_size=40), st.from_regex(r"\A[0-9]{1,20}-[0-9]{1,20}\Z"),
                        st.integers().map(str))),
)
MESSAGES = st.lists(st.one_of(st.text(max_size=2_000), st.binary(max_size=2_000)), max_size=4)
FUZZ = settings(max_examples=30, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _run(server: tuple[LiveServer, str], caplog: pytest.LogCaptureFixture, since: str | None, origin: str | None,
         cookie: str, messages: list[str | bytes]) -> str:
    live, url = server
    if not hasattr(live, "agent"):
        live.agent, live.cookie = asyncio.run(_signed_in(live, url))  # type: ignore[attr-defined]
    if since is not None and since.startswith("me."):
        since = f"{live.agent}{since[2:]}"  # type: ignore[attr-defined]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        outcome = asyncio.run(_outcome(live, since, live.url if origin == "own" else origin,
                                       live.cookie if cookie == "own" else cookie, messages))  # type: ignore[attr-defined]
    failures = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not failures, (since, origin, cookie, failures)
    return outcome


@FUZZ
@given(since=CURSORS, messages=MESSAGES)
def test_the_agents_own_socket_survives_any_cursor_and_any_frames(
        server: tuple[LiveServer, str], caplog: pytest.LogCaptureFixture, since: str | None,
        messages: list[str | bytes]) -> None:
    outcome = _run(server, caplog, since, "own", "own", messages)
    foreign = since is not None and not since.startswith("me.") and "." in since and since.partition(".")[2] != ""
    if foreign:  # a cursor that may name another agent's stream: refused, or taken as no cursor
        assert outcome in ("snapshot", f"closed {POLICY_VIOLATION}"), (since, outcome)
    else:
        assert outcome == "snapshot", (since, outcome)


@FUZZ
@given(since=CURSORS, origin=st.sampled_from([None, "https://evil.example", "null", "http://console.test", "own"]),
       cookie=st.sampled_from(["", "console_session=forged", "console_session=\u00e9", "own"]), messages=MESSAGES)
def test_strangers_sockets_are_closed_with_1008(server: tuple[LiveServer, str], caplog: pytest.LogCaptureFixture,
                                               since: str | None, origin: str | None, cookie: str,
                                               messages: list[str | bytes]) -> None:
    outcome = _run(server, caplog, since, origin, cookie, messages)
    if origin not in ("own", None) or cookie != "own":
        assert outcome == f"closed {POLICY_VIOLATION}", (since, origin, cookie, outcome)
    else:
        assert outcome in ("snapshot", f"closed {POLICY_VIOLATION}"), (since, origin, cookie, outcome)


def test_a_frame_over_the_limit_closes_the_socket_with_1009(server: tuple[LiveServer, str]) -> None:
    live, url = server
    _, cookie = asyncio.run(_signed_in(live, url))
    # The server closes as soon as it reads the frame's length, while the client still writes the
    # rest: now and then the unread bytes make the kernel reset the connection before the client
    # read the close frame ("closed None"). Closed it always is; the code shows within a few tries.
    outcomes = []
    for _ in range(5):
        outcomes.append(asyncio.run(_outcome(live, None, live.url, cookie, ["x" * (MAX_MESSAGE + 1)])))
        if outcomes[-1] == f"closed {TOO_BIG}":
            break
    assert set(outcomes) <= {f"closed {TOO_BIG}", "closed None"} and outcomes[-1] == f"closed {TOO_BIG}", outcomes
