"""The lifecycle: every move checked and recorded; wrap-up and presence over time."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from console import conversations, lifecycle, offers, presence, routing, wrapup
from console.errors import Conflict, InvalidInput
from console.models import (
    Agent,
    AgentStatus,
    Channel,
    Conversation,
    ConversationEvent,
    Disposition,
    LiveSocket,
    Offer,
    OfferState,
    Queue,
    State,
    utcnow,
)
from console.ports import Context
from tests.helpers import add_agent


async def handled_call(ctx: Context, call_id: str = "c1") -> tuple[int, int]:
    anna = await add_agent(ctx.db, f"anna-{call_id}@x.nl", "Anna", extension=f"2{call_id}")
    await routing.set_status(ctx, anna, "available")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id=call_id, from_address="0612345678",
                                         to_address="0201234567")
    await offers.accept(ctx, anna, arrival.conversation_id)
    await conversations.hang_up(ctx, Channel.CALL, call_id, "normalClearing")
    return anna, arrival.conversation_id


async def test_every_transition_is_stored_with_its_time(ctx: Context) -> None:
    anna, conversation_id = await handled_call(ctx)
    await wrapup.finish(ctx, anna, conversation_id, "resolved")
    async with ctx.db.transaction() as session:
        events = (await session.execute(
            select(ConversationEvent.from_state, ConversationEvent.to_state, ConversationEvent.at)
            .where(ConversationEvent.conversation_id == conversation_id).order_by(ConversationEvent.id))).all()
        conversation = await session.get(Conversation, conversation_id)
    assert [(f, t) for f, t, _ in events] == [
        (None, State.QUEUED), (State.QUEUED, State.OFFERED), (State.OFFERED, State.ACTIVE),
        (State.ACTIVE, State.WRAP_UP), (State.WRAP_UP, State.CLOSED)]
    times = [at for _, _, at in events]
    assert times == sorted(times)
    assert conversation is not None
    assert conversation.offered_at and conversation.answered_at and conversation.wrap_up_at and conversation.closed_at


def test_invalid_transitions_are_refused_with_both_states_named() -> None:
    conversation = Conversation(id=1, channel=Channel.CALL, external_id="x", state=State.CLOSED)

    class NoSession:
        def add(self, _: object) -> None:
            raise AssertionError("nothing is recorded for a refused move")

    with pytest.raises(Conflict, match="from closed to active"):
        lifecycle.move(conversation, State.ACTIVE, NoSession())  # type: ignore[arg-type]
    assert conversation.state is State.CLOSED
    assert not lifecycle.can_move(State.QUEUED, State.WRAP_UP)
    assert not lifecycle.can_move(State.ABANDONED, State.QUEUED)


async def test_a_disposition_must_come_from_the_queues_list(ctx: Context) -> None:
    async with ctx.db.transaction() as session:
        queue = Queue(name="sales", wrap_up_seconds=30)
        session.add(queue)
        await session.flush()
        session.add_all([Disposition(queue_id=queue.id, code="sale"), Disposition(queue_id=queue.id, code="no sale")])
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    await routing.set_status(ctx, anna, "available")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id="q", from_address="0612345678",
                                         to_address="0201234567", queue="sales")
    await offers.accept(ctx, anna, arrival.conversation_id)
    ended = await conversations.hang_up(ctx, Channel.CALL, "q")
    assert ended.wrap_up_deadline is not None
    assert 25 < (ended.wrap_up_deadline - utcnow()).total_seconds() <= 30
    with pytest.raises(InvalidInput, match="sale, no sale"):
        await wrapup.finish(ctx, anna, arrival.conversation_id, "resolved")
    other = await add_agent(ctx.db, "other@x.nl", "Other")
    with pytest.raises(Conflict):
        await wrapup.finish(ctx, other, arrival.conversation_id, "sale")
    await wrapup.finish(ctx, anna, arrival.conversation_id, "sale", "Two licences")
    with pytest.raises(Conflict, match="not in wrap-up"):
        await wrapup.finish(ctx, anna, arrival.conversation_id, "sale")


async def test_a_wrap_up_that_runs_out_records_the_timeout_code(ctx: Context) -> None:
    anna, conversation_id = await handled_call(ctx)
    async with ctx.db.transaction() as session:
        await session.execute(update(Conversation).values(wrap_up_deadline=utcnow() - timedelta(seconds=1)))
    assert await wrapup.sweep(ctx) == 1
    async with ctx.db.transaction() as session:
        conversation = await session.get(Conversation, conversation_id)
        agent = await session.get(Agent, anna)
    assert conversation is not None and conversation.state is State.CLOSED
    assert conversation.disposition == wrapup.TIMEOUT_CODE
    assert agent is not None and agent.status is AgentStatus.AVAILABLE


async def test_time_in_each_state_is_recorded(ctx: Context) -> None:
    anna, conversation_id = await handled_call(ctx)
    await wrapup.finish(ctx, anna, conversation_id, "resolved")
    await routing.set_status(ctx, anna, "away", "Lunch")
    async with ctx.db.transaction() as session:
        totals = await lifecycle.time_in_states(session, anna)
        agent = await session.get(Agent, anna)
    assert set(totals) == {AgentStatus.AVAILABLE, AgentStatus.BUSY, AgentStatus.WRAP_UP, AgentStatus.AWAY}
    assert agent is not None and agent.away_reason == "Lunch"


async def test_away_needs_a_reason_from_the_list(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    with pytest.raises(InvalidInput, match="Break, Lunch"):
        await routing.set_status(ctx, anna, "away", "Napping")


async def test_an_agent_without_a_socket_for_the_grace_period_goes_offline(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    anna_socket = await presence.opened(ctx, anna)
    await presence.opened(ctx, bram)
    await routing.set_status(ctx, anna, "available")
    await routing.set_status(ctx, bram, "available")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id="c", from_address="0612345678",
                                         to_address="0201234567")
    assert arrival.agent_id == anna
    await presence.closed(ctx, anna_socket)
    assert await presence.sweep(ctx, timedelta(seconds=30)) == 0, "within the grace period nothing happens"
    async with ctx.db.transaction() as session:
        past = utcnow() - timedelta(seconds=31)
        await session.execute(update(LiveSocket).where(LiveSocket.agent_id == anna).values(seen_at=past))
        await session.execute(update(Agent).where(Agent.id == anna).values(status_since=past))
    assert await presence.sweep(ctx, timedelta(seconds=30)) == 1
    async with ctx.db.transaction() as session:
        gone = await session.get(Agent, anna)
        still = await session.get(Agent, bram)
        moved = await session.scalar(select(Offer.agent_id).where(
            Offer.conversation_id == arrival.conversation_id, Offer.state == OfferState.PENDING))
    assert gone is not None and gone.status is AgentStatus.OFFLINE
    assert still is not None and still.status is AgentStatus.AVAILABLE
    assert moved == bram, "the offer went back to the queue and on to Bram"
