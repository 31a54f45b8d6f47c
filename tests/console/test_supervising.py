"""Supervisors stepping in: an agent's status set or their sessions ended, a waiting or ringing
contact moved; each names the supervisor in the audit trail and tells the agents concerned."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from console import changes, conversations, rollups, routing, supervising
from console.errors import Conflict, Forbidden
from console.models import (
    Agent,
    AgentStatus,
    AuditEvent,
    Channel,
    Conversation,
    Offer,
    OfferState,
    Queue,
    State,
    utcnow,
)
from console.ports import Context, RecordingNotifier
from tests.helpers import add_agent


def told(ctx: Context) -> list[changes.Told]:
    assert isinstance(ctx.notify, RecordingNotifier)
    return [c for batch in ctx.notify.batches for c in batch if isinstance(c, changes.Told)]


async def audit_rows(ctx: Context) -> list[tuple[int | None, str, str, int]]:
    async with ctx.db.reading() as session:
        rows = await session.execute(select(AuditEvent.agent_id, AuditEvent.action, AuditEvent.entity,
                                            AuditEvent.entity_id).order_by(AuditEvent.id))
        return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def test_a_supervisor_sets_an_agents_status_and_logs_a_stuck_agent_out(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    sophie = await add_agent(ctx.db, "sophie@x.nl", "Sophie", role="supervisor")
    await routing.set_status(ctx, anna, "available")
    await supervising.set_agent_status(ctx, sophie, anna, "away", "Meeting")
    async with ctx.db.reading() as session:
        agent = await session.get(Agent, anna)
        assert agent is not None and (agent.status, agent.away_reason) == (AgentStatus.AWAY, "Meeting")
        before = agent.session_version
    assert told(ctx)[-1] == changes.Told(anna, "%(name)s set your status to %(status)s.",
                                         (("name", "Sophie"), ("status", "away")), ("status",))

    await supervising.set_agent_status(ctx, sophie, anna, "available", log_out=True)
    async with ctx.db.reading() as session:
        agent = await session.get(Agent, anna)
        assert agent is not None and agent.status is AgentStatus.OFFLINE
        assert agent.session_version == before + 1, "her sessions end: open pages close their socket"
    assert told(ctx)[-1].text == "%(name)s logged you out."
    assert [(who, action) for who, action, entity, eid in await audit_rows(ctx) if entity == "agent"] == [
        (sophie, "status set"), (sophie, "logged out")]


async def test_agents_cannot_step_in_for_each_other(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    with pytest.raises(Forbidden):
        await supervising.set_agent_status(ctx, bram, anna, "offline")
    with pytest.raises(Forbidden):
        await supervising.reassign(ctx, bram, 1, agent_id=bram)
    sophie = await add_agent(ctx.db, "sophie@x.nl", "Sophie", role="supervisor")
    alex = await add_agent(ctx.db, "alex@x.nl", "Alex", role="admin")
    with pytest.raises(Forbidden, match="Only an admin can step in for an admin"):
        await supervising.set_agent_status(ctx, sophie, alex, "offline", log_out=True)
    with pytest.raises(Forbidden, match="Only an admin"):
        await supervising.watch(ctx, sophie, alex)
    await supervising.set_agent_status(ctx, alex, sophie, "away", "Meeting")  # an admin may


async def test_a_ringing_contact_moved_to_a_colleague_rings_for_them_instead(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    sophie = await add_agent(ctx.db, "sophie@x.nl", "Sophie", role="supervisor")
    await routing.set_status(ctx, anna, "available")
    arrival = await conversations.arrive(ctx, channel=Channel.CHAT, external_id="c1", from_address="v1", to_address="")
    assert arrival.agent_id == anna
    with pytest.raises(Conflict, match="cannot take it now"):  # Bram is offline
        await supervising.reassign(ctx, sophie, arrival.conversation_id, agent_id=bram)
    await routing.set_status(ctx, bram, "available")
    moved = await supervising.reassign(ctx, sophie, arrival.conversation_id, agent_id=bram)
    assert (moved.withdrawn_from, moved.offered_to) == ({anna}, bram)
    async with ctx.db.reading() as session:
        offers = (await session.execute(select(Offer.agent_id, Offer.state).where(
            Offer.conversation_id == arrival.conversation_id).order_by(Offer.id))).all()
    assert [tuple(o) for o in offers] == [(anna, OfferState.WITHDRAWN), (bram, OfferState.PENDING)]
    texts = {(t.agent_id, t.text) for t in told(ctx)}
    assert (anna, "%(name)s moved a contact that rang for you to someone else.") in texts
    assert (bram, "%(name)s gave you a contact: it rings now.") in texts
    assert (sophie, "reassigned", "conversation", arrival.conversation_id) in await audit_rows(ctx)


async def test_a_waiting_contact_moved_to_another_queue_waits_there_and_answered_ones_stay(ctx: Context) -> None:
    sophie = await add_agent(ctx.db, "sophie@x.nl", "Sophie", role="supervisor")
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    async with ctx.transaction() as session:
        billing = Queue(name="Billing")
        session.add(billing)
    arrival = await conversations.arrive(ctx, channel=Channel.MAIL, external_id="m1", from_address="a@b.nl",
                                         to_address="")
    await rollups.sweep(ctx.db, "Europe/Amsterdam")
    moved = await supervising.reassign(ctx, sophie, arrival.conversation_id, queue_id=billing.id)
    assert (moved.withdrawn_from, moved.offered_to) == (frozenset(), None)
    await rollups.sweep(ctx.db, "Europe/Amsterdam")  # the move is an event: its hour is counted again
    async with ctx.db.reading() as session:
        counted = await rollups.sums(session, *rollups.day_of(utcnow(), ZoneInfo("Europe/Amsterdam")), ("queue",))
    assert {key: t.offered for key, t in counted.items()} == {(billing.id,): 1}
    async with ctx.db.reading() as session:
        mail = await session.get(Conversation, arrival.conversation_id)
        assert mail is not None and (mail.queue_id, mail.state) == (billing.id, State.QUEUED)
    await routing.set_status(ctx, anna, "available")  # she takes it from the Billing queue
    from console import offers
    await offers.accept(ctx, anna, arrival.conversation_id)
    with pytest.raises(Conflict, match="Only a waiting or ringing contact"):
        await supervising.reassign(ctx, sophie, arrival.conversation_id, queue_id=billing.id)


async def test_a_supervisor_whispers_into_a_chat_and_takes_it_over(ctx: Context) -> None:
    from console import offers
    from console.models import Note

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    sophie = await add_agent(ctx.db, "sophie@x.nl", "Sophie", role="supervisor")
    await routing.set_status(ctx, anna, "available")
    chat = await conversations.arrive(ctx, channel=Channel.CHAT, external_id="c9", from_address="v9", to_address="")
    with pytest.raises(Conflict, match="Only a chat an operator is handling now"):  # it still rings
        await supervising.whisper(ctx, sophie, chat.conversation_id, "Offer the voucher")
    await offers.accept(ctx, anna, chat.conversation_id)

    await supervising.whisper(ctx, sophie, chat.conversation_id, "Offer the voucher")
    async with ctx.db.reading() as session:
        note = await session.scalar(select(Note).where(Note.conversation_id == chat.conversation_id))
        assert note is not None and (note.agent_id, note.body) == (sophie, "Offer the voucher")
    assert told(ctx)[-1] == changes.Told(anna, "%(name)s whispers: %(text)s",
                                         (("name", "Sophie"), ("text", "Offer the voucher")))

    following = await supervising.take_over(ctx, sophie, chat.conversation_id)
    async with ctx.db.reading() as session:
        first = await session.get(Conversation, chat.conversation_id)
        second = await session.get(Conversation, following)
        assert first is not None and second is not None
        assert (first.state, first.agent_id) == (State.WRAP_UP, anna), "Anna wraps her part up"
        assert (second.state, second.agent_id, second.parent_id) == (State.ACTIVE, sophie, first.id)
    assert told(ctx)[-1].text == "%(name)s took this chat over; wrap it up."
    actions = [(who, action) for who, action, entity, _ in await audit_rows(ctx) if entity == "conversation"]
    assert (sophie, "whispered") in actions and (sophie, "took over") in actions
    with pytest.raises(Conflict, match="yours already"):
        await supervising.take_over(ctx, sophie, following)


async def test_watching_an_agent_is_audited_and_told(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    sophie = await add_agent(ctx.db, "sophie@x.nl", "Sophie", role="supervisor")
    assert await supervising.watch(ctx, sophie, anna) == "Anna"
    assert (sophie, "watched", "agent", anna) in await audit_rows(ctx)
    assert told(ctx)[-1].text == "%(name)s is watching your screen (read only)."
    with pytest.raises(Forbidden):
        await supervising.watch(ctx, anna, sophie)
