"""Twilio Voice through its webhooks, each request signed with Twilio's own library."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from lxml import etree
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from console import routing
from console.db import Database
from console.models import Agent, Conversation, Customer, Offer, OfferState, State
from tests.conftest import make_settings, served
from tests.helpers import add_agent, add_customer
from tests.integrations.fake_twilio import ACCOUNT, PUBLIC, TOKEN, TWILIO_SETTINGS, FakeApi, Signer, new_sid


def call_sid() -> str:
    return new_sid("CA")


@dataclass
class Twilio(Signer):
    """Twilio's voice webhooks, on the app under test."""

    app: object = None

    async def call(self, sid: str, caller: str = "+31612345678", queue: str | None = None) -> httpx.Response:
        path = "/integrations/twilio/voice" + (f"?{urlencode({'queue': queue})}" if queue else "")
        return await self.post(path, {"CallSid": sid, "AccountSid": ACCOUNT, "From": caller, "To": "+31201234567",
                                      "CallStatus": "ringing", "Direction": "inbound"})

    async def status(self, sid: str, status: str, sequence: int | None = None, *, agent: int | None = None,
                     parent: str | None = None) -> httpx.Response:
        params = {"CallSid": sid, "AccountSid": ACCOUNT, "CallStatus": status}
        if sequence is not None:
            params["SequenceNumber"] = str(sequence)
        path = "/integrations/twilio/voice/status"
        if agent is not None:
            path += f"?{urlencode({'leg': 'agent', 'agent': agent})}"
            params["ParentCallSid"] = parent or ""
        return await self.post(path, params)


def twiml(response: httpx.Response) -> etree._Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    return etree.fromstring(response.content)


@pytest.fixture
async def twilio(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Twilio, FakeApi]]:
    db = Database(database_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    await add_agent(db, "bram@x.nl", "Bram Bakker", extension="sip:bram@pbx.example.com")
    await add_customer(db, "Jan Jansen", phones=("0612345678",))
    async with db.transaction() as session:
        customer = await session.scalar(select(Customer).where(Customer.name == "Jan Jansen"))
        assert customer is not None
        customer.language = "nl"
    await db.close()
    api = FakeApi()
    async with served(make_settings(database_url, tmp_path, **TWILIO_SETTINGS)) as (app, client):
        app.state.wiring.twilio.transport = httpx.MockTransport(api)  # type: ignore[attr-defined]
        yield Twilio(client, app=app), api


async def conversation(app: object, sid: str) -> Conversation:
    async with app.state.wiring.ctx.db.reading() as session:  # type: ignore[attr-defined]
        found = await session.scalar(select(Conversation).where(Conversation.external_id == sid))
        assert found is not None
        return found


async def available(app: object, agent_id: int) -> None:
    await routing.set_status(app.state.wiring.ctx, agent_id, "available")  # type: ignore[attr-defined]


# -- signatures ------------------------------------------------------------------------------------


async def test_an_unsigned_request_is_403(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    response = await tw.client.post("/integrations/twilio/voice", data={"CallSid": call_sid()})
    assert response.status_code == 403 and "X-Twilio-Signature" in response.json()["error"]


async def test_a_tampered_request_is_403_and_stores_nothing(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    sid = call_sid()
    params = {"CallSid": sid, "From": "+31612345678", "To": "+31201234567", "Direction": "inbound"}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + "/integrations/twilio/voice", params)
    tampered = await tw.client.post("/integrations/twilio/voice", data={**params, "From": "+31600000000"},
                                    headers={"X-Twilio-Signature": signature})
    assert tampered.status_code == 403 and "CONSOLE_TWILIO_PUBLIC_URL" in tampered.json()["error"]
    other_token = await tw.post("/integrations/twilio/voice", params,
                                signature=RequestValidator("another token").compute_signature(
                                    PUBLIC + "/integrations/twilio/voice", params))
    assert other_token.status_code == 403
    async with tw.app.state.wiring.ctx.db.reading() as session:  # type: ignore[attr-defined]
        assert await session.scalar(select(Conversation).where(Conversation.external_id == sid)) is None
    readyz = (await tw.client.get("/readyz")).json()
    assert readyz["connectors"]["twilio"]["failures"] == 2
    assert "wrong X-Twilio-Signature" in readyz["connectors"]["twilio"]["last_error"]


async def test_a_request_signed_for_the_public_url_behind_a_proxy_is_taken(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    # The proxy forwards to http://console.test; Twilio signed https://console.example.com, with or
    # without the default port as Twilio's own validator allows.
    for signed in (PUBLIC + "/integrations/twilio/voice", "https://console.example.com:443/integrations/twilio/voice"):
        params = {"CallSid": call_sid(), "From": "+31612345678", "To": "+31201234567", "Direction": "inbound"}
        response = await tw.post("/integrations/twilio/voice", params, signed_url=signed)
        assert response.status_code == 200, response.text
    wrong_host = await tw.post("/integrations/twilio/voice", {"CallSid": call_sid(), "From": "+3161", "To": "+3120"},
                               signed_url="http://console.test/integrations/twilio/voice")
    assert wrong_host.status_code == 403


async def test_a_json_body_is_checked_against_its_body_hash(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    sid = call_sid()
    await tw.call(sid)
    body = json.dumps({"CallSid": sid, "CallStatus": "completed", "SequenceNumber": "3"})
    digest = hashlib.sha256(body.encode()).hexdigest()
    path = f"/integrations/twilio/voice/status?bodySHA256={digest}"
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + path, {})
    headers = {"X-Twilio-Signature": signature, "content-type": "application/json"}
    tampered = await tw.client.post(path, content=body.replace("completed", "ringing"), headers=headers)
    assert tampered.status_code == 403
    unhashed = await tw.client.post("/integrations/twilio/voice/status", content=body, headers={
        "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(PUBLIC + "/integrations/twilio/voice/status",
                                                                        {}), "content-type": "application/json"})
    assert unhashed.status_code == 403 and "bodySHA256" in unhashed.json()["error"]
    response = await tw.client.post(path, content=body, headers=headers)
    assert response.status_code == 204
    assert (await conversation(tw.app, sid)).state is State.ABANDONED


async def test_malformed_requests_are_400_with_the_reason(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    missing = await tw.post("/integrations/twilio/voice", {"From": "+31612345678", "To": "+31201234567"})
    assert missing.status_code == 400 and "CallSid" in missing.json()["error"]
    bad = await tw.post("/integrations/twilio/voice", {"CallSid": "CA123", "From": "+316", "To": "+3120"})
    assert bad.status_code == 400 and "SID" in bad.json()["error"]
    unknown = await tw.post("/integrations/twilio/voice/wait", {"CallSid": call_sid()})
    assert unknown.status_code == 400 and "not known" in unknown.json()["error"]


async def test_without_a_token_every_request_is_refused(database_url: str, tmp_path: Path) -> None:
    async with served(make_settings(database_url, tmp_path)) as (_, client):
        params = {"CallSid": call_sid(), "From": "+31612345678", "To": "+31201234567"}
        response = await client.post("/integrations/twilio/voice", data=params,
                                     headers={"X-Twilio-Signature": RequestValidator("").compute_signature(
                                         "http://console.test/integrations/twilio/voice", params)})
        assert response.status_code == 403 and "CONSOLE_TWILIO_AUTH_TOKEN" in response.json()["error"]
        assert (await client.get("/readyz")).json()["connectors"]["twilio"]["state"] == "off"


# -- the life of a call -------------------------------------------------------------------------------


async def test_a_call_with_a_free_agent_dials_their_client_and_answering_makes_it_active(
        twilio: tuple[Twilio, FakeApi]) -> None:
    tw, api = twilio
    await available(tw.app, 1)
    sid = call_sid()
    document = twiml(await tw.call(sid))
    client = document.find("Dial/Client")
    assert client is not None and client.text == "201"
    dial = document.find("Dial")
    assert dial is not None and dial.get("timeout") == "20" and dial.get("answerOnBridge") == "true"
    assert dial.get("action", "").startswith(PUBLIC + "/integrations/twilio/voice/dialed")
    assert "leg=agent" in client.get("statusCallback", "")
    found = await conversation(tw.app, sid)
    assert found.state is State.OFFERED and found.agent_id == 1
    # Twilio's repeated webhook finds the same call, dialled again.
    assert twiml(await tw.call(sid)).find("Dial/Client") is not None
    leg = call_sid()
    for status in ("initiated", "ringing"):
        assert (await tw.status(leg, status, agent=1, parent=sid)).status_code == 204
    assert (await conversation(tw.app, sid)).state is State.OFFERED
    await tw.status(leg, "in-progress", agent=1, parent=sid)
    found = await conversation(tw.app, sid)
    assert found.state is State.ACTIVE and found.agent_id == 1
    await tw.status(sid, "completed", 4)
    assert (await conversation(tw.app, sid)).state is State.WRAP_UP
    assert api.requests == []  # nothing had to be moved


async def test_a_caller_holds_in_their_language_and_is_moved_to_the_agent_who_becomes_free(
        twilio: tuple[Twilio, FakeApi]) -> None:
    tw, api = twilio
    sid = call_sid()
    document = twiml(await tw.call(sid, caller="+31612345678"))  # Jan Jansen, who speaks Dutch
    say = document.find("Say")
    assert say is not None and say.get("language") == "nl-NL" and "wacht" in (say.text or "").lower()
    assert document.find("Play") is not None
    redirect = document.find("Redirect")
    assert redirect is not None and redirect.text == PUBLIC + "/integrations/twilio/voice/wait"
    assert (await conversation(tw.app, sid)).state is State.QUEUED
    # Another round of music without the message.
    again = twiml(await tw.post("/integrations/twilio/voice/wait", {"CallSid": sid}))
    assert again.find("Say") is None and again.find("Play") is not None
    await available(tw.app, 1)  # Anna becomes free: the console offers her the call and moves it
    for _ in range(100):
        if api.requests:
            break
        await asyncio.sleep(0.02)
    assert api.requests, "the call was not moved"
    path, form = api.requests[0]
    assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json"
    assert form["Url"] == [PUBLIC + "/integrations/twilio/voice/wait"]
    moved = twiml(await tw.post("/integrations/twilio/voice/wait", {"CallSid": sid}))
    assert moved.find("Dial/Client") is not None and moved.find("Dial/Client").text == "201"  # type: ignore[union-attr]


async def test_an_unknown_caller_hears_the_queues_own_message_and_music(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    from console.models import Queue

    async with tw.app.state.wiring.ctx.db.transaction() as session:  # type: ignore[attr-defined]
        session.add(Queue(name="Sales", hold_message="Welcome to sales <b>&", hold_music_url="https://x.test/m.mp3"))
    document = twiml(await tw.call(call_sid(), caller="+31699999999", queue="Sales"))
    say, play = document.find("Say"), document.find("Play")
    assert say is not None and say.text == "Welcome to sales <b>&" and say.get("language") == "en-GB"
    assert play is not None and play.text == "https://x.test/m.mp3"


async def test_no_answer_rings_the_offer_out_and_dials_the_next_agent(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    await available(tw.app, 1)
    sid = call_sid()
    twiml(await tw.call(sid))
    await available(tw.app, 2)
    response = await tw.post("/integrations/twilio/voice/dialed?agent=1",
                             {"CallSid": sid, "DialCallStatus": "no-answer"},
                             signed_url=PUBLIC + "/integrations/twilio/voice/dialed?agent=1")
    document = twiml(response)
    sip = document.find("Dial/Sip")
    assert sip is not None and sip.text == "sip:bram@pbx.example.com"
    async with tw.app.state.wiring.ctx.db.reading() as session:  # type: ignore[attr-defined]
        offers = {(o.agent_id, o.state) for o in await session.scalars(select(Offer))}
        anna = await session.get(Agent, 1)
    assert (1, OfferState.EXPIRED) in offers and (2, OfferState.PENDING) in offers
    assert anna is not None and anna.missed_offers == 1


async def test_after_a_conversation_the_dial_ends_the_call(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    await available(tw.app, 1)
    sid = call_sid()
    twiml(await tw.call(sid))
    await tw.status(call_sid(), "in-progress", agent=1, parent=sid)
    document = twiml(await tw.post("/integrations/twilio/voice/dialed?agent=1",
                                   {"CallSid": sid, "DialCallStatus": "completed"}))
    assert document.find("Hangup") is not None
    assert (await conversation(tw.app, sid)).state is State.WRAP_UP


async def test_late_and_repeated_callbacks_change_nothing(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    sid = call_sid()
    twiml(await tw.call(sid))  # nobody is free: the caller holds
    await tw.status(sid, "completed", 5)
    assert (await conversation(tw.app, sid)).state is State.ABANDONED
    # A late ringing, a repeated completed, an earlier sequence: nothing moves the call back.
    for status, sequence in (("ringing", 2), ("in-progress", 3), ("completed", 5), ("busy", 6)):
        assert (await tw.status(sid, status, sequence)).status_code == 204
    async with tw.app.state.wiring.ctx.db.reading() as session:  # type: ignore[attr-defined]
        from console.models import TwilioCall

        row = await session.get(TwilioCall, sid)
        assert row is not None and row.status == "completed" and row.sequence == 5
    assert (await conversation(tw.app, sid)).state is State.ABANDONED
    # The caller who hung up hears nothing more: the next round of hold ends the call.
    assert twiml(await tw.post("/integrations/twilio/voice/wait", {"CallSid": sid})).find("Hangup") is not None


async def test_an_agent_legs_answer_after_the_caller_hung_up_changes_nothing(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    await available(tw.app, 1)
    sid = call_sid()
    twiml(await tw.call(sid))
    leg = call_sid()
    await tw.status(leg, "completed", 3, agent=1, parent=sid)
    await tw.status(sid, "canceled")
    assert (await tw.status(leg, "in-progress", 2, agent=1, parent=sid)).status_code == 204
    found = await conversation(tw.app, sid)
    assert found.state is State.ABANDONED


async def test_a_failing_api_shows_on_readyz_and_the_caller_keeps_holding(twilio: tuple[Twilio, FakeApi]) -> None:
    tw, api = twilio
    api.status = 401
    sid = call_sid()
    twiml(await tw.call(sid))
    await available(tw.app, 1)
    for _ in range(100):
        if api.requests:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)
    state = (await tw.client.get("/readyz")).json()["connectors"]["twilio"]
    assert state["state"] == "failing" and "401" in state["last_error"]
    # At the end of the round of music the call comes back and is dialled all the same.
    assert twiml(await tw.post("/integrations/twilio/voice/wait", {"CallSid": sid})).find("Dial/Client") is not None


async def test_a_call_handed_to_a_colleague_is_moved_to_them(twilio: tuple[Twilio, FakeApi]) -> None:
    from console import handoffs

    tw, api = twilio
    await available(tw.app, 1)
    sid = call_sid()
    twiml(await tw.call(sid))
    await tw.status(call_sid(), "in-progress", agent=1, parent=sid)
    await available(tw.app, 2)
    ctx = tw.app.state.wiring.ctx  # type: ignore[attr-defined]
    await handoffs.start(ctx, 1, (await conversation(tw.app, sid)).id, handoffs.Target(agent_id=2), "cold",
                         "Wants to change the delivery address")
    for _ in range(100):
        if api.requests:
            break
        await asyncio.sleep(0.02)
    assert api.requests and api.requests[0][0].endswith(f"/Calls/{sid}.json")
    moved = twiml(await tw.post("/integrations/twilio/voice/wait", {"CallSid": sid}))
    sip = moved.find("Dial/Sip")
    assert sip is not None and sip.text == "sip:bram@pbx.example.com"
    # Anna's Dial ending now is not the end of the call.
    after = twiml(await tw.post("/integrations/twilio/voice/dialed?agent=1",
                                {"CallSid": sid, "DialCallStatus": "completed"}))
    assert after.find("Hangup") is None


async def test_a_busy_or_offline_softphone_moves_the_call_on_without_a_missed_offer(
        twilio: tuple[Twilio, FakeApi]) -> None:
    tw, _ = twilio
    await available(tw.app, 1)
    sid = call_sid()
    twiml(await tw.call(sid))
    document = twiml(await tw.post("/integrations/twilio/voice/dialed?agent=1",
                                   {"CallSid": sid, "DialCallStatus": "failed"}))
    assert document.find("Play") is not None  # nobody else is free: back on hold
    async with tw.app.state.wiring.ctx.db.reading() as session:  # type: ignore[attr-defined]
        anna = await session.get(Agent, 1)
        offer = await session.scalar(select(Offer).where(Offer.agent_id == 1))
    assert anna is not None and anna.missed_offers == 0
    assert offer is not None and offer.state is not OfferState.EXPIRED
