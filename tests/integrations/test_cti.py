from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
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


@settings(max_examples=200)
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

