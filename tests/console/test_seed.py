"""The seed: realistic customers whose phone numbers the console can match, with consistent history."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import phonenumbers
import pytest
from sqlalchemy import func, select

from console import customers
from console.db import Database
from console.errors import InvalidInput
from console.migrations import upgrade
from console.models import (
    ContactKind,
    ContactPoint,
    Conversation,
    Customer,
    Note,
    State,
    Ticket,
    Tier,
)
from console.seed import seed
from tests.helpers import add_agent


async def _agents(db: Database) -> set[int]:
    return {
        await add_agent(db, "anna@seed.example", "Anna de Vries", "201"),
        await add_agent(db, "chloe@seed.example", "Chloe Smith", "203", role="supervisor"),
    }


async def test_customers_have_valid_phone_numbers_that_match_them(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        agents = await _agents(db)
        summary = await seed(db, customers=50, region="NL", rng_seed=1)
        assert summary.startswith("seeded 50 customers, ")
        async with db.transaction() as session:
            people = list(await session.scalars(select(Customer)))
            points = list(await session.scalars(select(ContactPoint)))
            assert len(people) == 50
            for person in people:
                assert person.name.strip() and person.language in ("nl", "en")
                assert person.tier in (Tier.A, Tier.B, Tier.C)
                if person.tier is Tier.A:
                    assert person.owner_id in agents
            phones = [p for p in points if p.kind is ContactKind.PHONE]
            assert len(phones) >= 40
            for point in phones:
                number = phonenumbers.parse(point.normalized)
                assert phonenumbers.is_valid_number(number), point.value
                assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == point.normalized
                assert customers.normalize_phone(point.value, "NL") == point.normalized
                assert point.customer_id in await customers.match(session, ContactKind.PHONE, point.value, "NL")
            emails = [p for p in points if p.kind is ContactKind.EMAIL]
            assert len(emails) >= 35
            for point in emails:
                assert point.normalized == customers.normalize_email(point.value)
                assert point.customer_id in await customers.match(session, ContactKind.EMAIL, point.value, "NL")
    finally:
        await db.close()


async def test_a_switchboard_number_matches_several_colleagues(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        await seed(db, customers=50, region="NL", rng_seed=2)
        async with db.transaction() as session:
            owners: dict[str, set[int]] = defaultdict(set)
            points = await session.scalars(select(ContactPoint).where(ContactPoint.kind == ContactKind.PHONE))
            for point in points:
                owners[point.normalized].add(point.customer_id)
            shared = [number for number, ids in owners.items() if len(ids) >= 2]
            assert shared, "no phone number is shared by colleagues"
            for number in shared:
                matched = await customers.match(session, ContactKind.PHONE, number, "NL")
                assert set(matched) == owners[number]
                companies = set(await session.scalars(select(Customer.company).where(Customer.id.in_(matched))))
                assert len(companies) == 1 and None not in companies
    finally:
        await db.close()


async def test_history_is_consistent(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        agents = await _agents(db)
        await seed(db, customers=50, region="NL", rng_seed=3)
        async with db.transaction() as session:
            conversations = list(await session.scalars(select(Conversation)))
            created = {c.id: c.created_at for c in await session.scalars(select(Customer))}
            assert len(conversations) >= 50
            assert len({(c.channel, c.external_id) for c in conversations}) == len(conversations)
            for c in conversations:
                assert c.created_at.utcoffset() is not None
                assert c.created_at >= created[c.customer_id]  # type: ignore[index]
                assert c.state in (State.CLOSED, State.ABANDONED)
                if c.state is State.CLOSED:
                    assert c.closed_at is not None and c.abandoned_at is None and c.disposition
                    assert c.answered_at is not None and c.agent_id in agents
                    assert c.offered_at is not None and c.created_at <= c.offered_at <= c.answered_at <= c.closed_at
                else:
                    assert c.abandoned_at is not None and c.closed_at is None and c.answered_at is None
                    assert c.created_at <= c.abandoned_at
                assert c.from_address and c.to_address
            notes = list(await session.scalars(select(Note)))
            by_id = {c.id: c for c in conversations}
            for note in notes:
                assert note.body and note.customer_id in created
                if note.conversation_id is not None:
                    assert by_id[note.conversation_id].customer_id == note.customer_id
                    assert note.created_at >= by_id[note.conversation_id].created_at
            tickets = list(await session.scalars(select(Ticket)))
            assert tickets
            for ticket in tickets:
                assert ticket.subject and ticket.customer_id in created
                assert ticket.updated_at >= ticket.created_at
    finally:
        await db.close()


async def test_seeding_twice_adds_more(database_url: str) -> None:
    db = Database(database_url)
    try:
        await seed(db, customers=30, region="NL", rng_seed=4)
        await seed(db, customers=30, region="NL", rng_seed=4)
        async with db.transaction() as session:
            assert await session.scalar(select(func.count()).select_from(Customer)) == 60
            # The id sequences were moved on, so the console can still add customers itself.
            added = await customers.create(session, name="After Seed", region="NL", phones=["020 555 0101"])
            assert added.id > 60
    finally:
        await db.close()


async def test_same_seed_gives_same_customers(tmp_path: Path) -> None:
    names = []
    for run in ("one", "two"):
        url = f"sqlite+aiosqlite:///{tmp_path / run}.db"
        await asyncio.to_thread(upgrade, url)
        db = Database(url)
        try:
            await seed(db, customers=20, region="NL", rng_seed=5)
            async with db.transaction() as session:
                names.append(list(await session.scalars(select(Customer.name).order_by(Customer.id))))
        finally:
            await db.close()
    assert names[0] == names[1]


async def test_zero_and_negative(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        assert (await seed(db, customers=0, region="NL")).startswith("seeded 0 customers")
        with pytest.raises(InvalidInput):
            await seed(db, customers=-1, region="NL")
    finally:
        await db.close()


async def test_seeded_customers_are_searchable_and_have_addresses_and_contracts(sqlite_url: str) -> None:
    from console import search
    from console.models import Address, Contract

    db = Database(sqlite_url)
    try:
        await _agents(db)
        await seed(db, customers=200, region="NL", rng_seed=3)
        async with db.transaction() as session:
            people = list(await session.scalars(select(Customer).limit(20)))
            for person in people:
                found = await search.search(session, person.name, limit=50)
                assert person.id in [c.id for c in found.customers], person.name
            addresses = await session.scalar(select(func.count()).select_from(Address))
            contracts = list(await session.scalars(select(Contract)))
    finally:
        await db.close()
    assert 130 <= int(addresses or 0) < 200, "most customers have an address, not all"
    assert contracts and all(c.starts_on and c.ends_on and c.starts_on < c.ends_on for c in contracts)
