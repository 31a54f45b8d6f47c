"""Clean data: likely duplicate customers, and merging two records into one without losing anything.

A pair is a likely duplicate when it shares a phone number or email address and the names are
alike, or when the names (and companies) are very alike (rapidfuzz). A shared switchboard number
or info@ address with different names is not a duplicate: colleagues share those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

from rapidfuzz import fuzz
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from console import audit, customers
from console.auth import require_supervisor
from console.errors import Conflict, InvalidInput, NotFound
from console.i18n import N_
from console.models import (
    Address,
    Agent,
    ContactKind,
    ContactPoint,
    Contract,
    Conversation,
    Customer,
    CustomerMerge,
    Note,
    SearchTerm,
    Ticket,
    utcnow,
)
from console.ports import Context
from console.search import TOP, fold, reindex, words

NAME_ALIKE = 88  # token-sorted similarity (0-100) from which two names count as the same person
NAME_ALIKE_WITH_CONTACT = 70  # lower when they also share a phone number or email address
CANDIDATES = 200
MAX_VALUE = Decimal("999999999999.99")  # what Numeric(14, 2) holds


@dataclass(frozen=True)
class Reason:
    """Why two records look alike: a message (translated where it is shown) and its values."""

    text: str
    values: tuple[tuple[str, str | int], ...] = ()

    def __str__(self) -> str:
        return self.text % dict(self.values)


SHARED = {ContactKind.PHONE: N_("same phone number %(value)s"), ContactKind.EMAIL: N_("same email address %(value)s"),
          ContactKind.VISITOR: N_("same visitor %(value)s")}


def _shared(kind: ContactKind, value: str) -> Reason:
    return Reason(SHARED[kind], (("value", value),))


def _similar(score: int) -> Reason:
    return Reason(N_("similar name (%(score)s%%)"), (("score", score),))


SAME_COMPANY = Reason(N_("same company"))


@dataclass
class Duplicate:
    customer: Customer
    score: int
    reasons: list[Reason] = field(default_factory=list)


def name_score(a: str, b: str) -> int:
    return int(fuzz.token_sort_ratio(fold(a), fold(b)))


def _company_clash(a: Customer, b: Customer) -> bool:
    if not a.company or not b.company:
        return False
    return fuzz.token_sort_ratio(fold(a.company), fold(b.company)) < 60


def judge(a: Customer, b: Customer, shared: list[Reason]) -> Duplicate | None:
    """Whether b is likely the same customer as a, with why."""
    score = name_score(a.name, b.name)
    if _company_clash(a, b):
        return None
    if shared and score >= NAME_ALIKE_WITH_CONTACT:
        return Duplicate(b, min(100, score + 10), [*shared, _similar(score)])
    if score >= NAME_ALIKE:
        reasons = [_similar(score)]
        if a.company and b.company:
            reasons.append(SAME_COMPANY)
        return Duplicate(b, score, reasons)
    return None


async def duplicates_of(session: AsyncSession, customer_id: int, limit: int = 10) -> list[Duplicate]:
    """Customers that are probably the same as this one, most likely first."""
    target = await session.scalar(select(Customer).where(Customer.id == customer_id)
                                  .options(selectinload(Customer.contact_points)))
    if target is None:
        raise NotFound("That customer does not exist.", field="customer_id")
    shared: dict[int, list[Reason]] = {}
    for point in target.contact_points:
        for other in await session.scalars(select(ContactPoint.customer_id).where(
                ContactPoint.kind == point.kind, ContactPoint.normalized == point.normalized,
                ContactPoint.customer_id != customer_id).limit(CANDIDATES)):
            shared.setdefault(other, []).append(_shared(point.kind, point.value))
    similar: set[int] = set()
    for word in sorted(words(target.name), key=len, reverse=True)[:2]:
        prefix = word[:4]
        similar.update(await session.scalars(select(SearchTerm.customer_id).where(
            and_(SearchTerm.term >= prefix, SearchTerm.term < prefix + TOP),
            SearchTerm.customer_id != customer_id).limit(CANDIDATES)))
    ids = set(shared) | similar
    if not ids:
        return []
    found = []
    for person in await session.scalars(select(Customer).where(Customer.id.in_(ids))
                                        .options(selectinload(Customer.contact_points))):
        verdict = judge(target, person, shared.get(person.id, []))
        if verdict is not None:
            found.append(verdict)
    found.sort(key=lambda d: (-d.score, d.customer.id))
    return found[:limit]


@dataclass
class Pair:
    first: Customer
    second: Customer
    score: int
    reasons: list[Reason]


RECENT = 300  # the newest customers are checked for similar names: new records are where duplicates are born
SHARED_GROUP = 4  # a number or address shared by more customers than this is a switchboard or info@


async def duplicate_list(session: AsyncSession, limit: int = 50) -> list[Pair]:
    """Likely duplicate pairs across all customers, newest first considered.

    Two sources of candidates, each bounded so the page stays fast at a million customers:
    contact points that two to four customers share (the newest groups first), and customers
    with a similar name among the newest records, found through the search-term index.
    """
    candidates: dict[tuple[int, int], list[Reason]] = {}
    groups = await session.execute(
        select(ContactPoint.kind, ContactPoint.normalized)
        .group_by(ContactPoint.kind, ContactPoint.normalized)
        .having(func.count(ContactPoint.customer_id.distinct()).between(2, SHARED_GROUP))
        .order_by(func.max(ContactPoint.customer_id).desc()).limit(limit * 4))
    for kind, normalized in groups.all():
        owners = list(await session.scalars(select(ContactPoint.customer_id).where(
            ContactPoint.kind == kind, ContactPoint.normalized == normalized).order_by(ContactPoint.customer_id)))
        for i, first in enumerate(owners):
            for second in owners[i + 1:]:
                candidates.setdefault((first, second), []).append(_shared(kind, normalized))
    for customer_id, name in await session.execute(
            select(Customer.id, Customer.name).order_by(Customer.id.desc()).limit(RECENT)):
        for word in sorted(words(name), key=len, reverse=True)[:1]:
            prefix = word[:4]
            for other in await session.scalars(select(SearchTerm.customer_id).where(
                    and_(SearchTerm.term >= prefix, SearchTerm.term < prefix + TOP),
                    SearchTerm.customer_id != customer_id).limit(CANDIDATES // 4)):
                candidates.setdefault((min(customer_id, other), max(customer_id, other)), [])
    ids = {i for pair in candidates for i in pair}
    people = {c.id: c for c in await session.scalars(select(Customer).where(Customer.id.in_(ids)))} if ids else {}
    pairs = []
    for (first, second), reasons in candidates.items():
        if first in people and second in people:
            verdict = judge(people[first], people[second], reasons)
            if verdict is not None:
                pairs.append(Pair(people[first], people[second], verdict.score, verdict.reasons))
    pairs.sort(key=lambda p: (-p.score, -p.second.id, p.first.id))
    return pairs[:limit]


def _snapshot(customer: Customer, points: list[ContactPoint], addresses: list[Address]) -> str:
    return json.dumps({
        "id": customer.id, "name": customer.name, "company": customer.company,
        "tier": customer.tier.value if customer.tier else None, "owner_id": customer.owner_id,
        "language": customer.language, "segment": customer.segment,
        "lifetime_value": str(customer.lifetime_value), "consent_email": customer.consent_email,
        "consent_phone": customer.consent_phone, "created_at": customer.created_at.isoformat(),
        "contact_points": [{"kind": p.kind.value, "value": p.value, "normalized": p.normalized} for p in points],
        "addresses": [{"kind": x.kind.value, "street": x.street, "postal_code": x.postal_code, "city": x.city,
                       "country": x.country} for x in addresses],
    }, ensure_ascii=False)


async def merge(ctx: Context, agent_id: int, keep_id: int, merge_id: int) -> CustomerMerge:
    """Fold customer `merge_id` into `keep_id`: everything of it moves over, the merge is recorded.

    Contact points the kept record already has are not doubled; empty fields of the kept record
    are filled from the other; lifetime values add up. The kept record's consents stay as they
    are: consent is never assumed from another record.
    """
    if keep_id == merge_id:
        raise InvalidInput("A customer cannot be merged with itself. Choose another record.", field="merge_id")
    async with ctx.transaction() as session:
        await require_supervisor(session, agent_id,
                                 N_("Only supervisors merge customers; ask one to merge these two."))
        locked = {c.id: c for c in await session.scalars(
            select(Customer).where(Customer.id.in_(sorted((keep_id, merge_id)))).order_by(Customer.id)
            .with_for_update())}
        keep, gone = locked.get(keep_id), locked.get(merge_id)
        if keep is None or gone is None:
            raise NotFound("That customer does not exist (any more); perhaps it was merged already.",
                           field="merge_id")
        if keep.erased_at is not None or gone.erased_at is not None:
            raise Conflict(customers.ERASED, field="merge_id")
        told = await customers.viewers(session, merge_id)
        points = list(await session.scalars(select(ContactPoint).where(ContactPoint.customer_id == merge_id)))
        addresses = list(await session.scalars(select(Address).where(Address.customer_id == merge_id)))
        record = CustomerMerge(kept_id=keep_id, merged_id=merge_id, merged_name=gone.name,
                               snapshot=_snapshot(gone, points, addresses), agent_id=agent_id, at=utcnow())
        session.add(record)
        known: set[tuple[object, str]] = {(kind, value) for kind, value in await session.execute(
            select(ContactPoint.kind, ContactPoint.normalized).where(ContactPoint.customer_id == keep_id))}
        for point in points:
            if (point.kind, point.normalized) in known:
                await session.delete(point)
            else:
                point.customer_id = keep_id
                known.add((point.kind, point.normalized))
        for model in (Conversation, Note, Ticket, Contract, Address):
            await session.execute(update(model).where(model.customer_id == merge_id)
                                  .values(customer_id=keep_id))
        await session.execute(update(Agent).where(Agent.viewing_customer_id == merge_id)
                              .values(viewing_customer_id=keep_id))
        # Earlier merges into the record that goes away now point at the one kept.
        await session.execute(update(CustomerMerge).where(CustomerMerge.kept_id == merge_id).values(kept_id=keep_id))
        for name in ("company", "tier", "owner_id", "language", "segment"):
            if getattr(keep, name) is None and getattr(gone, name) is not None:
                setattr(keep, name, getattr(gone, name))
        keep.lifetime_value = min(keep.lifetime_value + gone.lifetime_value, MAX_VALUE)
        keep.version += 1
        keep.updated_at = utcnow()
        await session.flush()
        await session.execute(delete(Customer).where(Customer.id == merge_id))
        audit.record(session, agent_id, audit.MERGE, audit.CUSTOMER, keep_id, f"merged customer {merge_id} into it")
        audit.record(session, agent_id, audit.MERGE, audit.CUSTOMER, merge_id, f"merged into customer {keep_id}")
        await reindex(session, [keep_id])
        await customers.changed(session, keep_id, also=told | {agent_id})
    return record
