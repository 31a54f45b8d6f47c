import asyncio
import collections
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from console.db import Database
from console.models import Conversation
from console.web.app import create_app
from integrations.telephony.cti import CTIError, parse
from tests.conftest import CTI_TOKEN, make_settings, served
from tests.helpers import add_agent

URL = f"/integrations/cti/{CTI_TOKEN}"


@pytest.fixture
async def client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    db = Database(database_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    await db.close()
    async with served(make_settings(database_url, tmp_path)) as (_, client):
        yield client


def new_call(call_id: str = "c1", **extra: object) -> dict[str, object]:
    return {"event": "newCall", "from": "0612345678", "to": "0201234567", "direction": "in", "callId": call_id,
            **extra}


async def test_a_wrong_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/integrations/cti/wrong", json=new_call())
    assert response.status_code == 401 and "token" in response.json()["error"]


@pytest.mark.parametrize("field", ["event", "callId", "from", "to", "direction"])
async def test_a_missing_field_is_422_naming_it(client: httpx.AsyncClient, field: str) -> None:
    body = new_call()
    del body[field]
    response = await client.post(URL, json=body)
    assert response.status_code == 422
    assert response.json()["field"] == field and f"'{field}'" in response.json()["error"]


@pytest.mark.parametrize(("body", "field"), [
    ({**new_call(), "event": "ring"}, "event"),
    ({**new_call(), "direction": "sideways"}, "direction"),
    ({**new_call(), "callId": "x" * 251}, "callId"),
    ({**new_call(), "user": [1, 2]}, "user"),
    ({**new_call(), "from": {"a": 1}}, "from"),
])
async def test_malformed_fields_are_422_naming_them(client: httpx.AsyncClient, body: dict[str, object],
                                                   field: str) -> None:
    response = await client.post(URL, json=body)
    assert response.status_code == 422 and response.json()["field"] == field


async def test_a_body_that_is_not_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["field"] == "body"


async def test_form_data_with_user_brackets_rings_the_named_agent(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, data={**new_call("form"), "user[]": ["Anna de Vries"]})
    assert response.status_code == 200
    assert response.json()["state"] == "offered" and "action" not in response.json()


async def test_a_repeated_new_call_returns_the_existing_conversation(client: httpx.AsyncClient) -> None:
    first = await client.post(URL, json=new_call("same", user="201"))
    second = await client.post(URL, json=new_call("same", user="201"))
    assert first.status_code == second.status_code == 200
    assert first.json()["conversation"] == second.json()["conversation"]


async def test_the_console_routes_a_call_nobody_rings_and_names_the_extension(client: httpx.AsyncClient) -> None:
    held = await client.post(URL, json=new_call("routed"))
    assert held.json()["state"] == "queued" and "action" not in held.json()
    # Anna becomes available through the service; the phone system asks again and learns the target.
    from console import routing

    app = client._transport.app  # type: ignore[attr-defined]
    await routing.set_status(app.state.wiring.ctx, 1, "available")
    again = await client.post(URL, json=new_call("routed"))
    assert again.json() == {"conversation": held.json()["conversation"], "state": "offered",
                                 "action": "transfer", "target": "201"}


async def test_answer_and_hangup_follow_the_call(client: httpx.AsyncClient) -> None:
    await client.post(URL, json=new_call("life", user=["Anna de Vries"]))
    answered = await client.post(URL, json={"event": "answer", "callId": "life", "answeringNumber": "201"})
    assert answered.json()["state"] == "active"
    ended = await client.post(URL, json={"event": "hangup", "callId": "life", "cause": "normalClearing"})
    assert ended.json()["state"] == "wrap_up"


async def test_hangup_before_answer_is_abandoned(client: httpx.AsyncClient) -> None:
    await client.post(URL, data={**new_call("missed"), "user[]": "201"})
    ended = await client.post(URL, data={"event": "hangup", "callId": "missed", "cause": "cancel"})
    assert ended.json()["state"] == "abandoned"


async def test_events_for_an_unknown_call_are_404(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json={"event": "answer", "callId": "never"})
    assert response.status_code == 404 and response.json()["field"] == "callId"


@settings(max_examples=200, deadline=None)  # no timing assertions: CI machines are shared
@given(st.dictionaries(st.sampled_from(["event", "from", "to", "direction", "callId", "user", "cause",
                                        "answeringNumber", "queue"]),
                       st.one_of(st.text(max_size=300), st.integers(), st.none(), st.lists(st.text(max_size=5)),
                                 st.booleans())))
def test_parse_accepts_or_names_a_field_never_crashes(data: dict[str, object]) -> None:
    try:
        event = parse(data)
    except CTIError as exc:
        assert exc.field in data or exc.field in {"event", "callId", "from", "to", "direction"}
    else:
        assert event.event in {"newCall", "answer", "hangup"}


async def test_while_the_database_is_unreachable_the_phone_system_is_told_to_retry(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    app = create_app(make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/gone", tmp_path))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as client:
        response = await client.post(URL, json=new_call("retry-me"))
    assert response.status_code == 503 and response.headers["retry-after"]
    assert "retry" in response.json()["error"]


async def test_an_embedded_node_past_its_capacity_sheds_with_503_and_stores_nothing(sqlite_url: str,
                                                                                     tmp_path: Path) -> None:
    async with served(make_settings(sqlite_url, tmp_path, write_wait=0.1)) as (app, client):
        db: Database = app.state.wiring.ctx.db  # type: ignore[attr-defined]
        async with db.transaction():  # the writer is busy for longer than a write may wait
            response = await client.post(URL, json=new_call("shed-me"))
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert "retry" in response.json()["error"]
        async with db.reading() as session:
            assert await session.scalar(select(func.count()).select_from(Conversation)) == 0
        again = await client.post(URL, json=new_call("shed-me"))
        assert again.status_code == 200 and again.json()["state"] == "queued", "the retry stores it"



# What an attacker's review found answered 500, and what forged log lines: each is a 422 now.
@pytest.mark.parametrize(("content", "field"), [
    (b"[" * 2048, "body"),  # nested deeper than the JSON parser recurses
    (b'{"event": "newCall", "from": "1", "to": "2", "direction": "in", "callId": "\\ud800"}', "callId"),
    (b'{"event": "newCall", "from": "1", "to": "2", "direction": "in", "callId": "a\\u0000b"}', "callId"),
    (b'{"event": "newCall", "from": "06\\u00001", "to": "2", "direction": "in", "callId": "nul"}', "from"),
    (b'{"event": "newCall", "from": "1", "to": "2", "direction": "in", "callId": "x\\nINFO forged"}', "callId"),
    (b'{"event": "newCall", "from": "1", "to": "2", "direction": "in", "callId": "u", "user": ["\\udfff"]}',
     "user"),
])
async def test_bodies_that_answered_500_are_422_naming_the_field(client: httpx.AsyncClient, content: bytes,
                                                                 field: str) -> None:
    response = await client.post(URL, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["field"] == field
    assert "error" in response.json()


async def test_a_body_over_the_limit_is_refused_before_it_is_read(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b"x" * (65 * 1024),
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 422 and "larger than" in response.json()["error"]


async def test_an_unknown_content_type_is_422_saying_which_are_understood(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b"<call/>", headers={"content-type": "text/xml"})
    assert response.status_code == 422 and "application/json" in response.json()["error"]


async def test_form_bytes_that_are_not_utf8_are_422(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, content=b"event=newCall&callId=%FF%FE",
                                 headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 422 and "UTF-8" in response.json()["error"]


def test_a_refused_value_is_logged_on_one_line() -> None:
    from console.logs import TEXT, ContextFilter, SafeFormatter, conversation_id

    record = logging.LogRecord("integrations.cti", logging.WARNING, __file__, 1, "CTI request refused: %s",
                               ("callId 'x\nINFO integrations.cti forged\u2028\ud800'",), None)
    token = conversation_id.set("call:a\rb")
    try:
        ContextFilter().filter(record)
    finally:
        conversation_id.reset(token)
    line = SafeFormatter(TEXT).format(record)
    assert "conversation=call:a\\rb" in line
    assert "\n" not in line and "\u2028" not in line and "\ud800" not in line
    assert "\\nINFO integrations.cti forged" in line
    line.encode("utf-8")  # a lone surrogate would make the log writer raise


TEXTS = st.text(alphabet=st.characters(categories=["Cc", "Cs", "L", "N", "P", "S", "Z"]), max_size=40)
# JSON values two levels deep, built without st.recursive and without lambdas: hypothesis parses a
# lambda's source to describe it, and that parse failed once deep in a recursive draw (a SystemError
# from compile() in CI), which hypothesis then reported as a flaky strategy.
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXTS | st.sampled_from(["201", "Anna de Vries"])
SHALLOW = SCALARS | st.lists(SCALARS, max_size=4) | st.dictionaries(TEXTS, SCALARS, max_size=4)
JSON_VALUES = SHALLOW | st.lists(SHALLOW, max_size=3) | st.dictionaries(TEXTS, SHALLOW, max_size=3)
GOOD = {"event": ["newCall", "answer", "hangup"], "callId": ["f1", "f2", "f3"], "from": ["0612345678"],
        "to": ["0201234567"], "direction": ["in", "out"], "user": ["201", "Anna de Vries"], "cause": ["cancel"],
        "answeringNumber": ["201"], "queue": ["sales"]}


def _field(name: str) -> st.SearchStrategy[object]:
    """Mostly a value that fits, so that requests get past the parser into the services too."""
    return st.sampled_from(GOOD[name]) | st.sampled_from(GOOD[name]) | JSON_VALUES


EVENT_BODIES = st.fixed_dictionaries({name: _field(name) for name in ("event", "callId", "from", "to", "direction")},
                                     optional={name: _field(name) for name in ("user", "cause", "answeringNumber",
                                                                               "queue")})
def _as_json(body: dict[str, object]) -> tuple[str, bytes]:
    return "application/json", json.dumps(body).encode()


def _as_form(body: dict[str, object]) -> tuple[str, bytes]:
    return ("application/x-www-form-urlencoded",
            urlencode({k: str(v) for k, v in body.items()}, errors="surrogatepass").encode())


def _nested(depth: int) -> tuple[str, bytes]:
    return "application/json", b'{"event": ' + b"[" * depth + b"]" * depth + b"}"


RAW = st.one_of(
    EVENT_BODIES.map(_as_json),
    EVENT_BODIES.map(_as_form),
    st.tuples(st.sampled_from(["application/json", "application/x-www-form-urlencoded", "multipart/form-data",
                               "", "text/plain; charset=utf-8"]), st.binary(max_size=300)),
    st.integers(1, 5000).map(_nested),
)


def test_the_endpoint_answers_any_body_below_500_and_logs_no_traceback(
        database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The fuzzer: JSON and form bodies of known fields with hostile values, and raw bytes, on
    each database. Every answer is below 500 and nothing is logged with a traceback."""
    loop = asyncio.new_event_loop()
    serving = served(make_settings(database_url, tmp_path))
    try:
        db = Database(database_url)
        loop.run_until_complete(add_agent(db, "anna@x.nl", "Anna de Vries", extension="201"))
        loop.run_until_complete(db.close())
        _, http = loop.run_until_complete(serving.__aenter__())
        client: httpx.AsyncClient = http  # type: ignore[assignment]
        seen: collections.Counter[int] = collections.Counter()

        @settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
        @given(RAW)
        def post(raw: tuple[str, bytes]) -> None:
            content_type, content = raw
            response = loop.run_until_complete(client.post(URL, content=content,
                                                           headers={"content-type": content_type}))
            seen[response.status_code] += 1
            assert response.status_code < 500, (raw, response.text)
            assert "error" in response.json() or response.status_code == 200

        with caplog.at_level(logging.INFO):
            post()
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        assert seen[422] and seen[200], seen  # the fuzzer reached both the parser and the services
    finally:
        loop.run_until_complete(serving.__aexit__(None, None, None))
        loop.close()
