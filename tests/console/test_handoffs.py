"""Handoffs: cold and warm, to a colleague or a queue, with the note; declines, cancels and refusals."""

import pytest
from sqlalchemy import select

from console import conversations, handoffs, notes, offers, routing, wrapup
from console.db import Database
from console.errors import Conflict, InvalidInput, NotFound
from console.handoffs import Target
from console.models import (
    Agent,
    AgentStatus,
    Channel,
    Conversation,
    ConversationEvent,
    Handoff,
    HandoffState,
    Queue,
    State,
)
from console.ports import Context, RecordingNotifier
from console.screenpop import agent_view
from tests.helpers import add_agent, add_customer


async def on_a_call(ctx: Context) -> tuple[int, int, int]:
    """Anna handles a call from a known customer; Bram is available. Returns (anna, bram, conversation)."""
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    await add_customer(ctx.db, "Piet Jansen", phones=("0612345678",))
    await routing.set_status(ctx, anna, "available")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id="call-1", from_address="0612345678",
                                         to_address="0201234567")
    assert arrival.agent_id == anna
    await offers.accept(ctx, anna, arrival.conversation_id)
    await routing.set_status(ctx, bram, "available")
    return anna, bram, arrival.conversation_id


async def conversation(ctx: Context, conversation_id: int) -> Conversation:
    async with ctx.db.transaction() as session:
        found = await session.get(Conversation, conversation_id)
        assert found is not None
        return found


async def status_of(ctx: Context, agent_id: int) -> AgentStatus:
    async with ctx.db.transaction() as session:
        found = await session.get(Agent, agent_id)
        assert found is not None
        return found.status


async def test_warm_handoff_waits_for_the_colleague_then_moves_with_its_note(ctx: Context) -> None:
    anna, bram, first = await on_a_call(ctx)
    await notes.add(ctx, anna, "Wants a refund for order 1234", conversation_id=first)
    handoff = await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "Refund approved up to 50 euro")
    assert (await conversation(ctx, first)).state is State.ACTIVE, "Anna keeps it until Bram accepts"
    async with ctx.db.transaction() as session:
        view = await agent_view(session, bram, "NL")
    assert [h.note for h in view.handoffs] == ["Refund approved up to 50 euro"]
    assert view.handoffs[0].pop.picture is not None and view.handoffs[0].pop.picture.customer.name == "Piet Jansen"
    assert [n.body for n in view.handoffs[0].notes] == ["Wants a refund for order 1234"]

    following = await handoffs.accept(ctx, bram, handoff.id)
    first_part, second_part = await conversation(ctx, first), await conversation(ctx, following)
    assert first_part.state is State.WRAP_UP and first_part.agent_id == anna
    assert second_part.state is State.ACTIVE and second_part.agent_id == bram
    assert second_part.parent_id == first and second_part.external_id == "call-1"
    assert second_part.customer_id == first_part.customer_id
    assert await status_of(ctx, anna) is AgentStatus.WRAP_UP
    assert await status_of(ctx, bram) is AgentStatus.BUSY
    async with ctx.db.transaction() as session:
        view = await agent_view(session, bram, "NL")
        history = [e.detail for e in await session.scalars(
            select(ConversationEvent).where(ConversationEvent.conversation_id == first).order_by(ConversationEvent.id))]
    pop = view.pops[0]
    assert pop.conversation.id == following and pop.handoff is not None
    assert pop.handoff.note == "Refund approved up to 50 euro" and pop.handoff.from_agent is not None
    assert pop.handoff.from_agent.name == "Anna"
    assert [n.body for n in pop.notes] == ["Wants a refund for order 1234"]
    assert "warm handoff to Bram" in history and "handed off to Bram" in history

    # The phone system's hangup reaches Bram's part; Anna's wrap-up is her own.
    await conversations.hang_up(ctx, Channel.CALL, "call-1")
    assert (await conversation(ctx, following)).state is State.WRAP_UP
    await wrapup.finish(ctx, anna, first, "escalated")
    assert (await conversation(ctx, first)).disposition == "escalated"


async def test_a_declined_warm_handoff_returns_with_the_reason(ctx: Context) -> None:
    anna, bram, first = await on_a_call(ctx)
    handoff = await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "Needs billing")
    with pytest.raises(InvalidInput):
        await handoffs.decline(ctx, bram, handoff.id, "  ")
    await handoffs.decline(ctx, bram, handoff.id, "I do not do billing")
    assert (await conversation(ctx, first)).agent_id == anna
    async with ctx.db.transaction() as session:
        view = await agent_view(session, anna, "NL")
    assert view.current_handoff is not None and view.current_handoff.state is HandoffState.DECLINED
    assert view.current_handoff.reason == "I do not do billing"
    with pytest.raises(Conflict):
        await handoffs.accept(ctx, bram, handoff.id)


async def test_the_first_agent_can_cancel_a_warm_handoff(ctx: Context) -> None:
    anna, bram, first = await on_a_call(ctx)
    handoff = await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "Please take over")
    with pytest.raises(Conflict):
        await handoffs.cancel(ctx, bram, handoff.id)
    await handoffs.cancel(ctx, anna, handoff.id)
    async with ctx.db.transaction() as session:
        assert (await agent_view(session, bram, "NL")).handoffs == []
    with pytest.raises(Conflict):
        await handoffs.accept(ctx, bram, handoff.id)


async def test_a_hangup_while_waiting_cancels_the_warm_handoff(ctx: Context) -> None:
    anna, bram, first = await on_a_call(ctx)
    handoff = await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "Please take over")
    await conversations.hang_up(ctx, Channel.CALL, "call-1")
    async with ctx.db.transaction() as session:
        record = await session.get(Handoff, handoff.id)
        assert record is not None and record.state is HandoffState.CANCELLED
    with pytest.raises(Conflict):
        await handoffs.accept(ctx, bram, handoff.id)


async def test_cold_handoff_to_a_colleague_moves_it_at_once(ctx: Context) -> None:
    anna, bram, first = await on_a_call(ctx)
    notifier = ctx.notify
    assert isinstance(notifier, RecordingNotifier)
    handoff = await handoffs.start(ctx, anna, first, Target(agent_id=bram), "cold", "Customer wants sales")
    assert handoff.state is HandoffState.ACCEPTED and handoff.next_conversation_id is not None
    assert (await conversation(ctx, handoff.next_conversation_id)).agent_id == bram
    assert (await conversation(ctx, first)).state is State.WRAP_UP
    assert {anna, bram} <= notifier.calls[-1]
    # The phone system asks again where the call should go: to Bram's extension now.
    again = await conversations.arrive(ctx, channel=Channel.CALL, external_id="call-1", from_address="0612345678",
                                       to_address="0201234567")
    assert not again.created and again.conversation_id == handoff.next_conversation_id
    assert again.target_extension == "202"


async def test_cold_handoff_to_a_queue_routes_it_from_there(ctx: Context) -> None:
    anna, bram, first = await on_a_call(ctx)
    async with ctx.db.transaction() as session:
        queue = Queue(name="sales")
        session.add(queue)
        await session.flush()
        queue_id = queue.id
    handoff = await handoffs.start(ctx, anna, first, Target(queue_id=queue_id), "cold", "Wants a quote")
    assert handoff.next_conversation_id is not None
    following = await conversation(ctx, handoff.next_conversation_id)
    assert following.queue_id == queue_id and following.state is State.OFFERED and following.agent_id == bram
    # Bram accepts the offer and sees why it came to him.
    await offers.accept(ctx, bram, following.id)
    async with ctx.db.transaction() as session:
        pop = (await agent_view(session, bram, "NL")).pops[0]
    assert pop.handoff is not None and pop.handoff.note == "Wants a quote"


async def test_handoffs_that_cannot_work_are_refused_and_change_nothing(ctx: Context) -> None:
    anna, bram, first = await on_a_call(ctx)
    carla = await add_agent(ctx.db, "carla@x.nl", "Carla", extension="203")  # offline
    cases = [
        (Target(agent_id=carla), "warm", "note", InvalidInput, "offline"),
        (Target(agent_id=9999), "cold", "note", NotFound, "does not exist"),
        (Target(agent_id=anna), "cold", "note", InvalidInput, "yourself"),
        (Target(agent_id=bram), "cold", "", InvalidInput, "empty"),
        (Target(agent_id=bram), "cold", "x" * 2001, InvalidInput, "longer"),
        (Target(agent_id=bram), "lukewarm", "note", InvalidInput, "cold or warm"),
        (Target(), "cold", "note", InvalidInput, "one colleague or one queue"),
        (Target(queue_id=9999), "cold", "note", NotFound, "queue"),
    ]
    for target, mode, note, error, words in cases:
        with pytest.raises(error, match=words):
            await handoffs.start(ctx, anna, first, target, mode, note)
    await routing.set_status(ctx, bram, "away", "Lunch")
    with pytest.raises(InvalidInput, match="away"):
        await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "note")
    with pytest.raises(Conflict, match="handling"):
        await handoffs.start(ctx, bram, first, Target(agent_id=anna), "warm", "note")
    async with ctx.db.transaction() as session:
        assert list(await session.scalars(select(Handoff))) == []
    assert (await conversation(ctx, first)).state is State.ACTIVE


async def test_a_second_warm_handoff_waits_for_the_first_to_end(ctx: Context) -> None:
    anna, bram, first = await on_a_call(ctx)
    await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "one")
    with pytest.raises(Conflict, match="already waiting"):
        await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "two")


async def test_an_unanswered_warm_handoff_comes_back_after_a_minute(ctx: Context) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from console.models import utcnow

    anna, bram, first = await on_a_call(ctx)
    handoff = await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "Please take over")
    assert await handoffs.sweep(ctx) == 0, "not yet"
    async with ctx.db.transaction() as session:
        await session.execute(update(Handoff).where(Handoff.id == handoff.id)
                              .values(created_at=utcnow() - timedelta(seconds=61)))
    assert await handoffs.sweep(ctx) == 1
    async with ctx.db.transaction() as session:
        view = await agent_view(session, anna, "NL")
    assert view.current_handoff is not None and view.current_handoff.state is HandoffState.DECLINED
    assert view.current_handoff.reason == "no answer within 60 s"
    assert (await conversation(ctx, first)).agent_id == anna


async def waiting_for_locks(db: Database, count: int) -> None:
    """Wait until `count` sessions of this database wait for a row lock (PostgreSQL)."""
    import asyncio
    import time

    from sqlalchemy import text

    deadline = time.monotonic() + 10
    while True:
        async with db.transaction() as session:
            waiting = await session.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"))
        if int(waiting or 0) >= count:
            return
        assert time.monotonic() < deadline, f"{waiting} of {count} sessions wait for a lock"
        await asyncio.sleep(0.05)


async def test_a_hangup_that_waited_for_a_handoff_ends_the_new_part(pg_url: str) -> None:
    import asyncio


    db = Database(pg_url)
    ctx = Context(db=db, notify=RecordingNotifier(), region="NL")
    try:
        anna, bram, first = await on_a_call(ctx)
        async with db.transaction() as blocker:
            await blocker.get(Conversation, first, with_for_update=True)
            handing = asyncio.create_task(handoffs.start(ctx, anna, first, Target(agent_id=bram), "cold", "yours"))
            await waiting_for_locks(db, 1)
            hanging = asyncio.create_task(conversations.hang_up(ctx, Channel.CALL, "call-1"))
            await waiting_for_locks(db, 2)
        handoff = await handing
        await hanging
        assert handoff.next_conversation_id is not None
        assert (await conversation(ctx, handoff.next_conversation_id)).state is State.WRAP_UP, "Bram's part ended"
        assert await status_of(ctx, bram) is AgentStatus.WRAP_UP
    finally:
        await db.close()


async def test_accepting_a_handoff_while_the_caller_hangs_up_does_not_deadlock(pg_url: str) -> None:
    import asyncio


    db = Database(pg_url)
    ctx = Context(db=db, notify=RecordingNotifier(), region="NL")
    try:
        anna, bram, first = await on_a_call(ctx)
        handoff = await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "yours")
        async with db.transaction() as blocker:
            await blocker.get(Conversation, first, with_for_update=True)
            hanging = asyncio.create_task(conversations.hang_up(ctx, Channel.CALL, "call-1"))
            await waiting_for_locks(db, 1)
            accepting = asyncio.create_task(handoffs.accept(ctx, bram, handoff.id))
            await waiting_for_locks(db, 2)
        await hanging
        with pytest.raises(Conflict):
            await accepting
        async with db.transaction() as session:
            record = await session.get(Handoff, handoff.id)
        assert record is not None and record.state is HandoffState.CANCELLED
        assert (await conversation(ctx, first)).state is State.WRAP_UP
        assert await status_of(ctx, bram) is AgentStatus.AVAILABLE
    finally:
        await db.close()


async def test_a_call_is_not_let_go_into_a_queue_where_nobody_is_free(ctx: Context) -> None:
    anna, bram, first = await on_a_call(ctx)
    await routing.set_status(ctx, bram, "away", "Lunch")
    async with ctx.db.transaction() as session:
        queue = Queue(name="sales")
        session.add(queue)
        await session.flush()
        queue_id = queue.id
    with pytest.raises(Conflict, match="Keep the caller"):
        await handoffs.start(ctx, anna, first, Target(queue_id=queue_id), "cold", "Wants a quote")
    assert (await conversation(ctx, first)).state is State.ACTIVE
    async with ctx.db.transaction() as session:
        assert list(await session.scalars(select(Handoff))) == []
        assert await session.scalar(select(Conversation.id).where(Conversation.parent_id == first)) is None


async def test_who_saw_the_customer_is_recorded_when_it_rings_and_when_it_is_handed_over(ctx: Context) -> None:
    from console.models import AuditEvent

    anna, bram, first = await on_a_call(ctx)
    await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "Please take over")
    async with ctx.db.transaction() as session:
        views = [(e.agent_id, e.detail) for e in await session.scalars(
            select(AuditEvent).where(AuditEvent.action == "view").order_by(AuditEvent.id))]
    assert views == [(anna, f"screen-pop of conversation {first}"), (bram, f"handoff of conversation {first}")]


async def test_a_warm_handoff_reserves_the_colleague_until_they_answer(ctx: Context) -> None:
    from console import readiness

    anna, bram, first = await on_a_call(ctx)
    await handoffs.start(ctx, anna, first, Target(agent_id=bram), "warm", "Refund approved")
    waiting = await conversations.arrive(ctx, channel=Channel.CALL, external_id="call-2", from_address="0687654321",
                                         to_address="0201234567")
    assert waiting.agent_id is None, "Bram is asked to take Anna's call: the queue does not give him another"
    async with ctx.db.reading() as session:
        assert [a.id for a in await handoffs.takers(session, anna, first)] == [], "nobody else is free"
        assert await readiness.mismatches(session) == []
        handoff_id = await session.scalar(select(Handoff.id).where(Handoff.conversation_id == first))
    assert handoff_id is not None
    await handoffs.accept(ctx, bram, handoff_id)
    assert (await status_of(ctx, bram)) is AgentStatus.BUSY


async def test_the_colleague_picker_lists_who_can_take_the_conversation_now(ctx: Context) -> None:
    anna, bram, first = await on_a_call(ctx)
    chloe = await add_agent(ctx.db, "chloe@x.nl", "Chloe", extension="203")
    await routing.set_status(ctx, chloe, "available")
    async with ctx.db.reading() as session:
        assert [a.name for a in await handoffs.takers(session, anna, first)] == ["Bram", "Chloe"]
    offered = await conversations.arrive(ctx, channel=Channel.CALL, external_id="call-2", from_address="0687654321",
                                         to_address="0201234567")
    assert offered.agent_id in (bram, chloe)
    async with ctx.db.reading() as session:
        free = [a.id for a in await handoffs.takers(session, anna, first)]
    assert free == [({bram, chloe} - {offered.agent_id}).pop()], "a colleague whose phone rings is not free"
