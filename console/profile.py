"""The customer page: base data, profile, behaviour, contracts and the timeline, and editing them.

Edits carry the version of the record the agent saw; when a colleague saved in between, the
edit is refused with their name instead of silently overwriting their change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from console import audit, changes, customers
from console.errors import Conflict, InvalidInput, NotFound
from console.i18n import N_
from console.models import (
    Address,
    AddressKind,
    Agent,
    AuditEvent,
    Channel,
    ContactKind,
    ContactPoint,
    Contract,
    ContractStatus,
    Conversation,
    Customer,
    Direction,
    Mail,
    Message,
    Note,
    Ticket,
    utcnow,
)
from console.ports import Context
from console.search import reindex
from console.tickets import is_overdue

TIMELINE_LENGTH = 40
LANGUAGES = ("nl", "en", "de", "fr")


@dataclass
class Event:
    """One line of the timeline across channels: a contact, a note or a ticket."""

    at: datetime
    kind: str  # call, chat, mail, sms, note, ticket
    text: str
    who: str | None = None
    ref: int | None = None
    overdue: bool = False


@dataclass
class CustomerPage:
    customer: Customer
    owner: Agent | None
    addresses: list[Address]
    contracts: list[Contract]
    counts: dict[str, int]
    last_contact: datetime | None
    timeline: list[Event]
    tickets: list[Ticket]
    missing: list[str]
    unsent: list[Mail] = field(default_factory=list)  # mails to them that have not gone out (yet)


def missing(customer: Customer, addresses: list[Address] | None = None) -> list[str]:
    """What a complete record has and this one lacks, as labels to show."""
    kinds = {p.kind for p in customer.contact_points}
    gaps = []
    if ContactKind.EMAIL not in kinds:
        gaps.append(N_("no email address"))
    if ContactKind.PHONE not in kinds:
        gaps.append(N_("no phone number"))
    if customer.owner_id is None:
        gaps.append(N_("no owner"))
    if customer.tier is None:
        gaps.append(N_("no tier"))
    if addresses is not None and not addresses:
        gaps.append(N_("no address"))
    return gaps


async def page(session: AsyncSession, agent_id: int, customer_id: int, *, audited: bool = True) -> CustomerPage:
    """Everything the customer page shows; opening it is recorded in the audit trail (a live
    refresh of a page already open is not a new view)."""
    customer = await session.scalar(select(Customer).where(Customer.id == customer_id).options(
        selectinload(Customer.contact_points), selectinload(Customer.owner)))
    if customer is None:
        raise NotFound("That customer does not exist.", field="customer_id")
    addresses = list(await session.scalars(select(Address).where(Address.customer_id == customer_id)
                                           .order_by(Address.id)))
    contracts = list(await session.scalars(select(Contract).where(Contract.customer_id == customer_id)
                                           .order_by(Contract.starts_on.desc(), Contract.id.desc())))
    counts = {channel.value: 0 for channel in Channel}
    for channel, count in await session.execute(
            select(Conversation.channel, func.count()).where(Conversation.customer_id == customer_id,
                                                             Conversation.parent_id.is_(None))
            .group_by(Conversation.channel)):
        counts[channel.value] = int(count)
    last = await session.scalar(select(func.max(Conversation.created_at))
                                .where(Conversation.customer_id == customer_id))
    all_tickets = list(await session.scalars(select(Ticket).where(Ticket.customer_id == customer_id)
                                             .order_by(Ticket.created_at.desc()).limit(TIMELINE_LENGTH)))
    if audited:
        audit.record(session, agent_id, audit.VIEW, audit.CUSTOMER, customer_id)
    # Mails to the customer that did not go out, wherever they were written (a new mail from this
    # page, a reply in a conversation that is over): shown here until they are sent.
    unsent = list(await session.scalars(
        select(Mail).join(Message, Message.id == Mail.message_id).join(Conversation, Conversation.id ==
                                                                       Message.conversation_id)
        .where(Conversation.customer_id == customer_id, Mail.direction == Direction.OUT,
               Mail.send_state.in_(("queued", "failed")), Mail.last_error.is_not(None))
        .order_by(Mail.id.desc()).limit(20)))
    return CustomerPage(customer, customer.owner, addresses, contracts, counts, last,
                        await timeline(session, customer_id, all_tickets), all_tickets,
                        missing(customer, addresses), unsent)


async def timeline(session: AsyncSession, customer_id: int, tickets: list[Ticket]) -> list[Event]:
    events: list[Event] = []
    for c in await session.scalars(select(Conversation).where(Conversation.customer_id == customer_id)
                                   .options(selectinload(Conversation.agent))
                                   .order_by(Conversation.created_at.desc()).limit(TIMELINE_LENGTH)):
        events.append(Event(c.created_at, c.channel.value, c.subject or c.disposition or c.state.value,
                            c.agent.name if c.agent else None, c.id))
    for n in await session.scalars(select(Note).where(Note.customer_id == customer_id).options(selectinload(Note.agent))
                                   .order_by(Note.created_at.desc()).limit(TIMELINE_LENGTH)):
        events.append(Event(n.created_at, "note", n.body, n.agent.name if n.agent else None, n.id))
    for t in tickets:
        events.append(Event(t.created_at, "ticket", t.subject, None, t.id, is_overdue(t)))
    events.sort(key=lambda e: e.at, reverse=True)
    return events[:TIMELINE_LENGTH]


REQUIRED = {"name": N_("Name is required."), "street": N_("Street is required."), "city": N_("City is required."),
            "title": N_("A contract needs a title.")}
TOO_LONG = N_("This text is longer than %(limit)s characters.")


def _text(raw: str, name: str, limit: int, *, required: bool = False) -> str | None:
    text = raw.strip()
    if required and not text:
        raise InvalidInput(REQUIRED[name], field=name)
    if len(text) > limit:
        raise InvalidInput(TOO_LONG, field=name, limit=limit)
    return text or None


async def _locked(session: AsyncSession, customer_id: int, version: int) -> Customer:
    customer = await customers.for_change(session, customer_id)
    if customer.version != version:
        who = await session.scalar(
            select(Agent.name).join(AuditEvent, AuditEvent.agent_id == Agent.id)
            .where(AuditEvent.entity == audit.CUSTOMER, AuditEvent.entity_id == customer_id,
                   AuditEvent.action != audit.VIEW).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(1))
        raise Conflict("%(who)s changed this customer while you were editing. Nothing was saved; "
                       "look at their change and edit again.", field="version", who=who or "A colleague")
    return customer


@dataclass
class Changes:
    """The editable profile of a customer, as a form sends it."""

    name: str
    company: str = ""
    tier: str = ""
    segment: str = ""
    language: str = ""
    owner_id: int | None = None
    lifetime_value: str = "0"
    consent_email: bool = False
    consent_phone: bool = False


async def update(ctx: Context, agent_id: int, customer_id: int, version: int, changes: Changes) -> Customer:
    name = _text(changes.name, "name", 200, required=True)
    company = _text(changes.company, "company", 200)
    segment = _text(changes.segment, "segment", 100)
    language = (changes.language or "").strip().lower() or None
    if language is not None and language not in LANGUAGES:
        raise InvalidInput("Language must be one of %(allowed)s.", field="language", allowed=", ".join(LANGUAGES))
    tier = customers.parse_tier(changes.tier)
    value = customers.parse_money(changes.lifetime_value)
    async with ctx.transaction() as session:
        customer = await _locked(session, customer_id, version)
        owner = await session.get(Agent, changes.owner_id) if changes.owner_id is not None else None
        if changes.owner_id is not None and owner is None:
            raise NotFound("That colleague does not exist.", field="owner_id")
        if owner is not None and owner.deactivated_at is not None and owner.id != customer.owner_id:
            raise InvalidInput("That colleague is deactivated; choose another.", field="owner_id")
        new: dict[str, object] = {"name": name, "company": company, "segment": segment, "language": language,
                                  "tier": tier, "owner_id": changes.owner_id, "lifetime_value": Decimal(value),
                                  "consent_email": changes.consent_email, "consent_phone": changes.consent_phone}
        changed = [key for key, val in new.items() if getattr(customer, key) != val]
        for key in changed:
            setattr(customer, key, new[key])
        if changed:
            customer.version += 1
            customer.updated_at = utcnow()
            audit.record(session, agent_id, audit.UPDATE, audit.CUSTOMER, customer_id, ", ".join(changed))
            await reindex(session, [customer_id])
        await customers.changed(session, customer_id, also={agent_id})
    return customer


async def add_contact_point(ctx: Context, agent_id: int, customer_id: int, kind: str, value: str) -> None:
    try:
        which = ContactKind(kind)
    except ValueError:
        raise InvalidInput("Choose phone or email.", field="kind") from None
    normalized = customers.normalize(which, value, ctx.region)
    if normalized is None or which is ContactKind.VISITOR:
        raise InvalidInput(customers.BAD_CONTACT[which], field=which.value, value=value)
    async with ctx.transaction() as session:
        customer = await customers.for_change(session, customer_id)
        known = await session.scalar(select(ContactPoint.id).where(
            ContactPoint.customer_id == customer_id, ContactPoint.kind == which, ContactPoint.normalized == normalized))
        if known is not None:
            raise Conflict("%(value)s is already on this customer.", field=which.value, value=value)
        session.add(ContactPoint(customer_id=customer_id, kind=which, value=value.strip(), normalized=normalized))
        customer.version += 1
        audit.record(session, agent_id, audit.UPDATE, audit.CUSTOMER, customer_id, f"added {which.value}")
        await reindex(session, [customer_id])
        await customers.changed(session, customer_id, also={agent_id})


async def add_address(ctx: Context, agent_id: int, customer_id: int, *, kind: str, street: str, postal_code: str,
                      city: str, country: str) -> None:
    try:
        which = AddressKind(kind or "postal")
    except ValueError:
        raise InvalidInput("Choose postal, billing or delivery.", field="kind") from None
    street_text = _text(street, "street", 200, required=True)
    city_text = _text(city, "city", 100, required=True)
    code = (_text(postal_code, "postal_code", 20) or "").upper()
    land = (country or "NL").strip().upper()
    if len(land) != 2 or not land.isalpha():
        raise InvalidInput("Country is a two-letter code such as NL or BE.", field="country")
    async with ctx.transaction() as session:
        customer = await customers.for_change(session, customer_id)
        session.add(Address(customer_id=customer_id, kind=which, street=street_text or "", postal_code=code,
                            city=city_text or "", country=land))
        customer.version += 1
        audit.record(session, agent_id, audit.UPDATE, audit.CUSTOMER, customer_id, f"added {which.value} address")
        await customers.changed(session, customer_id, also={agent_id})


def _day(raw: str, name: str) -> date | None:
    text = raw.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("%(value)s is not a date (use YYYY-MM-DD).", field=name, value=raw) from None


async def add_contract(ctx: Context, agent_id: int, customer_id: int, *, title: str, status: str, starts_on: str,
                       ends_on: str, terms: str, contract_id: int | None = None) -> None:
    """Add a contract or agreement to the customer, or change the one with `contract_id`."""
    title_text = _text(title, "title", 200, required=True)
    try:
        state = ContractStatus(status or "active")
    except ValueError:
        raise InvalidInput("Choose quote, active, ended or cancelled.", field="status") from None
    start, end = _day(starts_on, "starts_on"), _day(ends_on, "ends_on")
    if start and end and end < start:
        raise InvalidInput("The end date is before the start date.", field="ends_on")
    terms_text = _text(terms, "terms", 10_000) or ""
    async with ctx.transaction() as session:
        customer = await customers.for_change(session, customer_id)
        values = {"title": title_text or "", "status": state, "starts_on": start, "ends_on": end, "terms": terms_text}
        if contract_id is None:
            session.add(Contract(customer_id=customer_id, **values))
        else:
            contract = await session.get(Contract, contract_id, with_for_update=True)
            if contract is None or contract.customer_id != customer_id:
                raise NotFound("This contract is not on this customer (any more).")
            for name, value in values.items():
                setattr(contract, name, value)
            contract.updated_at = utcnow()
        customer.version += 1
        audit.record(session, agent_id, audit.UPDATE, audit.CUSTOMER, customer_id,
                     "added contract" if contract_id is None else f"changed contract {contract_id}")
        await customers.changed(session, customer_id, also={agent_id})


async def open_page(ctx: Context, agent_id: int, customer_id: int | None) -> None:
    """The agent opens a customer's page (None closes it); their live view follows that customer."""
    async with ctx.transaction() as session:
        if customer_id is not None:
            if await session.get(Customer, customer_id) is None:
                raise NotFound("That customer does not exist.", field="customer_id")
            audit.record(session, agent_id, audit.VIEW, audit.CUSTOMER, customer_id)
        agent = await session.get(Agent, agent_id)
        if agent is None:
            raise NotFound("Agent not found.")
        agent.viewing_customer_id = customer_id
        changes.emit(session, lambda: changes.PageOpened(agent_id, customer_id))


async def remove_detail(ctx: Context, agent_id: int, customer_id: int, kind: str, detail_id: int) -> None:
    """Remove a contact point or address that is wrong or no longer used; the audit keeps what it was."""
    async with ctx.transaction() as session:
        customer = await session.get(Customer, customer_id, with_for_update=True)
        found: ContactPoint | Address | None = (
            await session.get(ContactPoint, detail_id) if kind == "contact-point"
            else await session.get(Address, detail_id))
        if customer is None or found is None or found.customer_id != customer_id:
            raise NotFound("This detail is not on this customer (any more).")
        shown = found.value if isinstance(found, ContactPoint) else f"{found.street}, {found.city}"
        await session.delete(found)
        customer.version += 1
        audit.record(session, agent_id, audit.UPDATE, audit.CUSTOMER, customer_id, f"removed {shown}")
        await reindex(session, [customer_id])
        await customers.changed(session, customer_id, also={agent_id})
