"""Customers: normalising contact points, matching a caller, and the picture shown in a pop."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import phonenumbers
from sqlalchemy import Select, bindparam, func, or_, select, union, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from console import changes
from console.errors import Conflict, InvalidInput, NotFound
from console.i18n import N_
from console.models import (
    OPEN_TICKET_STATUSES,
    Agent,
    ContactKind,
    ContactPoint,
    Contract,
    ContractStatus,
    Conversation,
    Customer,
    Handoff,
    HandoffState,
    Note,
    Offer,
    OfferState,
    State,
    Ticket,
    Tier,
)
from console.search import reindex

FINISHED = (State.CLOSED, State.ABANDONED, State.TRANSFERRED)
ANONYMOUS = {"", "anonymous", "unknown", "private", "restricted", "unavailable"}
HISTORY_LENGTH = 10
BAD_CONTACT = {
    ContactKind.PHONE: N_("%(value)s is not a phone number."),
    ContactKind.EMAIL: N_("%(value)s is not an email address."),
    ContactKind.VISITOR: N_("%(value)s is not a visitor id."),
}
NOTES_SHOWN = 5


def normalize_phone(raw: str, region: str) -> str | None:
    """E.164 form of `raw` read in `region`, or None when it is not a possible phone number."""
    text = raw.strip()
    if text.lower() in ANONYMOUS:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if text.isdigit() and not phonenumbers.is_valid_number(number):
        # Phone systems often send international numbers without "+" (Zammad's 493055571600).
        try:
            international = phonenumbers.parse("+" + text)
        except phonenumbers.NumberParseException:
            international = None
        if international is not None and phonenumbers.is_valid_number(international):
            number = international
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


NOT_IN_AN_ADDRESS = frozenset(',;<>"()[]\\:')


def normalize_email(raw: str) -> str | None:
    """One plain address (jan@example.nl), lower-cased; None for anything else. A list of
    addresses, a display name, spaces or control characters are not one address, and must never
    reach a To header as if they were."""
    text = raw.strip().lower()
    local, at, domain = text.partition("@")
    if not at or not local or "." not in domain or "@" in domain or len(text) > 320:
        return None
    if any(ch in NOT_IN_AN_ADDRESS or ch.isspace() or not ch.isprintable() for ch in text):
        return None
    return text


def normalize(kind: ContactKind, raw: str, region: str) -> str | None:
    if kind is ContactKind.PHONE:
        return normalize_phone(raw.removeprefix("whatsapp:"), region)  # WhatsApp's whatsapp:+31...
    if kind is ContactKind.EMAIL:
        return normalize_email(raw)
    visitor = raw.strip()
    return visitor[:320] or None


def format_phone(raw: str, region: str | None = None) -> str:
    """A number as people read it (+31 6 12345678); what is not a number is shown as given."""
    normalized = normalize_phone(raw, region) if region else raw
    try:
        number = phonenumbers.parse(normalized or raw)
    except phonenumbers.NumberParseException:
        return raw
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


async def match(session: AsyncSession, kind: ContactKind, raw: str, region: str) -> list[int]:
    """Ids of the customers having this contact point, oldest first (empty when none or unusable)."""
    normalized = normalize(kind, raw, region)
    if normalized is None:
        return []
    # Core on the session's connection: a column read needs none of the ORM's result handling, which
    # cost more than the indexed lookup itself. It does not flush first; what the lookup reads
    # (contact points) is written by transactions of their own.
    connection = await session.connection()
    return list((await connection.execute(_MATCH, {"kind": kind, "normalized": normalized})).scalars())


# Built once: matching runs for every contact that arrives.
_MATCH = (select(ContactPoint.customer_id)
          .where(ContactPoint.kind == bindparam("kind"), ContactPoint.normalized == bindparam("normalized"))
          .distinct().order_by(ContactPoint.customer_id).limit(20))


def parse_tier(raw: str | None) -> Tier | None:
    text = (raw or "").strip().upper()
    if not text:
        return None
    try:
        return Tier(text)
    except ValueError:
        raise InvalidInput("Tier must be A, B or C, not %(value)s.", field="tier", value=raw) from None


def parse_money(raw: str | None) -> Decimal:
    text = (raw or "").strip().replace("€", "").replace(" ", "")
    if not text:
        return Decimal("0")
    if "," in text and "." in text:
        text = text.replace(".", "").replace(",", ".") if text.rfind(",") > text.rfind(".") else text.replace(",", "")
    elif "," in text:
        text = text.replace(",", ".")
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise InvalidInput("Lifetime value must be a number, not %(value)s.", field="lifetime_value",
                           value=raw) from None
    if not value.is_finite() or value < 0 or value >= Decimal("1e12"):
        raise InvalidInput("Lifetime value must be between 0 and 999,999,999,999, not %(value)s.",
                           field="lifetime_value", value=raw)
    return value.quantize(Decimal("0.01"))


async def create(
    session: AsyncSession,
    *,
    name: str,
    region: str,
    company: str = "",
    phones: list[str] | None = None,
    emails: list[str] | None = None,
    tier: str | None = None,
) -> Customer:
    """A new customer with validated contact points; InvalidInput names the offending field."""
    name = name.strip()
    if not name:
        raise InvalidInput("Name is required.", field="name")
    if len(name) > 200:
        raise InvalidInput("Name is longer than 200 characters.", field="name")
    if len(company.strip()) > 200:
        raise InvalidInput("Company is longer than 200 characters.", field="company")
    points: list[ContactPoint] = []
    for kind, values in ((ContactKind.PHONE, phones or []), (ContactKind.EMAIL, emails or [])):
        for value in values:
            if not value.strip():
                continue
            normalized = normalize(kind, value, region)
            if normalized is None:
                raise InvalidInput(BAD_CONTACT[kind], field=kind.value, value=value)
            if all(p.normalized != normalized or p.kind != kind for p in points):
                points.append(ContactPoint(kind=kind, value=value.strip(), normalized=normalized))
    customer = Customer(name=name, company=company.strip() or None, tier=parse_tier(tier),
                        lifetime_value=Decimal("0"), contact_points=points)
    session.add(customer)
    await session.flush()
    await reindex(session, [customer.id])
    return customer


@dataclass
class HistoryItem:
    id: int
    channel: str
    direction: str
    state: str
    disposition: str | None
    at: object


@dataclass
class Picture:
    """Everything a screen-pop shows of one customer."""

    customer: Customer
    owner: Agent | None
    history: list[Conversation]
    open_tickets: list[Ticket]
    notes: list[Note]
    conversation_count: int
    contracts: list[Contract] = field(default_factory=list)  # the newest agreements, active first


# Built once with bind parameters: the push worker reads these for every pop. Five statements:
# the customer with owner and contact points joined, the history with its full count beside it
# (a window function counts before LIMIT applies), open tickets, notes with their authors, and
# contracts.
_CUSTOMER: Select[Customer] = (select(Customer).where(Customer.id == bindparam("customer"))
             .options(joinedload(Customer.owner), joinedload(Customer.contact_points)))
_EARLIER = (Conversation.customer_id == bindparam("customer"),
            Conversation.id.not_in(bindparam("exclude", expanding=True)), Conversation.state.in_(FINISHED))
_HISTORY = (select(Conversation, func.count().over()).where(*_EARLIER)
            .order_by(Conversation.created_at.desc(), Conversation.id.desc()).limit(HISTORY_LENGTH))
_TICKETS = (select(Ticket).where(Ticket.customer_id == bindparam("customer"), Ticket.status.in_(OPEN_TICKET_STATUSES))
            .order_by(Ticket.created_at.desc()).limit(10))
# The customer's recent notes but those of the contact being popped, which its pop lists apart.
_NOTES = (select(Note).where(Note.customer_id == bindparam("customer"),
                             or_(Note.conversation_id.is_(None),
                                 Note.conversation_id.not_in(bindparam("exclude", expanding=True))))
          .options(joinedload(Note.agent)).order_by(Note.created_at.desc(), Note.id.desc()).limit(NOTES_SHOWN))
_CONTRACTS = (select(Contract).where(Contract.customer_id == bindparam("customer"))
              .order_by((Contract.status == ContractStatus.ACTIVE).desc(), Contract.starts_on.desc(),
                        Contract.id.desc()).limit(2))


async def picture(session: AsyncSession, customer_id: int, *, exclude: Collection[int] = ()) -> Picture | None:
    """The customer's picture; `exclude` leaves the contact being popped (and its earlier parts,
    after a handoff) out of its own history."""
    by_customer = {"customer": customer_id}
    customer = (await session.scalars(_CUSTOMER, by_customer)).unique().one_or_none()
    if customer is None:
        return None
    # Earlier contacts that are over: what the pop shows of them no longer changes while it is up
    # (conversation_ended tells the screens when one more is over).
    rows = (await session.execute(_HISTORY, {**by_customer, "exclude": list(exclude) or [0]})).all()
    history = [conversation for conversation, _ in rows]
    count = rows[0][1] if rows else 0
    tickets = list(await session.scalars(_TICKETS, by_customer))
    notes = list(await session.scalars(_NOTES, {**by_customer, "exclude": list(exclude) or [0]}))
    contracts = list(await session.scalars(_CONTRACTS, by_customer))
    return Picture(customer, customer.owner, history, tickets, notes, int(count), contracts)


async def brief(session: AsyncSession, ids: list[int]) -> list[Customer]:
    """Customers by id with their contact points, for choosing among several matches."""
    if not ids:
        return []
    rows = await session.scalars(
        select(Customer).where(Customer.id.in_(ids)).options(selectinload(Customer.contact_points))
        .order_by(Customer.name)
    )
    return list(rows)


def _viewers() -> Any:
    customer: Any = bindparam("customer")
    handling = select(Conversation.agent_id).where(
        Conversation.customer_id == customer, Conversation.agent_id.is_not(None),
        Conversation.state.in_((State.OFFERED, State.ACTIVE, State.WRAP_UP)))
    offered = select(Offer.agent_id).join(Conversation, Conversation.id == Offer.conversation_id).where(
        Conversation.customer_id == customer, Offer.state == OfferState.PENDING)
    warm = select(Handoff.to_agent_id).join(Conversation, Conversation.id == Handoff.conversation_id).where(
        Conversation.customer_id == customer, Handoff.state == HandoffState.PENDING)
    looking = select(Agent.id).where(Agent.viewing_customer_id == customer)
    return union(handling, offered, warm, looking)


_VIEWERS = _viewers()  # built once: every ended contact asks it


async def viewers(session: AsyncSession, customer_id: int | None) -> set[int]:
    """Agents whose live view shows this customer: in a pop, a handoff, a wrap-up or their open page."""
    if customer_id is None:
        return set()
    rows = await session.scalars(_VIEWERS, {"customer": customer_id})
    return {agent_id for agent_id in rows if agent_id is not None}


ERASED = N_("This customer was erased on request; nothing can be added to the record.")


async def for_change(session: AsyncSession, customer_id: int, field: str = "customer_id") -> Customer:
    """The customer under its row lock, to change or add to; NotFound when there is none, Conflict
    when the person was erased (console.privacy): an erased record takes nothing new."""
    customer = await session.get(Customer, customer_id, with_for_update=True)
    if customer is None:
        raise NotFound("That customer does not exist.", field=field)
    if customer.erased_at is not None:
        raise Conflict(ERASED, field=field)
    return customer


async def changed(session: AsyncSession, customer_id: int | None, also: Iterable[int] = ()) -> None:
    """Something shown of the customer changed: bump its revision under the row lock (the version
    of every fragment that shows the customer) and tell those who have the customer on screen."""
    if customer_id is None:
        return
    await session.flush()
    revision = await session.scalar(update(Customer).where(Customer.id == customer_id)
                                    .values(revision=Customer.revision + 1).returning(Customer.revision)
                                    .execution_options(synchronize_session=False))
    if revision is None:
        return
    agents = frozenset(await viewers(session, customer_id) | set(also))
    changes.emit(session, lambda: changes.CustomerChanged(customer_id, revision, agents))


async def conversation_ended(session: AsyncSession, conversation_id: int, customer_id: int | None) -> None:
    """One more contact of the customer is over: screens that show the customer list it now."""
    if customer_id is None:
        return
    await session.flush()
    if await viewers(session, customer_id):
        await changed(session, customer_id)
