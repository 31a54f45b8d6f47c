"""Notes: on the conversation and the customer, pushed to colleagues who have the customer open."""

import pytest
from sqlalchemy import select, update

from console import audit, conversations, notes, offers, routing
from console.errors import InvalidInput, NotFound
from console.models import Agent, AuditEvent, Channel
from console.ports import Context, RecordingNotifier
from console.screenpop import agent_view
from tests.helpers import add_agent, add_customer


async def test_a_note_lands_on_the_conversation_and_customer_and_reaches_who_has_them_open(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    carla = await add_agent(ctx.db, "carla@x.nl", "Carla")
    customer = await add_customer(ctx.db, "Piet Jansen", phones=("0612345678",))
    async with ctx.db.transaction() as session:
        await session.execute(update(Agent).where(Agent.id == bram).values(viewing_customer_id=customer))
    await routing.set_status(ctx, anna, "available")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id="n1", from_address="0612345678",
                                         to_address="020")
    await offers.accept(ctx, anna, arrival.conversation_id)
    notifier = ctx.notify
    assert isinstance(notifier, RecordingNotifier)

    note = await notes.add(ctx, anna, "  Called about the invoice  ", conversation_id=arrival.conversation_id)
    assert note.body == "Called about the invoice" and note.customer_id == customer
    assert notifier.calls[-1] == {anna, bram}, "the handling agent and the colleague with the page open"
    assert carla not in notifier.calls[-1]
    async with ctx.db.transaction() as session:
        view = await agent_view(session, anna, "NL")
        trail = list(await session.scalars(select(AuditEvent).where(AuditEvent.entity == audit.CUSTOMER)))
    assert [n.body for n in view.pops[0].notes] == ["Called about the invoice"]
    assert view.pops[0].picture is not None
    assert [n.body for n in view.pops[0].picture.notes] == [], \
        "shown with the conversation, not a second time among the customer's recent notes"
    assert [(e.agent_id, e.action) for e in trail] == [(anna, "view"), (anna, "note")], "the pop, then the note"


async def test_notes_refuse_empty_oversize_and_unknown_targets(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    customer = await add_customer(ctx.db, "Piet Jansen")
    with pytest.raises(InvalidInput, match="empty"):
        await notes.add(ctx, anna, " \n ", customer_id=customer)
    with pytest.raises(InvalidInput, match="longer than 5000"):
        await notes.add(ctx, anna, "x" * 5001, customer_id=customer)
    with pytest.raises(NotFound):
        await notes.add(ctx, anna, "hello", customer_id=customer + 1)
    with pytest.raises(NotFound):
        await notes.add(ctx, anna, "hello", conversation_id=12345)
    note = await notes.add(ctx, anna, "Prefers mail", customer_id=customer)
    assert note.conversation_id is None


async def test_notes_and_tickets_written_before_the_caller_was_known_follow_the_link(ctx: Context) -> None:
    from console import tickets
    from console.models import Note, Ticket
    from console.tickets import Draft

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    customer = await add_customer(ctx.db, "Piet Jansen")
    await routing.set_status(ctx, anna, "available")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id="n2", from_address="0655555555",
                                         to_address="020")
    await offers.accept(ctx, anna, arrival.conversation_id)
    await notes.add(ctx, anna, "Caller asks about a delivery", conversation_id=arrival.conversation_id)
    await tickets.open_ticket(ctx, anna, Draft(subject="Delivery", conversation_id=arrival.conversation_id))
    await conversations.link_customer(ctx, anna, arrival.conversation_id, customer)
    async with ctx.db.transaction() as session:
        assert [n.customer_id for n in await session.scalars(select(Note))] == [customer]
        assert [t.customer_id for t in await session.scalars(select(Ticket))] == [customer]
