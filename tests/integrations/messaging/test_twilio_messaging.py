"""SMS and WhatsApp through Twilio's webhooks (signed with Twilio's library) and its REST API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from lxml import etree
from sqlalchemy import select, update

from console import offers, routing, texts
from console.models import Channel, Conversation, Customer, Message, State, TextMessage, TextOptOut, utcnow
from tests.conftest import make_settings, served
from tests.helpers import add_agent, add_customer, log_in
from tests.integrations.fake_twilio import ACCOUNT, PUBLIC, TWILIO_SETTINGS, FakeApi, Signer, new_sid

OURS = "+31201234567"
WHATSAPP_OURS = "whatsapp:+14155238886"
HX = {"HX-Request": "true"}


@dataclass
class Phone(Signer):
    """A customer's phone texting the console, through Twilio."""

    app: object = None

    async def text(self, body: str, sender: str = "+31612345678", to: str = OURS, sid: str | None = None,
                   queue: str | None = None) -> httpx.Response:
        path = "/integrations/twilio/messaging" + (f"?queue={queue}" if queue else "")
        return await self.post(path, {"MessageSid": sid or new_sid("SM"), "AccountSid": ACCOUNT, "From": sender,
                                      "To": to, "Body": body, "NumMedia": "0"})

    async def delivery(self, sid: str, status: str, code: str = "") -> httpx.Response:
        params = {"MessageSid": sid, "MessageStatus": status, "AccountSid": ACCOUNT}
        if code:
            params["ErrorCode"] = code
        return await self.post("/integrations/twilio/messaging/status", params)

    @property
    def ctx(self) -> object:
        return self.app.state.wiring.ctx  # type: ignore[attr-defined]


@pytest.fixture
async def phone(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Phone, FakeApi]]:
    from console.db import Database

    db = Database(database_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    await add_customer(db, "Jan Jansen", phones=("0612345678",))
    async with db.transaction() as session:
        await session.execute(update(Customer).values(consent_phone=True))
    await db.close()
    api = FakeApi()
    settings = make_settings(database_url, tmp_path, **TWILIO_SETTINGS,
                             twilio_whatsapp_templates=(("follow-up", "HX" + "b" * 32),))
    async with served(settings) as (app, client):
        app.state.wiring.twilio.transport = httpx.MockTransport(api)  # type: ignore[attr-defined]
        yield Phone(client, app=app), api


async def sms_conversations(phone: Phone) -> list[Conversation]:
    async with phone.ctx.db.reading() as session:  # type: ignore[attr-defined]
        return list(await session.scalars(select(Conversation).where(Conversation.channel == Channel.SMS)
                                          .order_by(Conversation.id)))


async def lines(phone: Phone, conversation_id: int) -> list[tuple[str, str, str | None]]:
    async with phone.ctx.db.reading() as session:  # type: ignore[attr-defined]
        rows = await session.execute(select(Message.author, Message.body, TextMessage.status)
                                     .outerjoin(TextMessage, TextMessage.message_id == Message.id)
                                     .where(Message.conversation_id == conversation_id).order_by(Message.id))
        return [(author.value, body, status) for author, body, status in rows.all()]


async def answering(phone: Phone, conversation_id: int) -> tuple[httpx.AsyncClient, str]:
    """Anna accepts the conversation and has her page's token to write with."""
    await offers.accept(phone.ctx, 1, conversation_id)  # type: ignore[arg-type]
    token = await log_in(phone.client, "anna@x.nl")
    return phone.client, token


async def reply(phone: Phone, token: str, conversation_id: int, **form: str) -> httpx.Response:
    return await phone.client.post(f"/conversations/{conversation_id}/messages",
                                   data={"client_id": new_sid("cl"), **form},
                                   headers={"X-CSRF-Token": token, **HX})


async def sent_requests(api: FakeApi, count: int) -> list[dict[str, list[str]]]:
    for _ in range(200):
        if len(api.requests) >= count:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.05)  # the sender stores Twilio's answer after the request
    return [form for path, form in api.requests if path.endswith("/Messages.json")]


async def test_a_text_becomes_a_conversation_routed_like_a_chat_and_later_texts_join_it(
        phone: tuple[Phone, FakeApi]) -> None:
    ph, _ = phone
    await routing.set_status(ph.ctx, 1, "available")  # type: ignore[arg-type]
    sid = new_sid("SM")
    response = await ph.text("Hallo, mijn pakket is niet aangekomen", sid=sid)
    assert response.status_code == 200 and etree.fromstring(response.content).tag == "Response"
    await ph.text("Ordernummer 4711")
    await ph.text("Hallo, mijn pakket is niet aangekomen", sid=sid)  # Twilio sent it again
    [conversation] = await sms_conversations(ph)
    assert conversation.state is State.OFFERED and conversation.agent_id == 1
    assert conversation.customer_id is not None  # Jan Jansen, by his number
    assert [body for _, body, _ in await lines(ph, conversation.id)] == [
        "Hallo, mijn pakket is niet aangekomen", "Ordernummer 4711"]


async def test_the_agents_reply_goes_out_and_delivery_only_moves_forward(phone: tuple[Phone, FakeApi]) -> None:
    ph, api = phone
    await routing.set_status(ph.ctx, 1, "available")  # type: ignore[arg-type]
    await ph.text("Wanneer komt mijn pakket?")
    [conversation] = await sms_conversations(ph)
    _, token = await answering(ph, conversation.id)
    response = await reply(ph, token, conversation.id, text="Morgen tussen 9 en 12 uur.")
    assert response.status_code in (200, 204), response.text
    [form] = await sent_requests(api, 1)
    assert form["From"] == [OURS] and form["To"] == ["+31612345678"]
    assert form["Body"] == ["Morgen tussen 9 en 12 uur."]
    assert form["StatusCallback"] == [PUBLIC + "/integrations/twilio/messaging/status"]
    async with ph.ctx.db.reading() as session:  # type: ignore[attr-defined]
        out = await session.scalar(select(TextMessage).where(TextMessage.direction == "out"))
    assert out is not None and out.sid is not None and out.status == "queued"
    for status in ("sent", "delivered", "sent", "queued"):  # late ones change nothing
        assert (await ph.delivery(out.sid, status)).status_code == 204
    assert (await lines(ph, conversation.id))[-1] == ("agent", "Morgen tussen 9 en 12 uur.", "delivered")


async def test_stop_opts_the_number_out_and_start_back_in(phone: tuple[Phone, FakeApi]) -> None:
    ph, api = phone
    await routing.set_status(ph.ctx, 1, "available")  # type: ignore[arg-type]
    await ph.text("Mijn factuur klopt niet")
    [conversation] = await sms_conversations(ph)
    _, token = await answering(ph, conversation.id)
    await ph.text("STOP")
    async with ph.ctx.db.reading() as session:  # type: ignore[attr-defined]
        opted = await session.get(TextOptOut, "+31612345678")
        customer = await session.scalar(select(Customer).where(Customer.name == "Jan Jansen"))
    assert opted is not None and opted.keyword == "STOP"
    assert customer is not None and customer.consent_phone is False
    refused = await reply(ph, token, conversation.id, text="Nog één vraag")
    assert refused.status_code == 409 and "STOP" in refused.text
    assert await sent_requests(api, 0) == []
    await ph.text("start")
    accepted = await reply(ph, token, conversation.id, text="Fijn dat u er weer bent")
    assert accepted.status_code in (200, 204)
    assert len(await sent_requests(api, 1)) == 1
    async with ph.ctx.db.reading() as session:  # type: ignore[attr-defined]
        customer = await session.scalar(select(Customer).where(Customer.name == "Jan Jansen"))
    assert customer is not None and customer.consent_phone is True
    authors = [author for author, _, _ in await lines(ph, conversation.id)]
    assert authors.count("system") == 2  # the agent reads that they opted out, and back in


async def test_a_stop_without_a_conversation_is_recorded_and_bothers_nobody(phone: tuple[Phone, FakeApi]) -> None:
    ph, _ = phone
    response = await ph.text("Afmelden", sender="+31687654321")
    assert response.status_code == 200
    assert await sms_conversations(ph) == []
    async with ph.ctx.db.reading() as session:  # type: ignore[attr-defined]
        assert await session.get(TextOptOut, "+31687654321") is not None


async def test_whatsapp_outside_the_window_takes_only_a_template(phone: tuple[Phone, FakeApi]) -> None:
    ph, api = phone
    await routing.set_status(ph.ctx, 1, "available")  # type: ignore[arg-type]
    await ph.text("Hoi! Vraagje over mijn abonnement", sender="whatsapp:+31612345678", to=WHATSAPP_OURS)
    [conversation] = await sms_conversations(ph)
    assert conversation.customer_id is not None  # matched by the number behind whatsapp:
    _, token = await answering(ph, conversation.id)
    assert (await reply(ph, token, conversation.id, text="Waarmee kan ik helpen?")).status_code in (200, 204)
    async with ph.ctx.db.transaction() as session:  # type: ignore[attr-defined]
        await session.execute(update(Message).where(Message.author == "customer")
                              .values(created_at=utcnow() - timedelta(hours=25)))
    refused = await reply(ph, token, conversation.id, text="Bent u er nog?")
    assert refused.status_code == 409 and "24 hours" in refused.text
    unknown = await reply(ph, token, conversation.id, template="made-up")
    assert unknown.status_code == 422 and "template" in unknown.text
    assert (await reply(ph, token, conversation.id, template="follow-up")).status_code in (200, 204)
    forms = await sent_requests(api, 2)
    assert forms[0]["From"] == [WHATSAPP_OURS] and forms[0]["To"] == ["whatsapp:+31612345678"]
    assert forms[1]["ContentSid"] == ["HX" + "b" * 32] and "Body" not in forms[1]
    page = await ph.client.get("/")
    assert "follow-up" in page.text  # the template picker, with the reason above it


async def test_a_reply_twilio_refuses_is_failed_with_the_reason_and_an_outage_is_retried(
        phone: tuple[Phone, FakeApi]) -> None:
    ph, api = phone
    await routing.set_status(ph.ctx, 1, "available")  # type: ignore[arg-type]
    await ph.text("Kunt u mij terugbellen?")
    [conversation] = await sms_conversations(ph)
    _, token = await answering(ph, conversation.id)
    api.status = 503
    await reply(ph, token, conversation.id, text="Ja, vanmiddag")
    await sent_requests(api, 1)
    async with ph.ctx.db.reading() as session:  # type: ignore[attr-defined]
        first = await session.scalar(select(TextMessage).where(TextMessage.direction == "out"))
    assert first is not None and first.status == "queued" and first.next_attempt_at is not None
    assert "503" in (first.error or "")
    api.status, api.code = 400, 21610
    await reply(ph, token, conversation.id, text="Of morgen")
    await sent_requests(api, 2)
    assert (await lines(ph, conversation.id))[-1][2] == "failed"
    # The first one goes out once Twilio is back and its retry is due.
    api.status = 200
    async with ph.ctx.db.transaction() as session:  # type: ignore[attr-defined]
        await session.execute(update(TextMessage).where(TextMessage.message_id == first.message_id)
                              .values(next_attempt_at=utcnow() - timedelta(minutes=5)))
    assert await ph.app.state.wiring.messaging.sweep() == 1  # type: ignore[attr-defined]
    async with ph.ctx.db.reading() as session:  # type: ignore[attr-defined]
        again = await session.get(TextMessage, first.message_id)
    assert again is not None and again.sid is not None and again.error is None


async def test_malformed_and_unsigned_messages_are_refused(phone: tuple[Phone, FakeApi]) -> None:
    ph, _ = phone
    unsigned = await ph.client.post("/integrations/twilio/messaging", data={"MessageSid": new_sid("SM")})
    assert unsigned.status_code == 403
    empty = await ph.text("   ")
    assert empty.status_code == 400 and "no text" in empty.text
    too_long = await ph.text("x" * 4097)
    assert too_long.status_code == 400 and "Body" in too_long.text


async def test_opt_out_keywords() -> None:
    for word in ("STOP", "stop", " Stop. ", "AFMELDEN", "uitschrijven", "STOPALL", "Unsubscribe"):
        assert texts.keyword(word) == "stop", word
    for word in ("START", "unstop", "Aanmelden"):
        assert texts.keyword(word) == "start", word
    for sentence in ("stop met bellen aub", "please stop", "start mijn abonnement"):
        assert texts.keyword(sentence) is None


async def test_a_yes_in_a_conversation_is_an_answer_not_a_consent(phone: tuple[Phone, FakeApi]) -> None:
    ph, _ = phone
    async with ph.ctx.db.transaction() as session:  # type: ignore[attr-defined]
        await session.execute(update(Customer).values(consent_phone=False))
    await routing.set_status(ph.ctx, 1, "available")  # type: ignore[arg-type]
    await ph.text("Kunt u mij morgen bellen?")
    await ph.text("Yes!")
    [conversation] = await sms_conversations(ph)
    assert [author for author, _, _ in await lines(ph, conversation.id)] == ["customer", "customer"]
    async with ph.ctx.db.reading() as session:  # type: ignore[attr-defined]
        customer = await session.scalar(select(Customer).where(Customer.name == "Jan Jansen"))
    assert customer is not None and customer.consent_phone is False


async def test_a_status_before_the_sends_answer_is_kept_and_a_stop_before_sending_stops_the_reply(
        phone: tuple[Phone, FakeApi]) -> None:
    ph, _ = phone
    ctx = ph.ctx
    await routing.set_status(ctx, 1, "available")  # type: ignore[arg-type]
    await ph.text("Waar blijft mijn bestelling?")
    [conversation] = await sms_conversations(ph)
    await offers.accept(ctx, 1, conversation.id)  # type: ignore[arg-type]
    first = await texts.from_agent(ctx, 1, conversation.id, new_sid("cl"), "Vandaag nog")  # type: ignore[arg-type]
    [out] = await texts.claim(ctx, first)  # type: ignore[arg-type]
    early = new_sid("SM")
    assert (await ph.delivery(early, "delivered")).status_code == 204  # Twilio is quicker than its answer
    await texts.sent(ctx, out.message_id, early, "queued")  # type: ignore[arg-type]
    assert (await lines(ph, conversation.id))[-1][2] == "delivered"
    second = await texts.from_agent(ctx, 1, conversation.id, new_sid("cl"), "Of morgen")  # type: ignore[arg-type]
    await ph.text("STOP")
    assert await texts.claim(ctx, second) == []  # type: ignore[arg-type]
    assert ("agent", "Of morgen", "failed") in await lines(ph, conversation.id)


async def test_twilio_rate_limits_and_outages_are_tried_again(phone: tuple[Phone, FakeApi]) -> None:
    from integrations.twilio_webhooks import ApiError

    assert ApiError("x", status=429, code=20429).passing and ApiError("x", status=503, code=20503).passing
    assert ApiError("x", status=0).passing and not ApiError("x", status=400, code=21610).passing


async def test_an_available_operator_gets_queued_texts_up_to_the_chat_capacity(phone: tuple[Phone, FakeApi]) -> None:
    ph, _ = phone
    for number in ("+31611111111", "+31622222222", "+31633333333", "+31644444444"):
        await ph.text("Hallo", sender=number)
    await routing.set_status(ph.ctx, 1, "available")  # type: ignore[arg-type]
    states = [c.state for c in await sms_conversations(ph)]
    assert states.count(State.OFFERED) == 3 and states.count(State.QUEUED) == 1
