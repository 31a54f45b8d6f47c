"""The Asterisk connector against a scripted Asterisk: what the console makes of its calls.

Each test runs on SQLite and PostgreSQL (the `ctx` fixture). The scripted peer plays transcripts
(transcripts/*.txt); the tests poll the database until it shows what Asterisk reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from console import config, conversations, routing
from console.errors import Conflict, NotFound
from console.models import Agent, AgentStatus, Channel, Conversation, Offer, OfferState, State
from console.offers import MISSED_REASON
from console.ports import Context
from integrations.telephony.asterisk import AsteriskConnector, channel_extension, interface_extension
from tests.helpers import add_agent
from tests.integrations.telephony.amipeer import AmiPeer, load, until


@dataclass
class Floor:
    anna: int
    bob: int
    carla: int


@pytest.fixture
async def floor(ctx: Context) -> Floor:
    """Queue "support" and three agents: Anna (201), Bob (202), Carla (203), all available."""
    async with ctx.db.transaction() as session:
        await config.configure_queue(session, "support", config.QueueSettings())
    ids = Floor(anna=await add_agent(ctx.db, "anna@example.nl", "Anna de Vries", extension="201"),
                bob=await add_agent(ctx.db, "bob@example.nl", "Bob Jansen", extension="202"),
                carla=await add_agent(ctx.db, "carla@example.nl", "Carla Smit", extension="203"))
    for agent_id in (ids.anna, ids.bob, ids.carla):
        await routing.set_status(ctx, agent_id, "available")
    return ids


@asynccontextmanager
async def following(ctx: Context, peer: AmiPeer, node: str = "node-a", **options: object
                    ) -> AsyncIterator[AsteriskConnector]:
    """A connector following the peer, connected and in step once this yields; stopped after."""
    settings: dict[str, object] = {"ping_seconds": 0.2, "silence_seconds": 3.0, "backoff": (0.02, 0.1),
                                   "use_lease": False, "resync_seconds": None, **options}
    connector = AsteriskConnector(ctx, peer.url(), node, **settings)  # type: ignore[arg-type]
    task = asyncio.create_task(connector.run())
    try:
        await until(lambda: connector.state.state in ("connected", "standby"), what="the connector to connect")
        yield connector
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def call(ctx: Context, linkedid: str) -> Conversation | None:
    async with ctx.db.reading() as session:
        return await session.scalar(select(Conversation).where(
            Conversation.channel == Channel.CALL, Conversation.external_id == f"asterisk:{linkedid}"))


async def offers(ctx: Context, linkedid: str) -> dict[int, OfferState]:
    """The offers of a call: agent -> state of their latest offer."""
    async with ctx.db.reading() as session:
        rows = await session.execute(
            select(Offer.agent_id, Offer.state).join(Conversation, Conversation.id == Offer.conversation_id)
            .where(Conversation.external_id == f"asterisk:{linkedid}").order_by(Offer.id))
        return dict(rows.all())


def in_state(ctx: Context, linkedid: str, state: State, agent: int | None = -1) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        found = await call(ctx, linkedid)
        return found is not None and found.state is state and (agent == -1 or found.agent_id == agent)
    return check


async def agent(ctx: Context, agent_id: int) -> Agent:
    async with ctx.db.reading() as session:
        found = await session.get(Agent, agent_id)
        assert found is not None
        return found


# What CoreShowChannels and QueueStatus list while the caller of queue_call.txt waits.
WAITING_101 = [
    {"Event": "CoreShowChannel", "Channel": "PJSIP/kpn-trunk-0000002a", "ChannelState": "6", "ChannelStateDesc": "Up",
     "CallerIDNum": "0612345678", "CallerIDName": "<unknown>", "Context": "from-trunk", "Exten": "0208084400",
     "Uniqueid": "1718010000.101", "Linkedid": "1718010000.101", "Application": "Queue",
     "ApplicationData": "support", "Duration": "00:00:09", "BridgeId": ""},
    {"Event": "QueueEntry", "Queue": "support", "Position": "1", "Channel": "PJSIP/kpn-trunk-0000002a",
     "Uniqueid": "1718010000.101", "CallerIDNum": "0612345678", "CallerIDName": "<unknown>", "Wait": "9",
     "Priority": "0"},
]


def test_extensions_are_read_from_interfaces_and_channel_names() -> None:
    assert interface_extension("PJSIP/201") == "201"
    assert interface_extension("SIP/201") == "201"
    assert interface_extension("Local/201@from-queue/n") == "201"
    assert interface_extension("IAX2/201") == "201"
    assert interface_extension("Queue/support") is None
    assert channel_extension("PJSIP/201-0000002b") == "201"
    assert channel_extension("IAX2/201-12345") == "201"
    assert channel_extension("Local/201@from-queue-00000003;1") == "201"
    assert channel_extension("PJSIP/kpn-trunk-0000002a") == "kpn-trunk"
    assert channel_extension("Message/ast_msg_queue") is None


async def test_a_queue_call_rings_is_answered_and_ends_in_wrap_up(ctx: Context, floor: Floor,
                                                                  peer: AmiPeer) -> None:
    async with following(ctx, peer) as connector:
        await peer.play("queue_call", "join")
        await until(in_state(ctx, "1718010000.101", State.QUEUED), what="the caller waiting")
        waiting = await call(ctx, "1718010000.101")
        assert waiting is not None and not waiting.routed_by_console
        assert (waiting.from_address, waiting.to_address) == ("0612345678", "0208084400")
        assert await offers(ctx, "1718010000.101") == {}  # Asterisk picks whom it rings, not the console

        await peer.play("queue_call", "ring")
        await until(in_state(ctx, "1718010000.101", State.OFFERED, floor.anna), what="Anna's phone ringing")
        assert await offers(ctx, "1718010000.101") == {floor.anna: OfferState.PENDING}

        await peer.play("queue_call", "connect")
        await until(in_state(ctx, "1718010000.101", State.ACTIVE, floor.anna), what="Anna answering")
        assert (await agent(ctx, floor.anna)).status is AgentStatus.BUSY

        await peer.play("queue_call", "hangup")
        await until(in_state(ctx, "1718010000.101", State.WRAP_UP, floor.anna), what="wrap-up")
        ended = await call(ctx, "1718010000.101")
        assert ended is not None and ended.hangup_cause == "Normal Clearing"
        await until(lambda: connector.state.events >= 12, what="every event taken")
    assert connector.state.failures == 0 and connector.state.state == "off"


async def test_a_caller_who_hangs_up_while_it_rings_is_abandoned(ctx: Context, floor: Floor, peer: AmiPeer) -> None:
    async with following(ctx, peer):
        await peer.play("abandon", "join", "ring")
        await until(in_state(ctx, "1718010100.201", State.OFFERED, floor.anna), what="ringing")
        await peer.play("abandon", "abandon")
        await until(in_state(ctx, "1718010100.201", State.ABANDONED), what="abandoned")
    assert await offers(ctx, "1718010100.201") == {floor.anna: OfferState.WITHDRAWN}
    assert (await agent(ctx, floor.anna)).status is AgentStatus.AVAILABLE


async def test_a_ring_no_answer_counts_as_missed_and_the_queue_rings_the_next(ctx: Context, floor: Floor,
                                                                                peer: AmiPeer) -> None:
    async with following(ctx, peer):
        await peer.play("ring_no_answer", "join", "ring_anna")
        await until(in_state(ctx, "1718010200.301", State.OFFERED, floor.anna), what="Anna ringing")
        await peer.play("ring_no_answer", "anna_rang_out")
        await until(in_state(ctx, "1718010200.301", State.QUEUED, None), what="waiting again")
        assert await offers(ctx, "1718010200.301") == {floor.anna: OfferState.EXPIRED}
        assert (await agent(ctx, floor.anna)).missed_offers == 1  # once, though DialEnd said NOANSWER too

        # Waiting again, the call is Asterisk's to route: the console's own routing leaves it alone.
        assert await routing.sweep_queue(ctx) == 0
        await routing.set_status(ctx, floor.carla, "away")
        await routing.set_status(ctx, floor.carla, "available")
        assert await offers(ctx, "1718010200.301") == {floor.anna: OfferState.EXPIRED}

        await peer.play("ring_no_answer", "ring_bob")
        await until(in_state(ctx, "1718010200.301", State.OFFERED, floor.bob), what="Bob ringing (Local channel)")
        await peer.play("ring_no_answer", "bob_answers", "hangup")
        await until(in_state(ctx, "1718010200.301", State.WRAP_UP, floor.bob), what="Bob's wrap-up")


async def test_missing_and_out_of_order_events_are_tolerated(ctx: Context, floor: Floor, peer: AmiPeer,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="integrations.telephony.asterisk")
    async with following(ctx, peer) as connector:
        # The answer is the first the console hears of the call: it is stored and answered.
        await peer.play("out_of_order", "connect_first")
        await until(in_state(ctx, "1718010300.401", State.ACTIVE, floor.carla), what="answered by Carla")
        answered = await call(ctx, "1718010300.401")
        assert answered is not None and answered.from_address == "0611122233" and not answered.routed_by_console
        # A ring and a join after the answer change nothing.
        await peer.play("out_of_order", "late", "hangup", "after_hangup")
        await until(in_state(ctx, "1718010300.401", State.WRAP_UP, floor.carla), what="wrap-up")
        # A ring without a join: stored, and the member found by name (the interface is a device).
        await peer.play("out_of_order", "ring_without_join")
        await until(in_state(ctx, "1718010300.411", State.OFFERED, floor.anna), what="ringing Anna by name")
        # A member the console does not know: the caller waits, nobody is offered it.
        await peer.play("out_of_order", "unknown_member")
        await until(in_state(ctx, "1718010300.421", State.QUEUED), what="a waiting call")
        assert await offers(ctx, "1718010300.421") == {}
        await until(lambda: "299" in caplog.text, what="the unknown member logged")
        assert connector.state.failures == 0
    assert "0611122233" not in caplog.text and "0644455566" not in caplog.text  # no caller numbers in the log
    async with ctx.db.reading() as session:
        count = len(list(await session.scalars(select(Conversation.id))))
    assert count == 3


async def test_a_direct_dial_to_an_extension_rings_and_is_answered(ctx: Context, floor: Floor, peer: AmiPeer) -> None:
    async with following(ctx, peer) as connector:
        await peer.play("direct_dial", "dial")
        await until(in_state(ctx, "1718010400.501", State.OFFERED, floor.anna), what="Anna ringing")
        await peer.play("direct_dial", "answer")
        await until(in_state(ctx, "1718010400.501", State.ACTIVE, floor.anna), what="answered")
        await peer.play("direct_dial", "hangup", "colleague")
        await until(in_state(ctx, "1718010400.501", State.WRAP_UP, floor.anna), what="wrap-up")
        await peer.send([{"Event": "Hangup", "Channel": "PJSIP/202-00000063", "Uniqueid": "1718010400.511",
                          "Linkedid": "1718010400.511", "Cause": "16", "Cause-txt": "Normal Clearing"}])
        await until(lambda: connector.state.events >= 7, what="every event taken")
        assert connector.state.failures == 0
    assert await call(ctx, "1718010400.511") is None  # a colleague's call is no contact


async def test_after_asterisk_restarts_the_console_resyncs_to_what_it_has(ctx: Context, floor: Floor,
                                                                          peer: AmiPeer) -> None:
    async with following(ctx, peer) as connector:
        await peer.play("restart", "before")
        await until(in_state(ctx, "1718010500.601", State.OFFERED, floor.anna), what="the first call ringing")
        await until(in_state(ctx, "1718010500.611", State.ACTIVE, floor.bob), what="the second call answered")

        await peer.stop()  # Asterisk restarts; meanwhile calls end and others come
        await until(lambda: connector.state.state == "failing", what="the connection lost")
        peer.snapshot(load("restart")["after"])
        await peer.start()
        await until(lambda: connector.state.state == "connected", what="reconnected")

        await until(in_state(ctx, "1718010500.601", State.ABANDONED), what="the call that ended meanwhile")
        assert await offers(ctx, "1718010500.601") == {floor.anna: OfferState.WITHDRAWN}
        assert await in_state(ctx, "1718010500.611", State.ACTIVE, floor.bob)()
        assert await in_state(ctx, "1718010500.621", State.QUEUED, None)()
        assert await in_state(ctx, "1718010500.631", State.ACTIVE, floor.anna)()
        assert await in_state(ctx, "1718010500.641", State.OFFERED, floor.carla)()
        waiting = await call(ctx, "1718010500.621")
        assert waiting is not None and not waiting.routed_by_console and waiting.from_address == "0612340621"
        assert await call(ctx, "1718010500.651") is None  # the reception's internal call

        # It follows the events again, and a resync changes nothing that is in step.
        await peer.play("restart", "bob_hangs_up")
        await until(in_state(ctx, "1718010500.611", State.WRAP_UP, floor.bob), what="Bob's wrap-up")
        peer.snapshot([m for m in load("restart")["after"] if "Uniqueid" not in m
                       or not m["Uniqueid"].startswith("1718010500.61")])
        await peer.stop()
        await peer.start()
        await until(lambda: peer.logins >= 3 and connector.state.state == "connected", what="in step again")
        assert await in_state(ctx, "1718010500.641", State.OFFERED, floor.carla)()
        assert await offers(ctx, "1718010500.641") == {floor.carla: OfferState.PENDING}


async def test_a_resync_ends_a_ring_whose_end_was_missed(ctx: Context, floor: Floor, peer: AmiPeer) -> None:
    async with following(ctx, peer, resync_seconds=0.3):
        await peer.play("abandon", "join", "ring")
        await until(in_state(ctx, "1718010100.201", State.OFFERED, floor.anna), what="ringing")
        # The ring ended but its event was lost: Asterisk lists the caller waiting, no phone ringing.
        peer.snapshot(
            [{"Event": "CoreShowChannel", "Channel": "PJSIP/kpn-trunk-00000031", "ChannelState": "6",
              "ChannelStateDesc": "Up", "CallerIDNum": "+31201234567", "Uniqueid": "1718010100.201",
              "Linkedid": "1718010100.201", "Application": "Queue", "ApplicationData": "support", "BridgeId": ""},
             {"Event": "QueueEntry", "Queue": "support", "Position": "1", "Channel": "PJSIP/kpn-trunk-00000031",
              "Uniqueid": "1718010100.201", "CallerIDNum": "+31201234567", "Wait": "40"}])
        await until(in_state(ctx, "1718010100.201", State.QUEUED, None), what="the periodic resync")
    assert await offers(ctx, "1718010100.201") == {floor.anna: OfferState.WITHDRAWN}


async def test_one_node_follows_asterisk_and_another_stands_by_until_it_stops(ctx: Context, floor: Floor,
                                                                               peer: AmiPeer) -> None:
    def node(name: str) -> AsteriskConnector:
        return AsteriskConnector(ctx, peer.url(), name, ping_seconds=0.2, silence_seconds=3.0, backoff=(0.02, 0.1),
                                 lease_seconds=0.9, resync_seconds=None)

    first, second = node("node-a"), node("node-b")
    first_task = asyncio.create_task(first.run())
    second_task: asyncio.Task[None] | None = None
    try:
        await until(lambda: first.state.state == "connected", what="the first node following")
        second_task = asyncio.create_task(second.run())
        await until(lambda: second.state.state == "standby", what="the second node standing by")
        await peer.play("queue_call", "join")
        await until(in_state(ctx, "1718010000.101", State.QUEUED), what="a call through the first node")
        assert peer.logins == 1 and first.holding and not second.holding
        peer.snapshot(WAITING_101)
        # The first node stops and gives the lease up: the second takes over (and resyncs).
        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)
        assert first.state.state == "off"
        await until(lambda: second.state.state == "connected", what="the second node taking over")
        assert peer.logins == 2
        await peer.play("queue_call", "ring")
        await until(in_state(ctx, "1718010000.101", State.OFFERED, floor.anna), what="followed by the second")
    finally:
        for task in (first_task, second_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


# -- the console's side: services for calls a phone system routes -------------------------------------

async def test_rings_the_phone_system_names_come_and_go_and_with_nobody_left_the_call_waits(
        ctx: Context, floor: Floor) -> None:
    external = "asterisk:ringall-1"
    rung = await conversations.ring(ctx, Channel.CALL, external, ["201", ("202", "Bob Jansen")],
                                    from_address="0612345678", to_address="0208084400", queue="support")
    assert rung.state is State.OFFERED and rung.agent_id is None and not rung.routed_by_console
    assert await offers(ctx, "ringall-1") == {floor.anna: OfferState.PENDING, floor.bob: OfferState.PENDING}
    await conversations.ring(ctx, Channel.CALL, external, ["202"])  # ringing already: nothing new
    await conversations.ring(ctx, Channel.CALL, external, ["202", "203"], exclusive=True)
    assert await offers(ctx, "ringall-1") == {floor.anna: OfferState.WITHDRAWN, floor.bob: OfferState.PENDING,
                                              floor.carla: OfferState.PENDING}
    await conversations.stop_ringing(ctx, Channel.CALL, external, "203", missed=False)  # busy
    assert await in_state(ctx, "ringall-1", State.OFFERED, floor.bob)()
    await conversations.ring(ctx, Channel.CALL, external, [], exclusive=True)
    assert await in_state(ctx, "ringall-1", State.QUEUED, None)()
    assert set((await offers(ctx, "ringall-1")).values()) == {OfferState.WITHDRAWN}
    assert (await agent(ctx, floor.carla)).missed_offers == 0  # busy is no missed offer
    calls = await conversations.open_calls(ctx, "asterisk:")
    assert calls == [(external, State.QUEUED)]
    assert await conversations.open_calls(ctx, "asterisk_") == []  # the prefix is no pattern


async def test_two_rings_without_answer_in_a_row_set_the_agent_away_as_console_offers_do(
        ctx: Context, floor: Floor) -> None:
    for n in (1, 2):
        external = f"asterisk:missed-{n}"
        await conversations.arrive(ctx, channel=Channel.CALL, external_id=external, from_address="0612345678",
                                   to_address="0208084400", queue="support", routed_by_phone_system=True)
        await conversations.ring(ctx, Channel.CALL, external, [("201", "Anna de Vries")])
        await conversations.stop_ringing(ctx, Channel.CALL, external, ("201", "Anna de Vries"), missed=True)
        assert await in_state(ctx, f"missed-{n}", State.QUEUED, None)()
    anna = await agent(ctx, floor.anna)
    assert anna.status is AgentStatus.AWAY and anna.away_reason == MISSED_REASON


async def test_a_ring_of_an_answered_or_ended_call_is_a_conflict(ctx: Context, floor: Floor) -> None:
    external = "asterisk:done-1"
    await conversations.ring(ctx, Channel.CALL, external, ["201"], from_address="0612345678", to_address="x")
    await conversations.answer(ctx, Channel.CALL, external, ["201"])
    with pytest.raises(Conflict):
        await conversations.ring(ctx, Channel.CALL, external, ["202"])
    await conversations.hang_up(ctx, Channel.CALL, external, "Normal Clearing")
    with pytest.raises(Conflict):
        await conversations.ring(ctx, Channel.CALL, external, ["202"])
    with pytest.raises(NotFound):
        await conversations.stop_ringing(ctx, Channel.CALL, "asterisk:never", "201", missed=True)


async def test_a_transfer_out_of_the_queue_call_is_not_its_end(ctx: Context, floor: Floor, peer: AmiPeer) -> None:
    async with following(ctx, peer) as connector:
        await peer.play("queue_call", "join", "ring", "connect")
        await until(in_state(ctx, "1718010000.101", State.ACTIVE, floor.anna), what="Anna answering")
        complete = next(m for m in load("queue_call")["hangup"] if m.get("Event") == "AgentComplete")
        taken = connector.state.events
        await peer.send([{**complete, "Reason": "transfer"}])
        await until(lambda: connector.state.events > taken, what="the AgentComplete taken")
        assert (await call(ctx, "1718010000.101")).state is State.ACTIVE  # type: ignore[union-attr]
