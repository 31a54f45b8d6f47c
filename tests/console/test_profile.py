"""The customer page and editing it: validation, what is missing, concurrent edits refused, audit."""

import pytest
from sqlalchemy import select

from console import profile
from console.errors import Conflict, InvalidInput
from console.models import AuditEvent, Customer, Tier
from console.ports import Context
from console.profile import Changes
from tests.helpers import add_agent, add_customer


async def test_edit_the_profile_and_see_what_is_missing(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    customer = await add_customer(ctx.db, "Piet Jansen", phones=("0612345678",))
    async with ctx.db.transaction() as session:
        page = await profile.page(session, anna, customer)
    assert page.missing == ["no email address", "no owner", "no tier", "no address"]
    await profile.update(ctx, anna, customer, 1, Changes(name="Piet Jansen", tier="a", segment="Retail",
                                                         owner_id=anna, language="nl", lifetime_value="1.250,00",
                                                         consent_email=True))
    await profile.add_contact_point(ctx, anna, customer, "email", "Piet@Example.nl")
    await profile.add_address(ctx, anna, customer, kind="postal", street="Dorpsstraat 1", postal_code="1234 ab",
                              city="Urk", country="nl")
    await profile.add_contract(ctx, anna, customer, title="Onderhoud", status="active", starts_on="2026-01-01",
                               ends_on="2026-12-31", terms="Betaling binnen 30 dagen")
    async with ctx.db.transaction() as session:
        page = await profile.page(session, anna, customer)
        views = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == customer)))
    assert page.missing == []
    assert page.customer.tier is Tier.A and page.customer.consent_email and page.owner is not None
    assert page.addresses[0].postal_code == "1234 AB" and page.contracts[0].title == "Onderhoud"
    assert views.count("view") == 2 and "update" in views


async def test_bad_edits_are_refused_with_the_field_and_change_nothing(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    customer = await add_customer(ctx.db, "Piet Jansen")
    bad = [
        (Changes(name=" "), "name"),
        (Changes(name="x" * 201), "name"),
        (Changes(name="Piet", tier="D"), "tier"),
        (Changes(name="Piet", lifetime_value="lots"), "lifetime_value"),
        (Changes(name="Piet", language="xx"), "language"),
    ]
    for changes, field in bad:
        with pytest.raises(InvalidInput) as error:
            await profile.update(ctx, anna, customer, 1, changes)
        assert error.value.field == field
    with pytest.raises(InvalidInput, match="not a phone number"):
        await profile.add_contact_point(ctx, anna, customer, "phone", "call me")
    with pytest.raises(InvalidInput, match="before the start"):
        await profile.add_contract(ctx, anna, customer, title="X", status="active", starts_on="2026-05-01",
                                   ends_on="2026-01-01", terms="")
    await profile.update(ctx, bram, customer, 1, Changes(name="Piet Jansen sr."))
    with pytest.raises(Conflict, match="Bram changed this customer"):
        await profile.update(ctx, anna, customer, 1, Changes(name="Pieter Jansen"))
    async with ctx.db.transaction() as session:
        stored = await session.get(Customer, customer)
    assert stored is not None and stored.name == "Piet Jansen sr." and stored.version == 2


async def test_a_wrong_contact_point_or_address_can_be_removed(ctx: Context) -> None:
    from console import search
    from console.models import Address, ContactPoint

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    other = await add_customer(ctx.db, "Karin de Wit", phones=("0687654321",))
    customer = await add_customer(ctx.db, "Piet Jansen", phones=("0612345678",))
    await profile.add_address(ctx, anna, customer, kind="postal", street="Dorpsstraat 1", postal_code="",
                              city="Urk", country="NL")
    async with ctx.db.transaction() as session:
        point = await session.scalar(select(ContactPoint.id).where(ContactPoint.customer_id == customer))
        address = await session.scalar(select(Address.id).where(Address.customer_id == customer))
        other_point = await session.scalar(select(ContactPoint.id).where(ContactPoint.customer_id == other))
    assert point and address and other_point
    from console.errors import NotFound

    with pytest.raises(NotFound):
        await profile.remove_detail(ctx, anna, customer, "contact-point", other_point)
    await profile.remove_detail(ctx, anna, customer, "contact-point", point)
    await profile.remove_detail(ctx, anna, customer, "address", address)
    async with ctx.db.transaction() as session:
        page = await profile.page(session, anna, customer)
        found = (await search.search(session, "0612345678")).customers
    assert page.customer.contact_points == [] and page.addresses == [] and found == []


async def test_a_contract_can_be_changed_but_only_on_its_own_customer(ctx: Context) -> None:
    from console.errors import NotFound
    from console.models import Contract, ContractStatus

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    customer = await add_customer(ctx.db, "Piet Jansen")
    other = await add_customer(ctx.db, "Karin de Wit")
    await profile.add_contract(ctx, anna, customer, title="Onderhoud", status="quote", starts_on="2026-01-01",
                               ends_on="", terms="")
    async with ctx.db.transaction() as session:
        contract_id = await session.scalar(select(Contract.id))
    assert contract_id is not None
    with pytest.raises(NotFound):
        await profile.add_contract(ctx, anna, other, title="Onderhoud", status="active", starts_on="", ends_on="",
                                   terms="", contract_id=contract_id)
    await profile.add_contract(ctx, anna, customer, title="Onderhoud 2026", status="active", starts_on="2026-01-01",
                               ends_on="2026-12-31", terms="Betaling binnen 30 dagen", contract_id=contract_id)
    async with ctx.db.transaction() as session:
        contracts = list(await session.scalars(select(Contract)))
    assert len(contracts) == 1 and contracts[0].status is ContractStatus.ACTIVE
    assert contracts[0].title == "Onderhoud 2026" and contracts[0].terms == "Betaling binnen 30 dagen"
