import asyncio

import pytest
from sqlalchemy import select

from console import conversations, routing
from console.errors import Conflict, NotFound
from console.models import Channel, Conversation, Direction, Offer, OfferState, State
from console.ports import Context, RecordingNotifier
from tests.helpers import add_agent, add_customer


def told(ctx: Context) -> set[int]:
    assert isinstance(ctx.notify, RecordingNotifier)
    return set().union(*ctx.notify.calls) if ctx.notify.calls else set()


async def call(ctx: Context, call_id: str, number: str = "0612345678", ringing: list[str] | None = None,
               direction: Direction = Direction.IN) -> conversations.Arrival:
    return await conversations.arrive(ctx, channel=Channel.CALL, external_id=call_id, from_address=number,
                                      to_address="0201234567", direction=direction, ringing=ringing)


async def offers_of(ctx: Context, conversation_id: int) -> dict[int, OfferState]:
    async with ctx.db.transaction() as session:
        query = select(Offer.agent_id, Offer.state).where(Offer.conversation_id == conversation_id)
        rows = await session.execute(query)
        return {agent_id: state for agent_id, state in rows.all()}


async def test_a_call_nobody_rings_goes_to_the_longest_idle_available_agent(ctx: Context) -> None:
    first = await add_agent(ctx.db, "first@x.nl", "First", extension="201")
    second = await add_agent(ctx.db, "second@x.nl", "Second", extension="202")
    away = await add_agent(ctx.db, "away@x.nl", "Away", extension="203")
    await routing.set_status(ctx, first, "available")
    await asyncio.sleep(0.01)
    await routing.set_status(ctx, second, "available")
    await routing.set_status(ctx, away, "away")
    one = await call(ctx, "c1")
    assert (one.agent_id, one.target_extension, one.state) == (first, "201", State.OFFERED)
    two = await call(ctx, "c2", "0687654321")
    assert (two.agent_id, two.target_extension) == (second, "202")
    three = await call(ctx, "c3", "0611111111")
    assert three.state is State.QUEUED and three.target_extension is None


async def test_a_queued_call_is_offered_when_an_agent_becomes_available(ctx: Context) -> None:
    agent = await add_agent(ctx.db, "a@x.nl", "A", extension="201")
    queued = await call(ctx, "c1")
    assert queued.state is State.QUEUED
    await routing.set_status(ctx, agent, "available")
    again = await call(ctx, "c1")
    assert not again.created and again.agent_id == agent and again.target_extension == "201"
    assert agent in told(ctx)


async def test_the_call_that_waited_is_offered_when_the_agent_finishes_the_one_before(ctx: Context) -> None:
    from console import wrapup

    agent = await add_agent(ctx.db, "a@x.nl", "A", extension="201")
    await routing.set_status(ctx, agent, "available")
    first = await call(ctx, "c1")
    waiting = await call(ctx, "c2", "0687654321")
    assert first.agent_id == agent and waiting.state is State.QUEUED
    await conversations.answer(ctx, Channel.CALL, "c1", ["201"])
    await conversations.hang_up(ctx, Channel.CALL, "c1", "normalClearing")
    again = await call(ctx, "c2", "0687654321")
    assert again.state is State.QUEUED, "in wrap-up: no new call yet"
    await wrapup.finish(ctx, agent, first.conversation_id, "resolved")
    again = await call(ctx, "c2", "0687654321")
    assert (again.state, again.agent_id, again.target_extension) == (State.OFFERED, agent, "201")


async def test_a_repeated_new_call_returns_the_same_conversation_and_pops_nothing_twice(ctx: Context) -> None:
    agent = await add_agent(ctx.db, "a@x.nl", "A", extension="201")
    first = await call(ctx, "dup", ringing=["201"])
    assert isinstance(ctx.notify, RecordingNotifier)
    pushes = len(ctx.notify.calls)
    second = await call(ctx, "dup", ringing=["201"])
    assert second.conversation_id == first.conversation_id and not second.created
    assert len(ctx.notify.calls) == pushes
    assert await offers_of(ctx, first.conversation_id) == {agent: OfferState.PENDING}


async def test_concurrent_duplicate_new_calls_store_one_conversation(ctx: Context) -> None:
    results = await asyncio.gather(*(call(ctx, "same") for _ in range(5)))
    assert len({r.conversation_id for r in results}) == 1
    assert sum(r.created for r in results) == 1


async def test_ringing_agents_get_the_offer_and_answer_keeps_it_with_the_one_who_answered(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna de Vries", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    arrival = await call(ctx, "ring", ringing=["Anna de Vries", "202", "Unknown Person"])
    assert arrival.state is State.OFFERED and arrival.target_extension is None
    assert await offers_of(ctx, arrival.conversation_id) == {anna: OfferState.PENDING, bram: OfferState.PENDING}
    conversation = await conversations.answer(ctx, Channel.CALL, "ring", ["bram@x.nl"])
    assert conversation.state is State.ACTIVE and conversation.agent_id == bram
    assert await offers_of(ctx, arrival.conversation_id) == {anna: OfferState.WITHDRAWN, bram: OfferState.ACCEPTED}
    assert {anna, bram} <= told(ctx)


async def test_hangup_before_answer_abandons_the_call_and_withdraws_the_pop(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    arrival = await call(ctx, "gone", ringing=["201"])
    assert isinstance(ctx.notify, RecordingNotifier)
    ctx.notify.calls.clear()
    ended = await conversations.hang_up(ctx, Channel.CALL, "gone", "cancel")
    assert ended.state is State.ABANDONED and ended.abandoned_at is not None and ended.hangup_cause == "cancel"
    assert await offers_of(ctx, arrival.conversation_id) == {anna: OfferState.WITHDRAWN}
    assert anna in told(ctx)
    # A second hangup changes nothing.
    assert (await conversations.hang_up(ctx, Channel.CALL, "gone")).state is State.ABANDONED


async def test_hangup_after_answer_starts_wrap_up_and_the_disposition_frees_the_agent(ctx: Context) -> None:
    from console import wrapup
    from console.models import Agent, AgentStatus

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    await routing.set_status(ctx, anna, "available")
    await call(ctx, "talk")
    await conversations.answer(ctx, Channel.CALL, "talk", ["201"])
    waiting = await call(ctx, "waiting", "0687654321")
    assert waiting.state is State.QUEUED
    ended = await conversations.hang_up(ctx, Channel.CALL, "talk", "normalClearing")
    assert ended.state is State.WRAP_UP and ended.wrap_up_deadline is not None
    async with ctx.db.transaction() as session:
        assert (await session.get(Agent, anna)).status is AgentStatus.WRAP_UP  # type: ignore[union-attr]
    await wrapup.finish(ctx, anna, ended.id, "resolved", "Explained the invoice")
    async with ctx.db.transaction() as session:
        closed = await session.get(Conversation, ended.id)
        assert closed is not None and closed.state is State.CLOSED and closed.disposition == "resolved"
        assert closed.disposition_note == "Explained the invoice"
        now_offered = await session.get(Conversation, waiting.conversation_id)
        assert now_offered is not None and now_offered.state is State.OFFERED and now_offered.agent_id == anna


async def test_answer_or_hangup_of_an_unknown_call_is_not_found(ctx: Context) -> None:
    with pytest.raises(NotFound):
        await conversations.answer(ctx, Channel.CALL, "nope", [])
    with pytest.raises(NotFound):
        await conversations.hang_up(ctx, Channel.CALL, "nope")


async def test_answering_an_ended_call_is_refused(ctx: Context) -> None:
    await call(ctx, "ended")
    await conversations.hang_up(ctx, Channel.CALL, "ended")
    with pytest.raises(Conflict):
        await conversations.answer(ctx, Channel.CALL, "ended", [])


async def test_the_matched_customer_is_attached_and_several_matches_leave_the_choice(ctx: Context) -> None:
    jan = await add_customer(ctx.db, "Jan", phones=("0612345678",))
    await add_customer(ctx.db, "Ada", phones=("0201111111",))
    await add_customer(ctx.db, "Bob", phones=("0201111111",))
    agent = await add_agent(ctx.db, "a@x.nl", "A", extension="201")
    one = await call(ctx, "one", "+31 6 1234 5678", ringing=["201"])
    several = await call(ctx, "several", "020-1111111", ringing=["201"])
    async with ctx.db.transaction() as session:
        assert (await session.get(Conversation, one.conversation_id)).customer_id == jan  # type: ignore[union-attr]
        assert (await session.get(Conversation, several.conversation_id)).customer_id is None  # type: ignore[union-attr]
    ada = await add_customer(ctx.db, "Ada Again", phones=("0209999999",))
    await conversations.link_customer(ctx, agent, several.conversation_id, ada)
    async with ctx.db.transaction() as session:
        conversation = await session.get(Conversation, several.conversation_id)
        assert conversation is not None and conversation.customer_id == ada
        from console.customers import match
        from console.models import ContactKind

        assert ada in await match(session, ContactKind.PHONE, "0201111111", "NL")


async def test_an_outgoing_call_pops_the_called_customer_for_the_calling_agent(ctx: Context) -> None:
    jan = await add_customer(ctx.db, "Jan", phones=("0612345678",))
    agent = await add_agent(ctx.db, "a@x.nl", "A", extension="201")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id="out", from_address="0201234567",
                                         to_address="0612345678", direction=Direction.OUT, ringing=["201"])
    async with ctx.db.transaction() as session:
        conversation = await session.get(Conversation, arrival.conversation_id)
        assert conversation is not None and conversation.customer_id == jan and conversation.agent_id == agent


async def test_creating_a_customer_from_the_pop_attaches_the_call(ctx: Context) -> None:
    from console.errors import InvalidInput

    agent = await add_agent(ctx.db, "a@x.nl", "A", extension="201")
    other = await add_agent(ctx.db, "b@x.nl", "B", extension="202")
    arrival = await call(ctx, "new", "0655555555", ringing=["201"])
    with pytest.raises(InvalidInput):
        await conversations.create_customer(ctx, agent, arrival.conversation_id, name="  ", phone="0655555555")
    with pytest.raises(Conflict):
        await conversations.create_customer(ctx, other, arrival.conversation_id, name="Nope")
    customer_id = await conversations.create_customer(ctx, agent, arrival.conversation_id, name="New Person",
                                                      phone="0655555555", email="new@example.nl")
    async with ctx.db.transaction() as session:
        conversation = await session.get(Conversation, arrival.conversation_id)
        assert conversation is not None and conversation.customer_id == customer_id


async def test_status_must_be_one_an_agent_can_choose(ctx: Context) -> None:
    from console.errors import InvalidInput

    agent = await add_agent(ctx.db, "a@x.nl", "A")
    with pytest.raises(InvalidInput, match="available, away or offline"):
        await routing.set_status(ctx, agent, "dancing")


async def test_idle_time_counts_from_the_end_of_the_last_call(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    await routing.set_status(ctx, anna, "available")
    await asyncio.sleep(0.01)
    await routing.set_status(ctx, bram, "available")
    assert (await call(ctx, "first")).agent_id == anna
    await conversations.answer(ctx, Channel.CALL, "first", ["201"])
    first = await conversations.hang_up(ctx, Channel.CALL, "first")
    from console import wrapup

    await wrapup.finish(ctx, anna, first.id, "resolved")
    # Anna just finished a call; Bram has waited longer, so he gets the next one.
    assert (await call(ctx, "second", "0687654321")).agent_id == bram


async def test_an_agent_who_goes_away_gives_the_offered_call_to_the_next_agent(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    await routing.set_status(ctx, anna, "available")
    await asyncio.sleep(0.01)
    await routing.set_status(ctx, bram, "available")
    arrival = await call(ctx, "handed-on")
    assert arrival.agent_id == anna
    await routing.set_status(ctx, anna, "away")
    assert await offers_of(ctx, arrival.conversation_id) == {anna: OfferState.WITHDRAWN, bram: OfferState.PENDING}
    again = await call(ctx, "handed-on")
    assert again.target_extension == "202", "the phone system learns the new target"
    assert {anna, bram} <= told(ctx)


async def test_a_call_the_phone_system_rings_is_never_routed_by_the_console(ctx: Context) -> None:
    await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    rung = await call(ctx, "pbx-routed", ringing=["Somebody Unknown"])
    assert rung.state is State.QUEUED
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    await routing.set_status(ctx, bram, "available")
    assert await offers_of(ctx, rung.conversation_id) == {}


async def test_a_call_picked_up_by_another_agent_leaves_the_first_agents_screen(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    await call(ctx, "pickup", ringing=["201"])
    await conversations.answer(ctx, Channel.CALL, "pickup", ["201"])
    assert isinstance(ctx.notify, RecordingNotifier)
    ctx.notify.calls.clear()
    moved = await conversations.answer(ctx, Channel.CALL, "pickup", ["202"])
    assert moved.agent_id == bram and {anna, bram} <= told(ctx)


async def test_answer_and_hangup_racing_end_with_the_call_ended(ctx: Context) -> None:
    await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    for round_ in range(10):
        call_id = f"race-{round_}"
        await call(ctx, call_id, ringing=["201"])
        results = await asyncio.gather(conversations.answer(ctx, Channel.CALL, call_id, ["201"]),
                                       conversations.hang_up(ctx, Channel.CALL, call_id),
                                       return_exceptions=True)
        async with ctx.db.transaction() as session:
            state = await session.scalar(select(Conversation.state).where(Conversation.external_id == call_id))
        assert state in (State.WRAP_UP, State.ABANDONED), (round_, state, results)
