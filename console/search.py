"""Finding customers from one search box: by name, company, phone number or email address.

Every customer has search terms: the folded words of their name and company, the digits of each
phone number (international and national), and each email address and its domain. A query is
split the same way and each part must be the start of one of the customer's terms. The lookup
is a range over the term index, so it stays fast at a million customers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers
from sqlalchemy import and_, delete, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased, selectinload
from sqlalchemy.sql import ColumnElement, Select

from console.models import ContactKind, ContactPoint, Customer, SearchTerm

MAX_TERM = 100
MAX_QUERY = 200
MIN_PREFIX = 2
RESULTS = 20
TOP = chr(0x10FFFF)  # sorts after every character, bytewise too
PHONE_QUERY = re.compile(r"^\+?[\d\s\-()./]+$")
WORD = re.compile(r"[^\W_]+")
DOMAIN = re.compile(r"^[\w-]+(\.[\w-]+)*\.[a-zA-Z]{2,}$")


def fold(text: str) -> str:
    """Lower case without accents: "Ölçer" and "olcer" are the same search."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def words(text: str | None) -> list[str]:
    return WORD.findall(fold(text or ""))


def phone_terms(e164: str) -> list[str]:
    digits = e164.lstrip("+")
    found = [digits]
    try:
        national = phonenumbers.format_number(phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return found
    national_digits = re.sub(r"\D", "", national)
    if national_digits and national_digits != digits:
        found.append(national_digits)
    return found


def customer_terms(name: str, company: str | None, points: Iterable[tuple[str, str]]) -> set[str]:
    """The terms of one customer; `points` are (kind, normalized value) pairs."""
    terms = set(words(name)) | set(words(company))
    for kind, normalized in points:
        if kind == ContactKind.PHONE.value:
            terms.update(phone_terms(normalized))
        elif kind == ContactKind.EMAIL.value:
            terms.add(normalized)
            terms.add(normalized.partition("@")[2])
    return {term[:MAX_TERM] for term in terms if term}


def query_terms(query: str) -> list[str]:
    """The prefixes a query asks for; empty when the query is too short to search."""
    text = query.strip()[:MAX_QUERY]
    if "@" in text or DOMAIN.match(text):
        term = fold(text)
        return [term[:MAX_TERM]] if len(term) >= MIN_PREFIX else []
    digits = re.sub(r"\D", "", text)
    if PHONE_QUERY.match(text) and len(digits) >= 3:
        if text.startswith("00"):
            digits = digits[2:]
        return [digits[:MAX_TERM]]
    found = [w[:MAX_TERM] for w in words(text)]
    return sorted(set(found), key=len, reverse=True)[:5] if any(len(w) >= MIN_PREFIX for w in found) else []


def _starts(column: InstrumentedAttribute[str], prefix: str) -> ColumnElement[bool]:
    return and_(column >= prefix, column < prefix + TOP)


def matching_ids(terms: list[str], limit: int = RESULTS) -> Select[int]:
    """Ids of customers having every prefix in `terms`: a range scan on the longest, then lookups."""
    first = aliased(SearchTerm)
    query = select(first.customer_id).where(_starts(first.term, terms[0]))
    for prefix in terms[1:]:
        other = aliased(SearchTerm)
        query = query.where(exists().where(other.customer_id == first.customer_id,
                                           _starts(other.term, prefix)))
    # In index order, so the scan stops after `limit` rows: the closest terms ("jan" before
    # "jansen") come first. A customer may appear under two terms; callers drop the repeats.
    return query.order_by(first.term, first.customer_id).limit(limit)


@dataclass
class Found:
    customers: list[Customer]
    more: bool


async def search(session: AsyncSession, query: str, limit: int = RESULTS) -> Found:
    """Customers matching the query, closest terms first, with their contact points."""
    terms = query_terms(query)
    if not terms:
        return Found([], False)
    ids = list(dict.fromkeys(await session.scalars(matching_ids(terms, 3 * limit + 1))))
    if not ids:
        return Found([], False)
    rows = {c.id: c for c in await session.scalars(
        select(Customer).where(Customer.id.in_(ids[:limit])).options(selectinload(Customer.contact_points)))}
    return Found([rows[i] for i in ids[:limit] if i in rows], len(ids) > limit)


async def reindex(session: AsyncSession, customer_ids: Iterable[int]) -> None:
    """Recompute the search terms of these customers from what is stored now."""
    ids = sorted(set(customer_ids))
    if not ids:
        return
    await session.flush()
    await session.execute(delete(SearchTerm).where(SearchTerm.customer_id.in_(ids)))
    names = {row.id: (row.name, row.company) for row in
             await session.execute(select(Customer.id, Customer.name, Customer.company).where(Customer.id.in_(ids)))}
    points: dict[int, list[tuple[str, str]]] = {}
    for customer_id, kind, normalized in await session.execute(
            select(ContactPoint.customer_id, ContactPoint.kind, ContactPoint.normalized)
            .where(ContactPoint.customer_id.in_(ids))):
        points.setdefault(customer_id, []).append((kind.value, normalized))
    rows = [{"customer_id": customer_id, "term": term} for customer_id, (name, company) in names.items()
            for term in customer_terms(name, company, points.get(customer_id, []))]
    if rows:
        await session.execute(insert(SearchTerm), rows)
