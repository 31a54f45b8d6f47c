"""Duplicates and merging: found by shared contact points and similar names; a merge loses nothing."""

import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from console import conversations, merge, notes, search, tickets
from console.errors import Forbidden, InvalidInput, NotFound
from console.models import (
    Address,
    AddressKind,
    AuditEvent,
    Channel,
    ContactPoint,
    Contract,
    Conversation,
    Customer,
    CustomerMerge,
    Note,
    Ticket,
)
from console.ports import Context
from console.tickets import Draft
from tests.helpers import add_agent, add_customer


async def test_likely_duplicates_of_one_customer(ctx: Context) -> None:
    piet = await add_customer(ctx.db, "Piet Jansen", phones=("0612345678",), emails=("piet@example.nl",))
    same_phone = await add_customer(ctx.db, "P. Jansen", phones=("+31 6 12345678",))
    typo = await add_customer(ctx.db, "Piet Janssen", emails=("pj@other.nl",))
    colleague = await add_customer(ctx.db, "Karin de Wit", phones=("0612345678",))  # shares a number only
    await add_customer(ctx.db, "Jan Smit")
    async with ctx.db.transaction() as session:
        found = await merge.duplicates_of(session, piet)
        pairs = await merge.duplicate_list(session)
    ids = [d.customer.id for d in found]
    assert set(ids) == {same_phone, typo}
    assert colleague not in ids, "a shared number with a different name is not a duplicate"
    assert any("same phone" in str(r) for d in found if d.customer.id == same_phone for r in d.reasons)
    assert {(p.first.id, p.second.id) for p in pairs} == {(piet, same_phone), (piet, typo)}, "numbers and names"


async def test_merge_moves_everything_and_keeps_a_record(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", role="supervisor")
    keep = await add_customer(ctx.db, "Piet Jansen", phones=("0612345678",), lifetime_value="100.50")
    gone = await add_customer(ctx.db, "Piet Janssen", phones=("0612345678",), emails=("piet@example.nl",),
                              company="Bakkerij", lifetime_value="20")
    await conversations.arrive(ctx, channel=Channel.MAIL, external_id="<m1@x>", from_address="piet@example.nl",
                               to_address="service@us.nl")
    await notes.add(ctx, anna, "Old note", customer_id=gone)
    await tickets.open_ticket(ctx, anna, Draft(subject="Old ticket", customer_id=gone))
    async with ctx.db.transaction() as session:
        session.add(Contract(customer_id=gone, title="Service contract 2026", terms="30 days net"))
        session.add(Address(customer_id=gone, kind=AddressKind.POSTAL, street="Dorpsstraat 1", postal_code="1234 AB",
                            city="Urk", country="NL"))

    record = await merge.merge(ctx, anna, keep, gone)

    async with ctx.db.transaction() as session:
        kept = await session.get(Customer, keep)
        assert kept is not None and await session.get(Customer, gone) is None
        points = sorted((p.kind.value, p.normalized) for p in
                        await session.scalars(select(ContactPoint).where(ContactPoint.customer_id == keep)))
        counts = {model.__name__: await session.scalar(select(func.count()).select_from(model)
                                                       .where(model.customer_id == keep))
                  for model in (Conversation, Note, Ticket, Contract, Address)}
        stored = await session.get(CustomerMerge, record.id)
        trail = list(await session.scalars(select(AuditEvent.entity_id).where(AuditEvent.action == "merge")))
        found = [c.id for c in (await search.search(session, "piet@example")).customers]
    assert points == [("email", "piet@example.nl"), ("phone", "+31612345678")], "no doubled phone number"
    assert counts == {"Conversation": 1, "Note": 1, "Ticket": 1, "Contract": 1, "Address": 1}
    assert kept.company == "Bakkerij" and kept.lifetime_value == Decimal("120.50")
    assert stored is not None and stored.merged_id == gone and stored.agent_id == anna
    assert json.loads(stored.snapshot)["name"] == "Piet Janssen"
    assert sorted(trail) == sorted([keep, gone])
    assert found == [keep], "the merged email now finds the kept customer"


async def test_merge_refuses_itself_unknown_customers_and_agents_who_are_not_supervisors(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", role="supervisor")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    keep = await add_customer(ctx.db, "Piet Jansen")
    other = await add_customer(ctx.db, "Piet Janssen")
    with pytest.raises(Forbidden, match="Only supervisors"):
        await merge.merge(ctx, bram, keep, other)
    with pytest.raises(InvalidInput, match="itself"):
        await merge.merge(ctx, anna, keep, keep)
    with pytest.raises(NotFound):
        await merge.merge(ctx, anna, keep, keep + 100)
    async with ctx.db.transaction() as session:
        assert await session.get(Customer, keep) is not None and await session.get(Customer, other) is not None
        assert list(await session.scalars(select(CustomerMerge))) == []
