"""The demo's simulated Twilio, against a real server: its calls and texts go through the console's
Twilio webhooks, signed for the public URL, and the console's REST calls reach its fake API."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from console import config, texts
from console.db import Database
from console.models import Author, Channel, Conversation, Message, State, TextMessage
from integrations import twilio_simulator
from integrations.twilio_simulator import SimulatedTwilio, Timing, run_texters, run_twilio_callers, serve_api
from tests.conftest import LiveServer, free_port, make_settings
from tests.helpers import add_agent, log_in
from tests.integrations.fake_twilio import ACCOUNT, PUBLIC, TOKEN

# Holding lasts until the console moves the call (a round of music is longer than the test waits).
FAST = Timing(say=(0.05, 0.1), play=(60.0, 60.0), setup=(0.05, 0.1), answer=(0.2, 0.4), no_answer=0.0,
              talk=(1.5, 2.0), patience=(120.0, 120.0), hang_up_holding=0.0, hang_up_ringing=0.0,
              delivery_gap=(0.1, 0.2), out_of_order=1.0, reply_pause=(0.1, 0.2), afterthought=0.0, retry=0.2)
CUSTOMER = "+31612345678"


async def until(check: Callable[[], Awaitable[Any]], what: str, deadline: float = 15.0) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {deadline} s")


async def one_agent() -> int:
    return 1


async def test_a_simulated_call_and_text_arrive_through_the_twilio_webhooks(database_url: str, tmp_path: Path
                                                                            ) -> None:
    db = Database(database_url)
    await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
    bram = await add_agent(db, "bram@x.nl", "Bram Bakker", extension="202")
    async with db.transaction() as session:
        await config.configure_queue(session, "service", config.QueueSettings())
    api_port = free_port()
    # The console is told it is reached at PUBLIC (as behind a proxy): the simulator signs for
    # that and sends to the server's own address.
    settings = make_settings(database_url, tmp_path, twilio_auth_token=TOKEN, twilio_account_sid=ACCOUNT,
                             twilio_public_url=PUBLIC, twilio_api_url=f"http://127.0.0.1:{api_port}",
                             presence_grace=300.0)

    async def conversation(channel: Channel) -> Conversation | None:
        async with db.reading() as session:
            return await session.scalar(select(Conversation).where(Conversation.channel == channel)
                                        .order_by(Conversation.id.desc()).limit(1))

    with LiveServer(settings) as live:
        twilio = SimulatedTwilio(ACCOUNT, TOKEN, live.url, PUBLIC, timing=FAST, rng=random.Random(5))
        api = await serve_api(twilio, "127.0.0.1", api_port)
        jobs: list[asyncio.Task[None]] = []
        async with httpx.AsyncClient(base_url=live.url) as anna_page, httpx.AsyncClient(base_url=live.url) as bram_page:
            try:
                anna_headers = {"X-CSRF-Token": await log_in(anna_page, "anna@x.nl")}
                bram_headers = {"X-CSRF-Token": await log_in(bram_page, "bram@x.nl")}
                # A call while nobody is available: the caller hears the message and holds.
                jobs.append(asyncio.create_task(run_twilio_callers(
                    twilio, rate=0, count=1, numbers=[CUSTOMER], known_share=1.0, staffing=one_agent)))
                call = await until(lambda: conversation(Channel.CALL), "the call arrived")
                assert call.external_id.startswith("CA") and call.from_address == CUSTOMER
                assert call.state is State.QUEUED
                await until(lambda: _true(bool(twilio.calls)), "the caller holds")
                # Anna becomes available: the console moves the call to her through the REST API,
                # her softphone answers (active), they talk and the call ends (wrap-up).
                assert (await anna_page.post("/agent/status", data={"status": "available"},
                                             headers=anna_headers)).status_code == 204

                async def state_of(state: State) -> Conversation | None:
                    found = await conversation(Channel.CALL)
                    return found if found is not None and found.state is state else None

                active = await until(lambda: state_of(State.ACTIVE), "the call was answered")
                assert active.agent_id == 1
                ended = await until(lambda: state_of(State.WRAP_UP), "the call ended")
                assert ended.answered_at is not None
                await until(lambda: _true(not twilio.calls), "the caller's leg ended")
                moves = [path for path, form in twilio.requests if path.endswith(f"/Calls/{call.external_id}.json")]
                assert moves, "the console moved the holding call through the API"

                # A text, while Bram is available: it is offered to him, he answers, the reply is
                # delivered (delivered came before sent, which changes nothing) and the texter
                # writes their next line.
                assert (await bram_page.post("/agent/status", data={"status": "available"},
                                             headers=bram_headers)).status_code == 204
                jobs.append(asyncio.create_task(run_texters(
                    twilio, rate=0, count=1, numbers=[CUSTOMER], known_share=1.0, whatsapp_share=0.0,
                    staffing=one_agent)))

                async def offered_text() -> Conversation | None:
                    found = await conversation(Channel.SMS)
                    return found if found is not None and found.state is State.OFFERED else None

                text = await until(offered_text, "the text arrived")
                assert text.from_address == CUSTOMER and text.to_address == twilio_simulator.SMS_NUMBER
                assert text.agent_id == bram
                accepted = await bram_page.post(f"/conversations/{text.id}/accept", headers=bram_headers)
                assert accepted.status_code == 204, accepted.text
                sent = await bram_page.post(f"/conversations/{text.id}/messages", headers=bram_headers,
                                            data={"client_id": "reply-1", "text": "Ik kijk het even na."})
                assert sent.status_code in (200, 204), sent.text

                async def delivered() -> TextMessage | None:
                    async with db.reading() as session:
                        return await session.scalar(select(TextMessage).where(
                            TextMessage.direction == "out", TextMessage.status == "delivered"))

                reply = await until(delivered, "the reply was delivered")
                assert reply.sid is not None and reply.sid.startswith("SM")
                await until(lambda: _true(not twilio.tasks), "the delivery callbacks were sent")
                async with db.reading() as session:
                    assert (await session.get(TextMessage, reply.message_id)).status == "delivered"  # type: ignore[union-attr]

                async def next_line() -> int:
                    async with db.reading() as session:
                        return len(list(await session.scalars(select(Message.id).where(
                            Message.conversation_id == text.id, Message.author == Author.CUSTOMER))))

                await until(lambda: _more_than(next_line, 1), "the texter answered the reply")
                [sms] = [form for path, form in twilio.requests if path.endswith("/Messages.json")]
                assert sms["To"] == CUSTOMER and sms["From"] == twilio_simulator.SMS_NUMBER
                assert sms["StatusCallback"] == PUBLIC + "/integrations/twilio/messaging/status"
            finally:
                for job in jobs:
                    job.cancel()
                await asyncio.gather(*jobs, return_exceptions=True)
                await api.close()
                await twilio.close()
    await db.close()


async def _true(value: bool) -> bool:
    return value


async def _more_than(count: Callable[[], Awaitable[int]], least: int) -> bool:
    return await count() > least


async def test_the_fake_api_wants_the_accounts_credentials_and_a_live_call() -> None:
    twilio = SimulatedTwilio(ACCOUNT, TOKEN, "http://console.test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=twilio.api_app()),
                                 base_url="http://api.test") as client:
        messages = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        for auth in ((ACCOUNT, "wrong token"), ("AC" + "b" * 32, TOKEN)):
            refused = await client.post(messages, data={"To": CUSTOMER, "From": "+3120", "Body": "x"}, auth=auth)
            assert refused.status_code == 401 and refused.json()["code"] == 20003
        assert (await client.post(messages, data={"To": CUSTOMER})).status_code == 401
        empty = await client.post(messages, data={"To": CUSTOMER, "From": "+3120"}, auth=(ACCOUNT, TOKEN))
        assert empty.status_code == 400 and empty.json()["code"] == 21602
        taken = await client.post(messages, data={"To": CUSTOMER, "From": "+3120", "Body": "Hallo"},
                                  auth=(ACCOUNT, TOKEN))
        assert taken.status_code == 201 and taken.json()["status"] == "queued"
        assert taken.json()["sid"].startswith("SM") and len(taken.json()["sid"]) == 34
        unknown = await client.post(f"/2010-04-01/Accounts/{ACCOUNT}/Calls/CA{'0' * 32}.json",
                                    data={"Url": PUBLIC + "/integrations/twilio/voice/wait"}, auth=(ACCOUNT, TOKEN))
        assert unknown.status_code == 404 and unknown.json()["code"] == 20404
    await twilio.close()


def test_no_demo_text_is_an_opt_out_or_opt_in_keyword() -> None:
    lines = [line for scripts in twilio_simulator.TEXTS.values() for script in scripts for line in script]
    lines += [line for extra in twilio_simulator.AFTERTHOUGHTS.values() for line in extra]
    assert all(texts.keyword(line) is None for line in lines)
    assert set(twilio_simulator.TEXTS) == set(twilio_simulator.AFTERTHOUGHTS) == {"nl", "en"}
