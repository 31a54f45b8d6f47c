"""Small helpers the tests share: seeding agents and customers, logging in over HTTP."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx

from console import auth
from console.db import Database
from console.models import ContactKind, ContactPoint, Customer, Tier

PASSWORD = "correct horse battery"


async def add_agent(db: Database, email: str, name: str, extension: str | None = None, **extra: str) -> int:
    async with db.transaction() as session:
        agent = await auth.create_agent(session, email=email, name=name, password=PASSWORD, extension=extension,
                                        **extra)
        return agent.id


async def add_customer(db: Database, name: str, *, phones: tuple[str, ...] = (), emails: tuple[str, ...] = (),
                       company: str | None = None, tier: Tier | None = None, owner_id: int | None = None,
                       lifetime_value: str = "0") -> int:
    from console.customers import normalize_email, normalize_phone
    from console.search import reindex

    async with db.transaction() as session:
        customer = Customer(name=name, company=company, tier=tier, owner_id=owner_id,
                            lifetime_value=Decimal(lifetime_value))
        session.add(customer)
        await session.flush()
        for phone in phones:
            session.add(ContactPoint(customer_id=customer.id, kind=ContactKind.PHONE, value=phone,
                                     normalized=normalize_phone(phone, "NL")))
        for email in emails:
            session.add(ContactPoint(customer_id=customer.id, kind=ContactKind.EMAIL, value=email,
                                     normalized=normalize_email(email)))
        await reindex(session, [customer.id])
        return customer.id


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def page_token(html: str) -> str:
    match = re.search(r'"X-CSRF-Token": "([^"]+)"', html)
    assert match, "no X-CSRF-Token in the page"
    return match.group(1)


async def log_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Log in through the form like a browser; return the page's CSRF token for htmx requests."""
    page = await client.get("/login")
    response = await client.post("/login", data={"email": email, "password": password,
                                                 "csrf_token": form_token(page.text)})
    assert response.status_code == 303, response.text
    agent_page = await client.get("/")
    assert agent_page.status_code == 200
    return page_token(agent_page.text)
