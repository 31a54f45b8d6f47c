"""Routing rules one at a time: capacity, skills, tier priority, owner first."""

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from console import conversations, offers, routing
from console.models import (
    AgentSkill,
    Channel,
    Conversation,
    Offer,
    Queue,
    QueueSkill,
    Skill,
    State,
    Tier,
    utcnow,
)
from console.ports import Context
from tests.helpers import add_agent, add_customer


async def arrive(ctx: Context, external_id: str, channel: Channel = Channel.CHAT, address: str = "visitor-1",
                 queue: str | None = None) -> conversations.Arrival:
    return await conversations.arrive(ctx, channel=channel, external_id=external_id, from_address=address,
                                      to_address="", queue=queue)


async def test_an_agent_takes_up_to_three_chats_but_a_call_excludes_other_work(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    await routing.set_status(ctx, anna, "available")
    chats = [await arrive(ctx, f"chat-{i}", address=f"v{i}") for i in range(4)]
    assert [c.agent_id for c in chats] == [anna, anna, anna, None], "the fourth chat waits"
    for chat in chats[:3]:
        await offers.accept(ctx, anna, chat.conversation_id)
    call = await arrive(ctx, "call-1", Channel.CALL, "0612345678")
    assert call.agent_id == anna, "chats leave room for a call"
    await offers.accept(ctx, anna, call.conversation_id)
    assert (await arrive(ctx, "mail-1", Channel.MAIL, "a@b.nl")).agent_id is None, "nothing new during a call"


async def test_only_agents_with_the_queues_skills_get_its_contacts(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    async with ctx.db.transaction() as session:
        german, queue = Skill(name="german"), Queue(name="de-support")
        session.add_all([german, queue])
        await session.flush()
        session.add_all([QueueSkill(queue_id=queue.id, skill_id=german.id, level=3),
                         AgentSkill(agent_id=anna, skill_id=german.id, level=2),
                         AgentSkill(agent_id=bram, skill_id=german.id, level=4)])
    await routing.set_status(ctx, anna, "available")
    await asyncio.sleep(0.01)
    await routing.set_status(ctx, bram, "available")
    arrival = await arrive(ctx, "c1", queue="de-support")
    assert arrival.agent_id == bram, "Anna has German, but below the level the queue needs"


async def test_at_equal_wait_tier_a_goes_before_b_before_c_and_a_long_wait_still_wins(ctx: Context) -> None:
    tiers = {}
    for tier in (Tier.C, Tier.B, Tier.A):
        tiers[tier] = await add_customer(ctx.db, f"Customer {tier.value}", tier=tier)
    waiting = {}
    for tier, customer_id in tiers.items():
        arrival = await arrive(ctx, f"chat-{tier.value}", address=f"v-{tier.value}")
        waiting[tier] = arrival.conversation_id
        async with ctx.db.transaction() as session:
            await session.execute(update(Conversation).where(Conversation.id == arrival.conversation_id)
                                  .values(customer_id=customer_id, created_at=utcnow() - timedelta(seconds=60)))
    old_c = await arrive(ctx, "chat-old-c", address="v-old")
    async with ctx.db.transaction() as session:
        await session.execute(update(Conversation).where(Conversation.id == old_c.conversation_id)
                              .values(customer_id=tiers[Tier.C], created_at=utcnow() - timedelta(seconds=600)))
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    await routing.set_status(ctx, anna, "available")
    async with ctx.db.transaction() as session:
        offered = list(await session.scalars(select(Offer.conversation_id).where(Offer.agent_id == anna)
                                             .order_by(Offer.id)))
    # One at a time as capacity frees up: the ten-minute C first (600 s x 1 beats 60 s x 3), then A, B.
    assert offered[:3] == [old_c.conversation_id, waiting[Tier.A], waiting[Tier.B]]


async def test_the_owner_gets_their_customer_first_for_a_while_then_the_queue(ctx: Context) -> None:
    owner = await add_agent(ctx.db, "owner@x.nl", "Olga", extension="201")
    other = await add_agent(ctx.db, "other@x.nl", "Otto", extension="202")
    await routing.set_status(ctx, other, "available")
    await asyncio.sleep(0.01)
    await routing.set_status(ctx, owner, "available")
    await add_customer(ctx.db, "Jan", phones=("0612345678",), owner_id=owner, tier=Tier.A)
    arrival = await arrive(ctx, "c1", Channel.CALL, "0612345678")
    assert arrival.agent_id == owner, "Otto is longer idle, but Jan is Olga's customer"
    async with ctx.db.transaction() as session:
        record = await session.scalar(select(Offer).where(Offer.conversation_id == arrival.conversation_id))
        assert record is not None and record.deadline is not None
        assert 10 < (record.deadline - utcnow()).total_seconds() <= 15
        await session.execute(update(Offer).values(deadline=utcnow() - timedelta(seconds=1)))
    await offers.sweep(ctx)
    async with ctx.db.transaction() as session:
        conversation = await session.get(Conversation, arrival.conversation_id)
    assert conversation is not None and conversation.state is State.OFFERED and conversation.agent_id == other


async def test_an_owner_who_is_away_does_not_hold_the_customer_up(ctx: Context) -> None:
    owner = await add_agent(ctx.db, "owner@x.nl", "Olga", extension="201")
    other = await add_agent(ctx.db, "other@x.nl", "Otto", extension="202")
    await routing.set_status(ctx, other, "available")
    await add_customer(ctx.db, "Jan", phones=("0612345678",), owner_id=owner)
    arrival = await arrive(ctx, "c1", Channel.CALL, "0612345678")
    assert arrival.agent_id == other
    async with ctx.db.transaction() as session:
        assert await session.scalar(select(Offer.id).where(Offer.agent_id == owner)) is None


async def test_the_queue_sweep_offers_waiting_work_again_after_the_cool_down(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    await routing.set_status(ctx, anna, "available")
    arrival = await arrive(ctx, "c1")
    await offers.decline(ctx, anna, arrival.conversation_id)
    assert await routing.sweep_queue(ctx) == 0, "not straight back to the agent who declined"
    async with ctx.db.transaction() as session:
        await session.execute(update(Offer).values(ended_at=utcnow() - routing.COOL_DOWN - timedelta(seconds=1)))
    assert await routing.sweep_queue(ctx) == 1
    async with ctx.db.transaction() as session:
        conversation = await session.get(Conversation, arrival.conversation_id)
    assert conversation is not None and conversation.state is State.OFFERED and conversation.agent_id == anna


async def test_wrapping_up_one_chat_while_others_go_on_keeps_the_agent_busy_and_routable(ctx: Context) -> None:
    from console.models import Agent, AgentStatus

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    await routing.set_status(ctx, anna, "available")
    first, second = await arrive(ctx, "c1", address="v1"), await arrive(ctx, "c2", address="v2")
    for chat in (first, second):
        await offers.accept(ctx, anna, chat.conversation_id)
    await conversations.end(ctx, anna, first.conversation_id)
    async with ctx.db.transaction() as session:
        assert (await session.get(Agent, anna)).status is AgentStatus.BUSY  # type: ignore[union-attr]
    third = await arrive(ctx, "c3", address="v3")
    assert third.agent_id == anna, "one chat in wrap-up and one active leave room for a third"


async def test_owner_first_can_be_switched_off_per_queue(ctx: Context) -> None:
    from console import config

    owner = await add_agent(ctx.db, "owner@x.nl", "Olga", extension="201")
    other = await add_agent(ctx.db, "other@x.nl", "Otto", extension="202")
    await routing.set_status(ctx, other, "available")
    await asyncio.sleep(0.01)
    await routing.set_status(ctx, owner, "available")
    async with ctx.db.transaction() as session:
        await config.configure_queue(session, "no-owner", config.QueueSettings(owner_first_seconds=0))
    await add_customer(ctx.db, "Jan", phones=("0612345678",), owner_id=owner)
    arrival = await arrive(ctx, "c1", Channel.CALL, "0612345678", queue="no-owner")
    assert arrival.agent_id == other


async def test_calls_end_by_hanging_up_not_from_the_page(ctx: Context) -> None:
    import pytest

    from console.errors import Conflict

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    await routing.set_status(ctx, anna, "available")
    call = await arrive(ctx, "call", Channel.CALL, "0612345678")
    await offers.accept(ctx, anna, call.conversation_id)
    with pytest.raises(Conflict, match="hung up"):
        await conversations.end(ctx, anna, call.conversation_id)


async def test_picking_an_agent_walks_the_readiness_index_on_postgresql(pg_url: str) -> None:
    """With many agents ready, the longest-idle one is found without checking them all."""
    from sqlalchemy import event, insert, text

    from console.db import Database
    from console.models import Agent
    from console.routing import _PICK, pick_agent

    db = Database(pg_url)
    try:
        async with db.transaction() as session:
            await session.execute(insert(Agent), [
                {"email": f"a{i}@x.nl", "name": f"A{i}", "password_hash": "x", "extension": str(1000 + i),
                 "status": "available" if i % 3 else "offline", "ready_call": i % 3 != 0} for i in range(3000)])
            await session.execute(text("ANALYZE agents"))
        seen: list[str] = []
        async with db.transaction() as session:
            def _capture(conn: object, cursor: object, statement: str, *args: object) -> None:
                if "FOR UPDATE" in statement:
                    seen.append(statement)

            event.listen(db.engine.sync_engine, "before_cursor_execute", _capture)
            try:
                picked = await pick_agent(session, Channel.CALL)
            finally:
                event.remove(db.engine.sync_engine, "before_cursor_execute", _capture)
            assert picked is not None and picked.status.value == "available"
            compiled = _PICK[Channel.CALL].compile(db.engine, compile_kwargs={"literal_binds": True})
            plan = "\n".join((await session.execute(text(f"EXPLAIN {compiled}"))).scalars())
        assert len(seen) == 1, "one statement picks and locks"
        assert "ix_agents_ready_call" in plan and "Sort" not in plan, plan
    finally:
        await db.close()


async def test_a_call_rung_at_an_offline_agent_pops_but_counts_as_waiting_not_ringing(ctx: Context) -> None:
    from console.screenpop import agent_view

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="203")  # offline, her page may be open
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    await routing.set_status(ctx, bram, "available")
    async with ctx.db.transaction() as session:
        session.add(Queue(name="sales"))
    direct = await conversations.arrive(ctx, channel=Channel.CALL, external_id="to-anna", from_address="0612345678",
                                        to_address="0201234567", ringing=["203"], queue="sales")
    async with ctx.db.reading() as session:
        pops = (await agent_view(session, anna, "NL")).pops
    assert [p.conversation.id for p in pops] == [direct.conversation_id], "the phone rings her: the pop shows"
    assert await routing.queue_figures(ctx) == {"sales": routing.QueueFigures(waiting=1, ringing=0)}

    await conversations.arrive(ctx, channel=Channel.CALL, external_id="to-bram", from_address="0687654321",
                               to_address="0201234567", ringing=["202"], queue="sales")
    await conversations.arrive(ctx, channel=Channel.CALL, external_id="no-queue", from_address="0611111111",
                               to_address="0201234567")  # nobody free now: it waits without a queue
    assert await routing.queue_figures(ctx) == {"sales": routing.QueueFigures(waiting=1, ringing=1),
                                               "": routing.QueueFigures(waiting=1, ringing=0)}
    await routing.set_status(ctx, anna, "available")  # she is there after all: now it rings someone
    figures = await routing.queue_figures(ctx)
    assert figures["sales"] == routing.QueueFigures(waiting=0, ringing=2)
