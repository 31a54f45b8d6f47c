"""Importing customers from CSV: valid rows are stored, bad rows reported by line, re-imports update.

Columns (header required, comma or semicolon separated, UTF-8 with or without BOM):
name, company, phones and emails (several separated by ";"), tier (A/B/C), lifetime_value,
owner (an agent's email), language (a language code such as nl or en).

A row updates the customer it matches by normalised email, else by normalised phone; a row
matching several customers is reported rather than guessed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from babel import Locale, UnknownLocaleError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from console.customers import normalize, parse_money, parse_tier
from console.db import Database
from console.errors import InvalidInput
from console.models import Agent, ContactKind, ContactPoint, Customer, Tier
from console.search import reindex

COLUMNS = ("name", "company", "phones", "emails", "tier", "lifetime_value", "owner", "language")
MAX_BYTES = 200 * 1024 * 1024


@dataclass
class Report:
    created: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Row:
    line: int
    name: str
    company: str | None
    points: list[tuple[ContactKind, str, str]]
    tier: Tier | None
    lifetime_value: Decimal | None
    owner: str | None
    language: str | None


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.replace(",", ";").split(";") if part.strip()]


def _language(raw: str) -> str | None:
    code = raw.strip().lower()
    if not code:
        return None
    try:
        Locale.parse(code)
    except (ValueError, UnknownLocaleError):
        raise InvalidInput(f"language {raw!r} is not a language code such as nl or en", field="language") from None
    return code[:8]


def parse_row(line: int, values: dict[str, str], region: str) -> Row:
    """A validated row; InvalidInput says what is wrong with it."""
    name = values.get("name", "").strip()
    if not name:
        raise InvalidInput("name is empty", field="name")
    if len(name) > 200:
        raise InvalidInput("name is longer than 200 characters", field="name")
    company = values.get("company", "").strip()
    if len(company) > 200:
        raise InvalidInput("company is longer than 200 characters", field="company")
    points: list[tuple[ContactKind, str, str]] = []
    for kind, column in ((ContactKind.PHONE, "phones"), (ContactKind.EMAIL, "emails")):
        for raw in _split(values.get(column, "")):
            normalized = normalize(kind, raw, region)
            if normalized is None:
                raise InvalidInput(f"{raw!r} is not a valid {kind.value}", field=column)
            if (kind, normalized) not in {(k, n) for k, _, n in points}:
                points.append((kind, raw, normalized))
    lifetime = values.get("lifetime_value", "").strip()
    try:
        tier = parse_tier(values.get("tier"))
        value = parse_money(lifetime) if lifetime else None
    except InvalidInput as exc:
        raise InvalidInput(exc.message.rstrip("."), field=exc.field) from None
    owner = values.get("owner", "").strip().lower() or None
    return Row(line, name, company or None, points, tier, value, owner, _language(values.get("language", "")))


def _rows(text: str) -> Iterator[tuple[int, dict[str, str]]]:
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip().lower().replace(" ", "_") for h in next(reader)]
    except StopIteration:
        raise InvalidInput("the file is empty; it needs a header line", field="file") from None
    if "name" not in header:
        raise InvalidInput(f"the header needs a 'name' column; it has: {', '.join(header)}", field="file")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InvalidInput(f"unknown columns {', '.join(unknown)}; known are {', '.join(COLUMNS)}", field="file")
    start = reader.line_num + 1
    for cells in reader:
        if any(cell.strip() for cell in cells):
            if len(cells) > len(header):
                yield start, {"__error__": f"{len(cells)} fields where the header has {len(header)}"}
            else:
                yield start, dict(zip(header, cells, strict=False))
        start = reader.line_num + 1


async def _match(session: AsyncSession, row: Row) -> list[int]:
    for kind in (ContactKind.EMAIL, ContactKind.PHONE):
        values = [n for k, _, n in row.points if k is kind]
        if values:
            ids = list(await session.scalars(
                select(ContactPoint.customer_id).where(ContactPoint.kind == kind, ContactPoint.normalized.in_(values))
                .distinct()))
            if ids:
                return ids
    return []


async def _store(session: AsyncSession, row: Row, owner_id: int | None) -> bool:
    """Create or update the customer of `row`; True when created."""
    ids = await _match(session, row)
    if len(ids) > 1:
        raise InvalidInput("matches several customers (ids %(ids)s); give a phone or email that belongs to one",
                           field="phones", ids=", ".join(map(str, sorted(ids))))
    if ids:
        customer = await session.get(Customer, ids[0])
        assert customer is not None
        created = False
    else:
        customer = Customer(name=row.name, lifetime_value=Decimal("0"))
        session.add(customer)
        await session.flush()
        created = True
    customer.name = row.name
    customer.company = row.company if row.company is not None else customer.company
    customer.tier = row.tier if row.tier is not None else customer.tier
    customer.lifetime_value = row.lifetime_value if row.lifetime_value is not None else customer.lifetime_value
    customer.owner_id = owner_id if row.owner else customer.owner_id
    customer.language = row.language or customer.language
    known: set[tuple[ContactKind, str]] = set((await session.execute(
        select(ContactPoint.kind, ContactPoint.normalized).where(ContactPoint.customer_id == customer.id))).all())
    for kind, raw, normalized in row.points:
        if (kind, normalized) not in known:
            session.add(ContactPoint(customer_id=customer.id, kind=kind, value=raw, normalized=normalized))
            known.add((kind, normalized))
    await reindex(session, [customer.id])
    return created


async def import_text(db: Database, text: str, *, region: str) -> Report:
    report = Report()
    async with db.transaction() as session:
        owners = {email: agent_id for agent_id, email in (await session.execute(select(Agent.id, Agent.email))).all()}
        for line, values in _rows(text):
            if "__error__" in values:
                report.errors.append((line, values["__error__"]))
                continue
            try:
                row = parse_row(line, values, region)
                if row.owner and row.owner not in owners:
                    raise InvalidInput(f"owner {row.owner!r} is not an agent's email address", field="owner")
                created = await _store(session, row, owners.get(row.owner or ""))
            except InvalidInput as exc:
                report.errors.append((line, exc.message))
                continue
            if created:
                report.created += 1
            else:
                report.updated += 1
    return report


async def import_file(db: Database, path: Path, *, region: str) -> Report:
    if path.stat().st_size > MAX_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_BYTES // 1024 // 1024} MB; split it", field="file")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8", field="file") from None
    return await import_text(db, text, region=region)
