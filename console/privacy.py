"""Personal data under control (GDPR): export what the console holds about a customer, erase a
customer on request, and keep conversations, notes and the audit trail no longer than configured.

- **Export** (supervisors and admins): everything about one customer as one document: the record,
  contact points, addresses, contracts, every conversation with its events, messages, notes and
  handoffs, the customer's own notes, tickets with comments and changes, merges into them, and who
  viewed or changed any of it. The export itself is recorded in the audit trail.
- **Erase** (supervisors and admins), refused while a conversation of the customer is live: the
  record keeps its id (so counts and reports stay right) but loses its name, company, profile,
  contact points, addresses, contracts and search terms; its conversations lose their numbers and
  subjects, their messages, notes, handoff notes and event details; its tickets lose their text.
  The audit trail keeps every entry (who, what, when) without its detail text, and records the
  erasure. A new call from the same number no longer finds the person.
- **Retention** (a sweep every node runs, and `python -m console retention`): conversations over
  for longer than CONSOLE_RETAIN_CONVERSATIONS_DAYS are anonymised as above (kept for the
  figures), notes older than CONSOLE_RETAIN_NOTES_DAYS and audit entries older than
  CONSOLE_RETAIN_AUDIT_DAYS are deleted. Each unset: kept for ever.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import phonenumbers
from sqlalchemy import ColumnElement, Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from console import audit, changes, customers
from console.auth import require_supervisor
from console.errors import Conflict, NotFound
from console.i18n import N_
from console.models import (
    Address,
    Agent,
    Attachment,
    AuditEvent,
    ChatVisitor,
    ContactKind,
    ContactPoint,
    Contract,
    Conversation,
    ConversationEvent,
    Customer,
    CustomerMerge,
    Handoff,
    Mail,
    MailThread,
    Message,
    Note,
    SearchTerm,
    State,
    Ticket,
    TicketChange,
    TicketComment,
    utcnow,
)
from console.ports import Context

log = logging.getLogger("console.privacy")

ERASED_NAME = "Erased customer"
# A conversation in one of these is over; anything else is live (queued, ringing, active, wrap-up).
OVER = (State.CLOSED, State.ABANDONED, State.TRANSFERRED)
SWEEP_BATCH = 500


def _plain(value: Any) -> Any:
    """A value as JSON has it."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row(obj: object, *names: str) -> dict[str, Any]:
    return {name: _plain(getattr(obj, name)) for name in names}


async def _names(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {agent_id: name for agent_id, name in
            await session.execute(select(Agent.id, Agent.name).where(Agent.id.in_(wanted)))}


# The customer's rows are named by subqueries, never by lists of ids: a customer with tens of
# thousands of conversations would pass the drivers' limits on bound parameters.
def _conversations_of(customer_id: int) -> Select[int]:
    return select(Conversation.id).where(Conversation.customer_id == customer_id)


def _tickets_of(customer_id: int) -> ColumnElement[bool]:
    return or_(Ticket.customer_id == customer_id, Ticket.conversation_id.in_(_conversations_of(customer_id)))


def _ticket_ids_of(customer_id: int) -> Select[int]:
    return select(Ticket.id).where(_tickets_of(customer_id))


def _about(customer_id: int) -> ColumnElement[bool]:
    """Audit entries about the customer (and the records merged into it), its conversations and its
    tickets."""
    merged = select(CustomerMerge.merged_id).where(CustomerMerge.kept_id == customer_id)
    return or_((AuditEvent.entity == audit.CUSTOMER) & (AuditEvent.entity_id == customer_id),
               (AuditEvent.entity == audit.CUSTOMER) & AuditEvent.entity_id.in_(merged),
               (AuditEvent.entity == audit.CONVERSATION) & AuditEvent.entity_id.in_(_conversations_of(customer_id)),
               (AuditEvent.entity == audit.TICKET) & AuditEvent.entity_id.in_(_ticket_ids_of(customer_id)))


async def export(ctx: Context, agent_id: int, customer_id: int, form: str) -> dict[str, Any]:
    """Everything the console holds about the customer, as plain data (for JSON and the HTML page).
    `form` ("json" or "html") is recorded with the export in the audit trail."""
    async with ctx.transaction() as session:
        await require_supervisor(session, agent_id, N_("Only supervisors can export a customer's data."))
        customer = await session.scalar(select(Customer).where(Customer.id == customer_id)
                                        .options(selectinload(Customer.contact_points)))
        if customer is None:
            raise NotFound("That customer does not exist.", field="customer_id")
        document = await _document(session, customer)
        by = await session.scalar(select(Agent.name).where(Agent.id == agent_id))
        document["exported_by"] = by
        audit.record(session, agent_id, audit.EXPORT, audit.CUSTOMER, customer_id, form)
    return document


async def _document(session: AsyncSession, customer: Customer) -> dict[str, Any]:
    customer_id = customer.id
    ids = _conversations_of(customer_id)
    conversations = list(await session.scalars(select(Conversation).where(Conversation.customer_id == customer_id)
                                               .order_by(Conversation.created_at, Conversation.id)))
    events = list(await session.scalars(select(ConversationEvent).where(ConversationEvent.conversation_id.in_(ids))
                                        .order_by(ConversationEvent.at, ConversationEvent.id)))
    messages = list((await session.scalars(select(Message).where(Message.conversation_id.in_(ids))
                                           .options(joinedload(Message.attachment))
                                           .order_by(Message.created_at, Message.id))).unique())
    notes = list(await session.scalars(select(Note).where(or_(Note.customer_id == customer_id,
                                                              Note.conversation_id.in_(ids)))
                                       .order_by(Note.created_at, Note.id)))
    handoffs = list(await session.scalars(select(Handoff).where(Handoff.conversation_id.in_(ids))
                                          .order_by(Handoff.created_at, Handoff.id)))
    tickets = list(await session.scalars(select(Ticket).where(_tickets_of(customer_id))
                                         .order_by(Ticket.created_at, Ticket.id)))
    ticket_ids = _ticket_ids_of(customer_id)
    comments = list(await session.scalars(select(TicketComment).where(TicketComment.ticket_id.in_(ticket_ids))
                                          .order_by(TicketComment.created_at, TicketComment.id)))
    ticket_changes = list(await session.scalars(select(TicketChange).where(TicketChange.ticket_id.in_(ticket_ids))
                                                .order_by(TicketChange.at, TicketChange.id)))
    addresses = list(await session.scalars(select(Address).where(Address.customer_id == customer_id)
                                           .order_by(Address.id)))
    contracts = list(await session.scalars(select(Contract).where(Contract.customer_id == customer_id)
                                           .order_by(Contract.id)))
    merges = list(await session.scalars(select(CustomerMerge).where(CustomerMerge.kept_id == customer_id)
                                        .order_by(CustomerMerge.at, CustomerMerge.id)))
    trail = list(await session.scalars(select(AuditEvent).where(_about(customer_id))
                                       .order_by(AuditEvent.at, AuditEvent.id)))
    names = await _names(session, [customer.owner_id, *(c.agent_id for c in conversations),
                                   *(e.agent_id for e in events), *(m.agent_id for m in messages),
                                   *(n.agent_id for n in notes), *(h.from_agent_id for h in handoffs),
                                   *(h.to_agent_id for h in handoffs), *(t.assignee_id for t in tickets),
                                   *(t.created_by_id for t in tickets), *(c.agent_id for c in comments),
                                   *(c.agent_id for c in ticket_changes), *(m.agent_id for m in merges),
                                   *(a.agent_id for a in trail)])

    def who(agent_id: int | None) -> str | None:
        return names.get(agent_id) if agent_id is not None else None

    by_conversation: dict[tuple[str, int | None], list[Any]] = {}
    for kind, items in (("events", events), ("messages", messages), ("notes", notes), ("handoffs", handoffs)):
        for item in items:
            by_conversation.setdefault((kind, item.conversation_id), []).append(item)
    by_ticket: dict[tuple[str, int], list[Any]] = {}
    for kind, rows in (("comments", comments), ("changes", ticket_changes)):
        for row in rows:
            by_ticket.setdefault((kind, row.ticket_id), []).append(row)

    def of(kind: str, conversation_id: int) -> list[Any]:
        return by_conversation.get((kind, conversation_id), [])

    return {
        "exported_at": utcnow().isoformat(),
        "customer": {**_row(customer, "id", "name", "company", "tier", "lifetime_value", "language", "segment",
                            "consent_email", "consent_phone", "created_at", "updated_at", "erased_at"),
                     "owner": who(customer.owner_id)},
        "contact_points": [_row(p, "kind", "value") for p in sorted(customer.contact_points, key=lambda p: p.id)],
        "addresses": [_row(a, "kind", "street", "postal_code", "city", "country") for a in addresses],
        "contracts": [_row(k, "title", "status", "starts_on", "ends_on", "terms", "created_at") for k in contracts],
        "conversations": [{
            **_row(c, "id", "channel", "direction", "state", "from_address", "to_address", "subject", "created_at",
                   "answered_at", "closed_at", "abandoned_at", "disposition", "disposition_note", "rating",
                   "rating_comment", "rated_at", "redacted_at"),
            "agent": who(c.agent_id),
            "events": [{**_row(e, "at", "from_state", "to_state", "detail"), "agent": who(e.agent_id)}
                       for e in of("events", c.id)],
            "messages": [{**_row(m, "created_at", "author", "body"), "agent": who(m.agent_id),
                          **({"file": _row(m.attachment, "name", "content_type", "size")} if m.attachment else {})}
                         for m in of("messages", c.id)],
            "notes": [{**_row(n, "created_at", "body"), "agent": who(n.agent_id)} for n in of("notes", c.id)],
            "handoffs": [{**_row(h, "created_at", "mode", "state", "note", "reason"), "from": who(h.from_agent_id),
                          "to": who(h.to_agent_id)} for h in of("handoffs", c.id)],
        } for c in conversations],
        "notes": [{**_row(n, "created_at", "body"), "agent": who(n.agent_id)} for n in notes
                  if n.conversation_id is None],
        "tickets": [{
            **_row(t, "id", "subject", "description", "status", "priority", "created_at", "updated_at", "due_at"),
            "assignee": who(t.assignee_id), "created_by": who(t.created_by_id),
            "comments": [{**_row(c, "created_at", "body"), "agent": who(c.agent_id)}
                         for c in by_ticket.get(("comments", t.id), [])],
            "changes": [{**_row(c, "at", "field", "old", "new"), "agent": who(c.agent_id)}
                        for c in by_ticket.get(("changes", t.id), [])],
        } for t in tickets],
        "merged_records": [{**_row(m, "at", "merged_name"), "record": _loaded(m.snapshot), "by": who(m.agent_id)}
                           for m in merges],
        "access": [{**_row(a, "at", "action", "entity", "entity_id", "detail"), "agent": who(a.agent_id)}
                   for a in trail],
    }


async def _spellings_only_theirs(session: AsyncSession, customer_id: int, region: str) -> set[str]:
    """The numbers and addresses the person used, as a phone system or a mail may have written
    them, to find them on contacts that were never linked to the record; without any that another
    customer holds too (a shared switchboard number: erasing one person must not blank the calls of
    a colleague)."""
    points = list(await session.scalars(select(ContactPoint).where(ContactPoint.customer_id == customer_id)))
    normalized = [p.normalized for p in points if p.normalized]
    shared = set(await session.scalars(select(ContactPoint.normalized).where(
        ContactPoint.normalized.in_(normalized or [""]), ContactPoint.customer_id != customer_id)))
    used: set[str] = set()
    for point in points:
        if point.normalized in shared:
            continue
        used.add(point.value)
        if point.normalized:
            used.add(point.normalized)
            if point.kind == ContactKind.PHONE:
                used |= _phone_spellings(point.normalized, region)
    return {u for u in used if u}


def _phone_spellings(e164: str, region: str) -> set[str]:
    """How a phone system may write the number: +31612345678, 0031612345678, 31612345678,
    0612345678, 06 12345678, 06-12345678, +31 6 12345678."""
    try:
        number = phonenumbers.parse(e164, region)
    except phonenumbers.NumberParseException:
        return set()
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    digits = e164.lstrip("+")
    national_digits = "".join(ch for ch in national if ch.isdigit())
    return {e164, digits, "00" + digits, national, national_digits, national.replace(" ", "-"), international,
            international.replace(" ", "")}


def _loaded(snapshot: str) -> Any:
    try:
        return json.loads(snapshot)
    except ValueError:
        return snapshot


async def live_conversations(session: AsyncSession, customer_id: int) -> int:
    return int(await session.scalar(select(func.count()).select_from(Conversation).where(
        Conversation.customer_id == customer_id, Conversation.state.not_in(OVER))) or 0)


async def erase(ctx: Context, agent_id: int, customer_id: int) -> None:
    """Erase the person behind a customer record; refused while one of their conversations is live."""
    async with ctx.transaction() as session:
        await require_supervisor(session, agent_id, N_("Only supervisors can erase a customer."))
        customer = await session.get(Customer, customer_id, with_for_update=True)
        if customer is None:
            raise NotFound("That customer does not exist.", field="customer_id")
        if customer.erased_at is not None:
            raise Conflict("This customer was erased already.")
        if await live_conversations(session, customer_id):
            raise Conflict("This customer has a conversation going on. Erase them once it is over.")
        now = utcnow()
        conversation_ids = _conversations_of(customer_id)
        # The tickets are locked: a change to one that got its lock first is anonymised with the rest,
        # and one that waits sees the erasure (console.ownership.ticket_for).
        tickets = len(list(await session.scalars(_ticket_ids_of(customer_id).with_for_update())))
        ticket_ids = _ticket_ids_of(customer_id)
        used = await _spellings_only_theirs(session, customer_id, ctx.region)
        # Every detail text about the person, before their record goes: the trail keeps who and when.
        await session.execute(update(AuditEvent).where(_about(customer_id))
                              .values(detail=None).execution_options(synchronize_session=False))
        for model in (ContactPoint, Address, Contract, SearchTerm):
            await session.execute(delete(model).where(model.customer_id == customer_id))
        await session.execute(delete(Note).where(Note.customer_id == customer_id))
        # Their chat visitors forget who they were: a returning browser starts as nobody.
        await session.execute(update(ChatVisitor).where(ChatVisitor.customer_id == customer_id)
                              .values(customer_id=None, name=None, email=None, identifier=None, identity="anonymous")
                              .execution_options(synchronize_session=False))
        await session.execute(update(CustomerMerge).where(CustomerMerge.kept_id == customer_id)
                              .values(merged_name=ERASED_NAME, snapshot="{}")
                              .execution_options(synchronize_session=False))
        await _anonymise_conversations(session, conversation_ids, now)
        if used:
            await _anonymise_conversations(session, select(Conversation.id).where(
                Conversation.customer_id.is_(None), Conversation.state.in_(OVER),
                or_(Conversation.from_address.in_(used), Conversation.to_address.in_(used))), now)
        if tickets:
            await session.execute(update(Ticket).where(Ticket.id.in_(ticket_ids))
                                  .values(subject=ERASED_NAME, description="", version=Ticket.version + 1)
                                  .execution_options(synchronize_session=False))
            await session.execute(delete(TicketComment).where(TicketComment.ticket_id.in_(ticket_ids)))
            await session.execute(update(TicketChange).where(TicketChange.ticket_id.in_(ticket_ids))
                                  .values(old=None, new=None).execution_options(synchronize_session=False))
        customer.name, customer.company, customer.segment, customer.language = ERASED_NAME, None, None, None
        customer.tier, customer.owner_id = None, None
        customer.consent_email = customer.consent_phone = False
        customer.erased_at = now
        customer.version += 1
        # Whoever has the page open sees it close; the pops refresh without the person.
        watching = await customers.viewers(session, customer_id)
        await session.execute(update(Agent).where(Agent.viewing_customer_id == customer_id)
                              .values(viewing_customer_id=None).execution_options(synchronize_session=False))
        for viewer in watching:
            changes.emit(session, functools.partial(changes.PageOpened, viewer, None))
        audit.record(session, agent_id, audit.ERASE, audit.CUSTOMER, customer_id)
        await customers.changed(session, customer_id)
    log.info("customer %s erased by agent %s (%s tickets)", customer_id, agent_id, tickets)


async def _anonymise_conversations(session: AsyncSession, ids: list[int] | Select[int],
                                   now: datetime) -> None:
    """Conversations stay (for the figures) without what identifies or quotes the person. `ids`:
    a batch of ids, or a subquery that names them."""
    if isinstance(ids, list) and not ids:
        return
    await session.execute(update(Message).where(Message.conversation_id.in_(ids))
                          .values(body="").execution_options(synchronize_session=False))
    await session.execute(delete(Attachment).where(Attachment.message_id.in_(
        select(Message.id).where(Message.conversation_id.in_(ids)))).execution_options(synchronize_session=False))
    await session.execute(delete(Note).where(Note.conversation_id.in_(ids)))
    # A mail keeps its ids (for threading and the figures), not what it said or who wrote it; one
    # not sent yet is not sent any more.
    theirs = Mail.message_id.in_(select(Message.id).where(Message.conversation_id.in_(ids)))
    await session.execute(update(Mail).where(theirs, Mail.send_state.in_(("queued", "sending")))
                          .values(send_state="failed", next_attempt_at=None)
                          .execution_options(synchronize_session=False))
    await session.execute(update(Mail).where(theirs).values(
        from_address="", from_name="", reply_to="", to_addresses="", subject="", quoted="", html=None,
        remote_html=None, text=None, problems=None, last_error=None).execution_options(synchronize_session=False))
    await session.execute(update(MailThread).where(MailThread.id.in_(select(Conversation.mail_thread_id).where(
        Conversation.id.in_(ids)))).values(address="", subject="").execution_options(synchronize_session=False))
    await session.execute(update(Handoff).where(Handoff.conversation_id.in_(ids))
                          .values(note="", reason=None).execution_options(synchronize_session=False))
    await session.execute(update(ConversationEvent).where(ConversationEvent.conversation_id.in_(ids))
                          .values(detail=None).execution_options(synchronize_session=False))
    await session.execute(update(AuditEvent).where(AuditEvent.entity == audit.CONVERSATION,
                                                   AuditEvent.entity_id.in_(ids))
                          .values(detail=None).execution_options(synchronize_session=False))
    # Last: a subquery may name the conversations by the addresses this blanks.
    await session.execute(update(Conversation).where(Conversation.id.in_(ids))
                          .values(from_address="", to_address="", subject=None, disposition_note=None,
                                  rating_comment=None, redacted_at=now).execution_options(synchronize_session=False))


@dataclass
class Retention:
    """How long each kind of record is kept, in days (None: for ever)."""

    conversations: int | None = None
    notes: int | None = None
    audit: int | None = None

    @property
    def keeps_everything(self) -> bool:
        return self.conversations is None and self.notes is None and self.audit is None


@dataclass
class Swept:
    conversations: int = 0
    notes: int = 0
    audit: int = 0

    def __str__(self) -> str:
        return ", ".join(f"{name} {count}" for name, count in asdict(self).items())


async def sweep(ctx: Context, keep: Retention, now: datetime | None = None) -> Swept:
    """Anonymise and delete what is older than the retention allows, in batches (a short write
    each, so live traffic is never held up for long); the counts of what it did."""
    done = Swept()
    if keep.keeps_everything:
        return done
    now = now or utcnow()
    if keep.conversations is not None:
        cutoff = now - timedelta(days=keep.conversations)
        while True:
            async with ctx.transaction() as session:
                batch = list(await session.scalars(
                    select(Conversation.id).where(Conversation.redacted_at.is_(None), Conversation.created_at < cutoff,
                                                  Conversation.state.in_(OVER),
                                                  func.coalesce(Conversation.closed_at, Conversation.abandoned_at,
                                                                Conversation.transferred_at,
                                                                Conversation.created_at) < cutoff)
                    .order_by(Conversation.id).limit(SWEEP_BATCH)))
                await _anonymise_conversations(session, batch, now)
            done.conversations += len(batch)
            if len(batch) < SWEEP_BATCH:
                break
    for name, days, model, column in (("notes", keep.notes, Note, Note.created_at),
                                      ("audit", keep.audit, AuditEvent, AuditEvent.at)):
        if days is None:
            continue
        cutoff = now - timedelta(days=days)
        while True:
            async with ctx.transaction() as session:
                ids = list(await session.scalars(select(model.id).where(column < cutoff)
                                                 .order_by(model.id).limit(SWEEP_BATCH)))
                if ids:
                    await session.execute(delete(model).where(model.id.in_(ids)))
            setattr(done, name, getattr(done, name) + len(ids))
            if len(ids) < SWEEP_BATCH:
                break
    if done.conversations or done.notes or done.audit:
        log.info("retention sweep: anonymised %s conversations, deleted %s notes and %s audit entries",
                 done.conversations, done.notes, done.audit)
    return done
