"""Personal data (GDPR): export everything about a customer, erase them on request, retention."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from console import audit, conversations, customers, notes, offers, privacy, profile, routing, search, tickets, wrapup
from console.errors import Conflict, Forbidden
from console.models import (
    Address,
    AuditEvent,
    Channel,
    ContactPoint,
    Conversation,
    Customer,
    Note,
    SearchTerm,
    Ticket,
    TicketComment,
    utcnow,
)
from console.ports import Context
from console.screenpop import agent_view
from console.tickets import Draft
from tests.helpers import add_agent, add_customer

PHONE = "0612345678"


async def worked_call(ctx: Context, agent: int, call_id: str, *, note: str = "") -> int:
    """A call from the customer's number, answered, hung up and wrapped up; its id."""
    await routing.set_status(ctx, agent, "available")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id=call_id, from_address=PHONE,
                                         to_address="0201234567")
    await offers.accept(ctx, agent, arrival.conversation_id)
    if note:
        await notes.add(ctx, agent, note, conversation_id=arrival.conversation_id)
    await conversations.hang_up(ctx, Channel.CALL, call_id)
    await wrapup.finish(ctx, agent, arrival.conversation_id, "resolved", "Wants a callback about the invoice")
    return arrival.conversation_id


async def piet(ctx: Context) -> tuple[int, int, int, int]:
    """Piet with a worked call, a note, a ticket with a comment and an address: (anna, sanne, piet, call)."""
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    sanne = await add_agent(ctx.db, "sanne@x.nl", "Sanne", role="supervisor")
    customer = await add_customer(ctx.db, "Piet Jansen", phones=(PHONE,), emails=("piet@jansen.nl",),
                                  company="Bakkerij Jansen")
    await profile.add_address(ctx, anna, customer, kind="postal", street="Dorpsstraat 1", postal_code="1234 AB",
                              city="Utrecht", country="NL")
    call = await worked_call(ctx, anna, "c1", note="Piet's daughter handles the bills")
    await notes.add(ctx, anna, "Allergic to gluten", customer_id=customer)
    ticket = await tickets.open_ticket(ctx, anna, Draft(subject="Refund for Piet", description="Order 7 broken",
                                                        conversation_id=call))
    await tickets.comment(ctx, anna, ticket.id, "Called Piet back")
    async with ctx.db.transaction() as session:  # as a rating after a chat leaves it
        rated = await session.get(Conversation, call)
        assert rated is not None
        rated.rating, rated.rating_comment = 4, "Piet was glad with Anna"
    return anna, sanne, customer, call


async def test_a_supervisor_exports_everything_held_about_a_customer_and_the_export_is_audited(ctx: Context) -> None:
    anna, sanne, customer, call = await piet(ctx)
    with pytest.raises(Forbidden):
        await privacy.export(ctx, anna, customer, "json")

    data = await privacy.export(ctx, sanne, customer, "json")

    text = json.dumps(data)  # the whole document is plain JSON
    assert data["customer"]["name"] == "Piet Jansen" and data["customer"]["company"] == "Bakkerij Jansen"
    assert {p["value"] for p in data["contact_points"]} == {PHONE, "piet@jansen.nl"}
    assert data["addresses"][0]["street"] == "Dorpsstraat 1"
    [conversation] = data["conversations"]
    assert conversation["id"] == call and conversation["from_address"] == PHONE and conversation["agent"] == "Anna"
    assert conversation["disposition_note"] == "Wants a callback about the invoice"
    assert (conversation["rating"], conversation["rating_comment"]) == (4, "Piet was glad with Anna")
    assert [n["body"] for n in conversation["notes"]] == ["Piet's daughter handles the bills"]
    assert [e["to_state"] for e in conversation["events"]][-1] == "closed"
    assert [n["body"] for n in data["notes"]] == ["Allergic to gluten"]
    [ticket] = data["tickets"]
    assert ticket["subject"] == "Refund for Piet" and [c["body"] for c in ticket["comments"]] == ["Called Piet back"]
    assert {"Anna"} <= {a["agent"] for a in data["access"]}, "who viewed and changed the data"
    assert data["exported_by"] == "Sanne" and "Order 7 broken" in text
    async with ctx.db.reading() as session:
        exports = list(await session.scalars(select(AuditEvent).where(AuditEvent.action == audit.EXPORT)))
    assert [(e.agent_id, e.entity_id, e.detail) for e in exports] == [(sanne, customer, "json")]


async def test_erasing_a_customer_leaves_nothing_of_the_person_and_keeps_the_counts(ctx: Context) -> None:
    anna, sanne, customer, call = await piet(ctx)
    async with ctx.db.reading() as session:
        trail_before = int(await session.scalar(select(func.count()).select_from(AuditEvent)) or 0)
    with pytest.raises(Forbidden):
        await privacy.erase(ctx, anna, customer)

    await privacy.erase(ctx, sanne, customer)

    async with ctx.db.reading() as session:
        record = await session.get(Customer, customer)
        assert record is not None and record.erased_at is not None
        assert (record.name, record.company, record.owner_id) == (privacy.ERASED_NAME, None, None)
        for model in (ContactPoint, Address, Note, SearchTerm, TicketComment):
            assert await session.scalar(select(func.count()).select_from(model)) == 0, model.__name__
        conversation = await session.get(Conversation, call)
        assert conversation is not None and conversation.customer_id == customer, "still counted as the customer's"
        assert (conversation.from_address, conversation.to_address, conversation.disposition_note) == ("", "", None)
        assert conversation.disposition == "resolved", "the outcome stays for the figures"
        assert (conversation.rating, conversation.rating_comment) == (4, None), "the score stays, their words go"
        [ticket] = await session.scalars(select(Ticket))
        assert (ticket.subject, ticket.description) == (privacy.ERASED_NAME, "")
        trail = list(await session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        assert len(trail) == trail_before + 1, "every entry kept, and the erasure recorded"
        assert trail[-1].action == audit.ERASE and trail[-1].agent_id == sanne
        assert all(e.detail is None for e in trail if e.entity == audit.CUSTOMER), "no detail text left"
        assert (await search.search(session, "Piet")).customers == []
        assert (await search.search(session, PHONE)).customers == []
        assert await customers.match(session, customers.ContactKind.PHONE, PHONE, "NL") == []

    data = await privacy.export(ctx, sanne, customer, "json")
    text = json.dumps(data)
    for personal in ("Piet", "Jansen", "0612345678", "612345678", "piet@", "Dorpsstraat", "gluten", "daughter",
                     "invoice", "Order 7"):
        assert personal not in text, personal

    # The next call from the same number is an unknown caller, not the erased person.
    await worked_call(ctx, anna, "c2")
    async with ctx.db.reading() as session:
        newest = await session.scalar(select(Conversation).order_by(Conversation.id.desc()).limit(1))
    assert newest is not None and newest.customer_id is None


async def test_erasing_is_refused_while_a_conversation_is_live_and_an_erased_record_takes_nothing_new(
        ctx: Context) -> None:
    anna, sanne, customer, _ = await piet(ctx)
    await routing.set_status(ctx, anna, "available")
    live = await conversations.arrive(ctx, channel=Channel.CALL, external_id="c9", from_address=PHONE, to_address="")
    await offers.accept(ctx, anna, live.conversation_id)
    with pytest.raises(Conflict, match="going on"):
        await privacy.erase(ctx, sanne, customer)
    async with ctx.db.reading() as session:
        assert (await session.get(Customer, customer)).name == "Piet Jansen"  # type: ignore[union-attr]
    await conversations.hang_up(ctx, Channel.CALL, "c9")
    await wrapup.finish(ctx, anna, live.conversation_id, "resolved")

    await privacy.erase(ctx, sanne, customer)

    with pytest.raises(Conflict, match="erased"):
        await privacy.erase(ctx, sanne, customer)
    with pytest.raises(Conflict, match="erased"):
        await notes.add(ctx, anna, "Piet again", customer_id=customer)
    with pytest.raises(Conflict, match="erased"):
        await profile.add_contact_point(ctx, anna, customer, "phone", PHONE)
    with pytest.raises(Conflict, match="erased"):
        await tickets.open_ticket(ctx, anna, Draft(subject="x", customer_id=customer))
    async with ctx.db.reading() as session:
        [ticket] = await session.scalars(select(Ticket))
    with pytest.raises(Conflict, match="erased"):
        await tickets.comment(ctx, anna, ticket.id, "Called Piet on 0612345678")
    with pytest.raises(Conflict, match="erased"):
        await tickets.update(ctx, anna, ticket.id, ticket.version, {"subject": "Refund for Piet Jansen"})
    async with ctx.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(TicketComment)) == 0


async def test_erasing_finds_unlinked_calls_however_the_number_was_written_but_spares_a_shared_number(
        ctx: Context) -> None:
    anna, sanne, customer, _ = await piet(ctx)
    klaas = await add_customer(ctx.db, "Klaas de Boer", phones=("020-7654321",))
    await add_customer(ctx.db, "Piet's colleague", phones=("0201234000",))
    async with ctx.db.transaction() as session:
        session.add(ContactPoint(customer_id=customer, kind=customers.ContactKind.PHONE, value="020 1234000",
                                 normalized="+31201234000"))  # the bakery's switchboard, shared
    for call_id, number in (("u1", "+31 6 12345678"), ("u2", "0031612345678"), ("u3", "0201234000"),
                            ("u4", "0207654321")):
        await worked_call(ctx, anna, call_id, note=f"Secret of {call_id}")
        async with ctx.db.transaction() as session:  # as if nobody had been recognised on the call
            await session.execute(update(Conversation).where(Conversation.external_id == call_id)
                                  .values(customer_id=None, from_address=number))
            await session.execute(update(Note).where(Note.body == f"Secret of {call_id}").values(customer_id=None))

    await privacy.erase(ctx, sanne, customer)

    async with ctx.db.reading() as session:
        left = dict((await session.execute(select(Conversation.external_id, Conversation.from_address).where(
            Conversation.external_id.in_(["u1", "u2", "u3", "u4"])))).all())
    assert left["u1"] == left["u2"] == "", "Piet's own number, however it was written"
    async with ctx.db.reading() as session:
        kept_notes = set(await session.scalars(select(Note.body)))
    assert kept_notes == {"Secret of u3", "Secret of u4"}, "the notes of his unlinked calls went with them"
    assert left["u3"] == "0201234000", "the shared switchboard number is not his alone"
    assert left["u4"] == "0207654321", "Klaas's calls are not touched"
    assert klaas


async def test_an_agent_with_the_page_open_sees_it_close_when_the_customer_is_erased(ctx: Context) -> None:
    anna, sanne, customer, _ = await piet(ctx)
    await profile.open_page(ctx, anna, customer)
    await privacy.erase(ctx, sanne, customer)
    async with ctx.db.reading() as session:
        view = await agent_view(session, anna, "NL")
    assert view.customer_page is None


async def test_retention_anonymises_old_conversations_and_deletes_old_notes_and_audit_entries(ctx: Context) -> None:
    anna, _, customer, old_call = await piet(ctx)
    long_ago = utcnow() - timedelta(days=400)
    async with ctx.db.transaction() as session:
        await session.execute(update(Conversation).where(Conversation.id == old_call)
                              .values(created_at=long_ago, closed_at=long_ago))
        await session.execute(update(Note).values(created_at=long_ago))
        await session.execute(update(AuditEvent).values(at=long_ago))
    recent_call = await worked_call(ctx, anna, "c2", note="Fresh note")
    keep = privacy.Retention(conversations=365, notes=365, audit=365)

    done = await privacy.sweep(ctx, keep)

    assert (done.conversations, done.notes) == (1, 1), "the old call took its own note along"
    assert done.audit > 0
    async with ctx.db.reading() as session:
        old = await session.get(Conversation, old_call)
        recent = await session.get(Conversation, recent_call)
        assert old is not None and old.redacted_at is not None and old.from_address == "" and old.disposition
        assert recent is not None and recent.redacted_at is None and recent.from_address == PHONE
        assert [n.body for n in await session.scalars(select(Note))] == ["Fresh note"]
        assert await session.scalar(select(func.min(AuditEvent.at))) > long_ago  # type: ignore[operator]
        assert (await session.get(Customer, customer)).name == "Piet Jansen"  # type: ignore[union-attr]
    again = await privacy.sweep(ctx, keep)
    assert (again.conversations, again.notes, again.audit) == (0, 0, 0), "what was done is not done twice"
    assert (await privacy.sweep(ctx, privacy.Retention())).conversations == 0, "unset keeps everything"


async def test_retention_works_in_batches(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    for n in range(5):
        await worked_call(ctx, anna, f"b{n}")
    async with ctx.db.transaction() as session:
        await session.execute(update(Conversation).values(created_at=utcnow() - timedelta(days=40),
                                                          closed_at=utcnow() - timedelta(days=40)))
    monkeypatch.setattr(privacy, "SWEEP_BATCH", 2)
    done = await privacy.sweep(ctx, privacy.Retention(conversations=30))
    assert done.conversations == 5
    async with ctx.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)
                                    .where(Conversation.redacted_at.is_(None))) == 0


def test_retention_settings_are_days_or_unset() -> None:
    from console.errors import InvalidInput
    from console.settings import load

    base = {"CONSOLE_SECRET_KEY": "x"}
    settings = load({**base, "CONSOLE_RETAIN_CONVERSATIONS_DAYS": "730", "CONSOLE_RETAIN_AUDIT_DAYS": "3650"})
    assert (settings.retain_conversations_days, settings.retain_notes_days, settings.retain_audit_days) == (
        730, None, 3650)
    with pytest.raises(InvalidInput, match="CONSOLE_RETAIN_NOTES_DAYS"):
        load({**base, "CONSOLE_RETAIN_NOTES_DAYS": "0"})
