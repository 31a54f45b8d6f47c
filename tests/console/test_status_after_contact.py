"""The phone system is the truth about audio: an agent who talks is busy, whatever the page said.

What the agent chose while on a contact (away with a reason, offline) applies when their last
contact ends, and the page shows it meanwhile. On SQLite and PostgreSQL (the `ctx` fixture).
"""

from sqlalchemy import select

from console import changes, conversations, lifecycle, offers, readiness, routing, wrapup
from console.models import Agent, AgentStatus, Channel, State, StatusPeriod
from console.ports import Context, RecordingNotifier
from tests.helpers import add_agent


async def agent_row(ctx: Context, agent_id: int) -> Agent:
    async with ctx.db.reading() as session:
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        return agent


async def periods(ctx: Context, agent_id: int) -> list[tuple[AgentStatus, str | None]]:
    async with ctx.db.reading() as session:
        rows = await session.execute(select(StatusPeriod.status, StatusPeriod.reason)
                                     .where(StatusPeriod.agent_id == agent_id).order_by(StatusPeriod.id))
        return [(status, reason) for status, reason in rows.all()]


def status_changes(ctx: Context, agent_id: int) -> list[changes.StatusChanged]:
    assert isinstance(ctx.notify, RecordingNotifier)
    return [c for batch in ctx.notify.batches for c in batch
            if isinstance(c, changes.StatusChanged) and c.agent_id == agent_id]


async def ring(ctx: Context, call_id: str = "c1") -> int:
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id=call_id,
                                         from_address="0612345678", to_address="0201234567")
    return arrival.conversation_id


async def test_an_agent_who_went_away_while_a_call_rang_is_busy_when_the_phone_answers_it(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="203")
    await routing.set_status(ctx, anna, "available")
    conversation_id = await ring(ctx)
    await routing.set_status(ctx, anna, "away", "Lunch")  # the offer is withdrawn, the phone still rings
    await conversations.answer(ctx, Channel.CALL, "c1", ["203"])  # answered on Anna's extension
    agent = await agent_row(ctx, anna)
    assert agent.status is AgentStatus.BUSY, "she talks: busy, not away"
    assert (agent.after_status, agent.after_reason) == (AgentStatus.AWAY, "Lunch"), "her choice waits"
    shown = status_changes(ctx, anna)[-1]
    assert (shown.status, shown.after, shown.after_reason) == (AgentStatus.BUSY, AgentStatus.AWAY, "Lunch")

    await conversations.hang_up(ctx, Channel.CALL, "c1", "normalClearing")
    agent = await agent_row(ctx, anna)
    assert agent.status is AgentStatus.WRAP_UP and agent.after_status is AgentStatus.AWAY

    await wrapup.finish(ctx, anna, conversation_id, "resolved")
    agent = await agent_row(ctx, anna)
    assert (agent.status, agent.away_reason, agent.after_status) == (AgentStatus.AWAY, "Lunch", None)
    # The talk time is busy time, the wrap-up wrap-up time, and away starts when the contact ends.
    assert [status for status, _ in await periods(ctx, anna)][-4:] == [
        AgentStatus.AWAY, AgentStatus.BUSY, AgentStatus.WRAP_UP, AgentStatus.AWAY]
    assert (await periods(ctx, anna))[-1] == (AgentStatus.AWAY, "Lunch")


async def test_away_pressed_during_a_call_applies_when_it_ends_and_available_takes_it_back(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    await routing.set_status(ctx, anna, "available")
    first = await ring(ctx, "c1")
    await offers.accept(ctx, anna, first)
    assert await routing.set_status(ctx, anna, "away", "Break") is AgentStatus.BUSY
    agent = await agent_row(ctx, anna)
    assert (agent.status, agent.after_status, agent.after_reason) == (AgentStatus.BUSY, AgentStatus.AWAY, "Break")
    version = agent.after_version
    await routing.set_status(ctx, anna, "available")
    agent = await agent_row(ctx, anna)
    assert agent.status is AgentStatus.BUSY and agent.after_status is None, "she changed her mind"
    assert agent.after_version > version, "the page's line for it has a newer version"
    await routing.set_status(ctx, anna, "away", "Break")
    await conversations.hang_up(ctx, Channel.CALL, "c1", "normalClearing")
    waiting = await ring(ctx, "c2")
    await wrapup.finish(ctx, anna, first, "resolved")
    agent = await agent_row(ctx, anna)
    assert agent.status is AgentStatus.AWAY, "away once the contact ended"
    async with ctx.db.reading() as session:
        from console.models import Conversation

        second = await session.get(Conversation, waiting)
    assert second is not None and second.state is State.QUEUED, "going away, she got no new call"


async def test_away_during_a_chat_applies_at_once_since_chats_need_the_page(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    await routing.set_status(ctx, anna, "available")
    chat = await conversations.arrive(ctx, channel=Channel.CHAT, external_id="chat-1", from_address="v1",
                                      to_address="")
    await offers.accept(ctx, anna, chat.conversation_id)
    assert (await agent_row(ctx, anna)).status is AgentStatus.BUSY
    assert await routing.set_status(ctx, anna, "away", "Break") is AgentStatus.AWAY
    second = await conversations.arrive(ctx, channel=Channel.CHAT, external_id="chat-2", from_address="v2",
                                        to_address="")
    assert second.agent_id is None, "away: no new chat, though she had room for two more"
    async with ctx.db.reading() as session:
        assert await readiness.mismatches(session) == []


async def test_a_choice_alone_is_pushed_at_the_status_periods_version_with_a_newer_choice_version(
        ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    await routing.set_status(ctx, anna, "available")
    await offers.accept(ctx, anna, await ring(ctx))
    busy = status_changes(ctx, anna)[-1]
    await routing.set_status(ctx, anna, "away", "Lunch")
    await routing.set_status(ctx, anna, "available")
    chose, took_back = status_changes(ctx, anna)[-2:]
    assert busy.status is chose.status is took_back.status is AgentStatus.BUSY
    assert busy.version == chose.version == took_back.version, "no new status period"
    assert busy.after_version < chose.after_version < took_back.after_version
    assert (chose.after, took_back.after) == (AgentStatus.AWAY, None)


async def test_a_page_gone_during_a_call_means_offline_when_the_call_ends(ctx: Context) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from console import presence
    from console.models import LiveSocket, utcnow

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    socket = await presence.opened(ctx, anna)
    await routing.set_status(ctx, anna, "available")
    conversation_id = await ring(ctx)
    await offers.accept(ctx, anna, conversation_id)
    await presence.closed(ctx, socket)
    async with ctx.db.transaction() as session:
        past = utcnow() - timedelta(seconds=31)
        await session.execute(update(LiveSocket).where(LiveSocket.agent_id == anna).values(seen_at=past))
        await session.execute(update(Agent).where(Agent.id == anna).values(status_since=past))
    assert await presence.sweep(ctx, timedelta(seconds=30)) == 1
    agent = await agent_row(ctx, anna)
    assert (agent.status, agent.after_status) == (AgentStatus.BUSY, AgentStatus.OFFLINE), "the call goes on"
    assert await presence.sweep(ctx, timedelta(seconds=30)) == 0, "noted once"
    await conversations.hang_up(ctx, Channel.CALL, "c1")
    async with ctx.db.transaction() as session:  # the wrap-up runs out: nobody is there to close it
        from console.models import Conversation

        await session.execute(update(Conversation).where(Conversation.id == conversation_id)
                              .values(wrap_up_deadline=utcnow() - timedelta(seconds=1)))
    assert await wrapup.sweep(ctx) == 1
    assert (await agent_row(ctx, anna)).status is AgentStatus.OFFLINE


async def test_an_offline_agent_answering_on_their_phone_is_busy_then_offline_again(ctx: Context) -> None:
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="204")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id="direct", from_address="0612345678",
                                         to_address="0201234567", ringing=["204"])
    await conversations.answer(ctx, Channel.CALL, "direct", ["204"])
    agent = await agent_row(ctx, bram)
    assert (agent.status, agent.after_status) == (AgentStatus.BUSY, AgentStatus.OFFLINE)
    await conversations.hang_up(ctx, Channel.CALL, "direct")
    await wrapup.finish(ctx, bram, arrival.conversation_id, "resolved")
    assert (await agent_row(ctx, bram)).status is AgentStatus.OFFLINE


async def test_choosing_the_same_thing_again_changes_nothing(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    async with ctx.db.transaction() as session:
        agent = await session.get(Agent, anna)
        assert agent is not None
        assert lifecycle.choose_after(agent, AgentStatus.AWAY, "Lunch")
        assert not lifecycle.choose_after(agent, AgentStatus.AWAY, "Lunch")
        assert agent.after_version == 1
