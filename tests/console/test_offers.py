"""Offers: accept, decline, ring-out, and what an agent who misses them twice becomes."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from console import conversations, offers, routing
from console.errors import Conflict
from console.models import Agent, AgentStatus, Channel, Conversation, Offer, OfferState, State, utcnow
from console.ports import Context
from tests.helpers import add_agent


async def two_agents(ctx: Context) -> tuple[int, int]:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    await routing.set_status(ctx, anna, "available")
    await asyncio.sleep(0.01)
    await routing.set_status(ctx, bram, "available")
    return anna, bram


async def call(ctx: Context, call_id: str) -> conversations.Arrival:
    return await conversations.arrive(ctx, channel=Channel.CALL, external_id=call_id, from_address="0612345678",
                                      to_address="0201234567")


async def state_of(ctx: Context, conversation_id: int) -> tuple[State, int | None]:
    async with ctx.db.transaction() as session:
        c = await session.get(Conversation, conversation_id)
        assert c is not None
        return c.state, c.agent_id


async def agent(ctx: Context, agent_id: int) -> Agent:
    async with ctx.db.transaction() as session:
        found = await session.get(Agent, agent_id)
        assert found is not None
        return found


async def ring_out(ctx: Context) -> None:
    """Let every pending offer's deadline pass, then run the sweep as the server would."""
    async with ctx.db.transaction() as session:
        await session.execute(update(Offer).where(Offer.state == OfferState.PENDING, Offer.deadline.is_not(None))
                              .values(deadline=utcnow() - timedelta(seconds=1)))
    await offers.sweep(ctx)


async def test_console_offers_carry_the_queues_deadline(ctx: Context) -> None:
    anna, _ = await two_agents(ctx)
    arrival = await call(ctx, "c1")
    async with ctx.db.transaction() as session:
        record = await session.scalar(select(Offer).where(Offer.conversation_id == arrival.conversation_id))
    assert record is not None and record.agent_id == anna and record.deadline is not None
    assert 15 < (record.deadline - utcnow()).total_seconds() <= 20


async def test_accepting_makes_the_conversation_active_and_the_agent_busy(ctx: Context) -> None:
    anna, bram = await two_agents(ctx)
    arrival = await call(ctx, "c1")
    with pytest.raises(Conflict, match="someone else"):
        await offers.accept(ctx, bram, arrival.conversation_id)
    assert await state_of(ctx, arrival.conversation_id) == (State.OFFERED, anna)
    await offers.accept(ctx, anna, arrival.conversation_id)
    assert await state_of(ctx, arrival.conversation_id) == (State.ACTIVE, anna)
    assert (await agent(ctx, anna)).status is AgentStatus.BUSY


async def test_declining_moves_the_offer_to_the_next_agent_never_back(ctx: Context) -> None:
    anna, bram = await two_agents(ctx)
    arrival = await call(ctx, "c1")
    await offers.decline(ctx, anna, arrival.conversation_id)
    assert await state_of(ctx, arrival.conversation_id) == (State.OFFERED, bram)
    await offers.decline(ctx, bram, arrival.conversation_id)
    # Nobody else: it waits in the queue rather than going straight back to Anna.
    assert await state_of(ctx, arrival.conversation_id) == (State.QUEUED, None)
    assert (await agent(ctx, anna)).status is AgentStatus.AVAILABLE, "a decline is not a missed offer"


async def test_an_offer_that_rings_out_goes_to_the_next_agent(ctx: Context) -> None:
    anna, bram = await two_agents(ctx)
    arrival = await call(ctx, "c1")
    await ring_out(ctx)
    assert await state_of(ctx, arrival.conversation_id) == (State.OFFERED, bram)
    with pytest.raises(Conflict, match="expired"):
        await offers.accept(ctx, anna, arrival.conversation_id)
    assert (await agent(ctx, anna)).missed_offers == 1


async def test_an_expired_offer_cannot_be_accepted_even_before_the_sweep(ctx: Context) -> None:
    anna, _ = await two_agents(ctx)
    arrival = await call(ctx, "c1")
    async with ctx.db.transaction() as session:
        await session.execute(update(Offer).values(deadline=utcnow() - timedelta(seconds=1)))
    with pytest.raises(Conflict):
        await offers.accept(ctx, anna, arrival.conversation_id)
    assert await state_of(ctx, arrival.conversation_id) == (State.OFFERED, anna)


async def test_two_ring_no_answers_in_a_row_set_the_agent_away(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    await routing.set_status(ctx, anna, "available")
    first = await call(ctx, "c1")
    await ring_out(ctx)
    assert (await agent(ctx, anna)).status is AgentStatus.AVAILABLE
    await routing.set_status(ctx, anna, "available")
    assert await state_of(ctx, first.conversation_id) == (State.QUEUED, None), "not straight back to Anna"
    second = await call(ctx, "c2")
    assert await state_of(ctx, second.conversation_id) == (State.OFFERED, anna)
    await ring_out(ctx)
    missed = await agent(ctx, anna)
    assert missed.status is AgentStatus.AWAY and missed.away_reason == "Missed offers"


async def test_accepting_resets_the_missed_count(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    await routing.set_status(ctx, anna, "available")
    await call(ctx, "c1")
    await ring_out(ctx)
    second = await call(ctx, "c2")
    await offers.accept(ctx, anna, second.conversation_id)
    assert (await agent(ctx, anna)).missed_offers == 0


async def test_sweeps_running_on_several_nodes_at_once_neither_fail_nor_double_up(ctx: Context) -> None:
    agents = [await add_agent(ctx.db, f"a{i}@x.nl", f"A{i}", extension=str(200 + i)) for i in range(12)]
    for agent_id in agents:
        await routing.set_status(ctx, agent_id, "available")
    calls = [await call(ctx, f"c{i}") for i in range(12)]
    assert all(c.agent_id is not None for c in calls)
    async with ctx.db.transaction() as session:
        await session.execute(update(Offer).values(deadline=utcnow() - timedelta(seconds=1)))
    results = await asyncio.gather(*(offers.sweep(ctx) for _ in range(3)), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(r for r in results if isinstance(r, int)) == 12, "each offer rang out exactly once"
    async with ctx.db.transaction() as session:
        expired = await session.scalar(select(func.count()).select_from(Offer)
                                       .where(Offer.state == OfferState.EXPIRED))
    assert expired == 12
