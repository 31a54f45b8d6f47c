"""Tickets: opened from a conversation, due times from the SLA, history, comments, and stale edits refused."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from console import conversations, offers, routing, tickets
from console.errors import Conflict, InvalidInput, NotFound
from console.models import Channel, Priority, Ticket, TicketChange, TicketStatus, utcnow
from console.ports import Context
from console.tickets import Draft
from tests.helpers import add_agent, add_customer


async def test_open_a_ticket_from_a_conversation(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    customer = await add_customer(ctx.db, "Piet Jansen", phones=("0612345678",))
    await routing.set_status(ctx, anna, "available")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id="t1", from_address="0612345678",
                                         to_address="020")
    await offers.accept(ctx, anna, arrival.conversation_id)
    ticket = await tickets.open_ticket(ctx, anna, Draft(subject="Broken delivery", description="Box was wet",
                                                        priority="urgent", assignee_id=bram,
                                                        conversation_id=arrival.conversation_id))
    assert ticket.customer_id == customer and ticket.status is TicketStatus.NEW
    assert ticket.due_at is not None
    assert timedelta(hours=3, minutes=59) < ticket.due_at - ticket.created_at <= timedelta(hours=4)
    async with ctx.db.transaction() as session:
        mine = await tickets.assigned_to(session, bram)
        page = await tickets.page(session, bram, ticket.id)
    assert [t.subject for t in mine] == ["Broken delivery"]
    assert [c.field for c in page.changes] == ["created"] and not page.overdue


async def test_changes_are_recorded_and_a_stale_edit_is_refused(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    ticket = await tickets.open_ticket(ctx, anna, Draft(subject="Invoice wrong"))
    assert ticket.version == 1
    changed = await tickets.update(ctx, anna, ticket.id, 1, {"status": "open", "priority": "high"})
    assert changed.version == 2 and changed.priority is Priority.HIGH
    assert changed.due_at is not None and changed.due_at - changed.created_at == timedelta(hours=24)
    with pytest.raises(Conflict, match="Anna changed this ticket"):
        await tickets.update(ctx, bram, ticket.id, 1, {"status": "solved"})
    async with ctx.db.transaction() as session:
        stored = await session.get(Ticket, ticket.id)
        history = [(c.field, c.old, c.new, c.agent_id) for c in
                   await session.scalars(select(TicketChange).where(TicketChange.ticket_id == ticket.id)
                                         .order_by(TicketChange.id))]
    assert stored is not None and stored.status is TicketStatus.OPEN, "the stale edit changed nothing"
    assert history[1:] == [("priority", "normal", "high", anna), ("status", "new", "open", anna)] or \
        sorted(history[1:]) == sorted([("priority", "normal", "high", anna), ("status", "new", "open", anna)])
    await tickets.comment(ctx, bram, ticket.id, "Sent a corrected invoice")
    async with ctx.db.transaction() as session:
        page = await tickets.page(session, bram, ticket.id)
    assert [c.body for c in page.comments] == ["Sent a corrected invoice"]


async def test_bad_ticket_input_gets_a_clear_error(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    with pytest.raises(InvalidInput, match="subject"):
        await tickets.open_ticket(ctx, anna, Draft(subject="  "))
    with pytest.raises(InvalidInput, match="longer than 300"):
        await tickets.open_ticket(ctx, anna, Draft(subject="x" * 301))
    with pytest.raises(InvalidInput, match="low, normal, high, urgent"):
        await tickets.open_ticket(ctx, anna, Draft(subject="ok", priority="asap"))
    with pytest.raises(NotFound, match="colleague"):
        await tickets.open_ticket(ctx, anna, Draft(subject="ok", assignee_id=999))
    ticket = await tickets.open_ticket(ctx, anna, Draft(subject="ok"))
    with pytest.raises(InvalidInput, match="cannot be changed"):
        await tickets.update(ctx, anna, ticket.id, 1, {"created_at": "now"})
    with pytest.raises(InvalidInput, match="empty"):
        await tickets.comment(ctx, anna, ticket.id, "")


async def test_overdue_tickets_stand_out(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    ticket = await tickets.open_ticket(ctx, anna, Draft(subject="Late", assignee_id=anna))
    async with ctx.db.transaction() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(due_at=utcnow() - timedelta(hours=1)))
    async with ctx.db.transaction() as session:
        page = await tickets.page(session, anna, ticket.id)
    assert page.overdue
    await tickets.update(ctx, anna, ticket.id, 1, {"status": "solved"})
    async with ctx.db.transaction() as session:
        assert not (await tickets.page(session, anna, ticket.id)).overdue, "solved tickets are not overdue"
