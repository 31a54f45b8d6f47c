"""Tickets: complaints and requests followed until solved, with comments and a change history.

A ticket's due time follows from its priority's service level (SLA). Every change is stored as
who changed which field from what to what; an edit made on an older copy of the ticket (someone
else saved in between) is refused, so nobody overwrites a colleague's change unknowingly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from console import audit, customers
from console.errors import Conflict, InvalidInput, NotFound
from console.i18n import N_
from console.models import (
    OPEN_TICKET_STATUSES,
    Agent,
    Customer,
    Priority,
    Queue,
    Ticket,
    TicketChange,
    TicketComment,
    TicketStatus,
    utcnow,
)
from console.notes import check_body
from console.ownership import conversation_for, may_change_ticket, ticket_for
from console.ports import Context

# Hours from opening to the due time, per priority.
SLA_HOURS = {Priority.URGENT: 4, Priority.HIGH: 24, Priority.NORMAL: 72, Priority.LOW: 168}
MAX_SUBJECT = 300
MAX_DESCRIPTION = 10_000
EDITABLE = ("subject", "description", "priority", "status", "assignee_id", "queue_id")


def due_at(priority: Priority, opened: datetime) -> datetime:
    return opened + timedelta(hours=SLA_HOURS[priority])


def is_overdue(ticket: Ticket, now: datetime | None = None) -> bool:
    return (ticket.status in OPEN_TICKET_STATUSES and ticket.due_at is not None
            and ticket.due_at < (now or utcnow()))


def _choice(kind: type[Priority] | type[TicketStatus], raw: str, name: str) -> Priority | TicketStatus:
    try:
        return kind(raw.strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidInput(N_("Choose one of %(allowed)s, not %(value)s."), field=name, allowed=allowed,
                           value=raw) from None


def _subject(raw: str) -> str:
    text = raw.strip()
    if not text:
        raise InvalidInput("A ticket needs a subject.", field="subject")
    if len(text) > MAX_SUBJECT:
        raise InvalidInput("The subject is longer than %(limit)s characters.", field="subject", limit=MAX_SUBJECT)
    return text


def _description(raw: str) -> str:
    text = raw.strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidInput("The description is longer than %(limit)s characters.", field="description",
                           limit=MAX_DESCRIPTION)
    return text


async def _agent(session: AsyncSession, agent_id: int | None, current: int | None = None) -> int | None:
    """The assignee to store; a deactivated colleague only when they are the `current` one already."""
    if agent_id is None:
        return None
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("That colleague does not exist.", field="assignee_id")
    if agent.deactivated_at is not None and agent_id != current:
        raise InvalidInput("That colleague is deactivated; choose another.", field="assignee_id")
    return agent_id


async def _queue(session: AsyncSession, queue_id: int | None) -> int | None:
    if queue_id is None:
        return None
    if await session.get(Queue, queue_id) is None:
        raise NotFound("That queue does not exist.", field="queue_id")
    return queue_id


@dataclass
class Draft:
    """What an agent fills in to open a ticket; the web layer parses the form into this."""

    subject: str
    description: str = ""
    priority: str = "normal"
    status: str = "new"
    assignee_id: int | None = None
    queue_id: int | None = None
    conversation_id: int | None = None
    customer_id: int | None = None


async def open_ticket(ctx: Context, agent_id: int, draft: Draft) -> Ticket:
    """Open a ticket, from a conversation (its customer comes along) or for a customer."""
    subject, description = _subject(draft.subject), _description(draft.description)
    priority = _choice(Priority, draft.priority or "normal", "priority")
    status = _choice(TicketStatus, draft.status or "new", "status")
    async with ctx.transaction() as session:
        customer_id = draft.customer_id
        if draft.conversation_id is not None:
            conversation = await conversation_for(session, draft.conversation_id, agent_id)
            customer_id = conversation.customer_id
        if customer_id is not None:
            await customers.for_change(session, customer_id)
        now = utcnow()
        ticket = Ticket(subject=subject, description=description, priority=priority, status=status,
                        customer_id=customer_id, conversation_id=draft.conversation_id,
                        assignee_id=await _agent(session, draft.assignee_id),
                        queue_id=await _queue(session, draft.queue_id), created_by_id=agent_id,
                        due_at=due_at(Priority(priority), now), created_at=now, updated_at=now)
        session.add(ticket)
        await session.flush()
        session.add(TicketChange(ticket_id=ticket.id, agent_id=agent_id, field="created", new=subject[:300], at=now))
        audit.record(session, agent_id, audit.CREATE, audit.TICKET, ticket.id)
        await customers.changed(session, customer_id, also={agent_id})
    return ticket


def _shown(value: object) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))[:300]


async def update(ctx: Context, agent_id: int, ticket_id: int, version: int, changes: dict[str, object]) -> Ticket:
    """Change fields of a ticket seen at `version`; refused when someone changed it since."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidInput("These fields cannot be changed: %(fields)s.", field=sorted(unknown)[0],
                           fields=", ".join(sorted(unknown)))
    async with ctx.transaction() as session:
        ticket = await ticket_for(session, ticket_id, agent_id)
        if ticket.version != version:
            last = await session.scalar(
                select(Agent.name).join(TicketChange, TicketChange.agent_id == Agent.id)
                .where(TicketChange.ticket_id == ticket_id).order_by(TicketChange.at.desc(), TicketChange.id.desc())
                .limit(1))
            raise Conflict("%(who)s changed this ticket while you were editing it. Nothing was saved; "
                           "look at their change and edit again.", field="version", who=last or "A colleague")
        values = await _parse(session, changes, ticket.assignee_id)
        now = utcnow()
        before = {name: getattr(ticket, name) for name in values}
        changed = [name for name, value in values.items() if before[name] != value]
        if not changed:
            return ticket
        for name in changed:
            setattr(ticket, name, values[name])
            session.add(TicketChange(ticket_id=ticket.id, agent_id=agent_id, field=name, old=_shown(before[name]),
                                     new=_shown(values[name]), at=now))
        if "priority" in changed:
            ticket.due_at = due_at(ticket.priority, ticket.created_at)
        ticket.version += 1
        ticket.updated_at = now
        audit.record(session, agent_id, audit.UPDATE, audit.TICKET, ticket.id, ", ".join(changed))
        await customers.changed(session, ticket.customer_id, also={agent_id})
    return ticket


async def _parse(session: AsyncSession, changes: dict[str, object], assignee: int | None) -> dict[str, object]:
    values: dict[str, object] = {}
    for name, raw in changes.items():
        if name == "subject":
            values[name] = _subject(str(raw))
        elif name == "description":
            values[name] = _description(str(raw))
        elif name == "priority":
            values[name] = _choice(Priority, str(raw), name)
        elif name == "status":
            values[name] = _choice(TicketStatus, str(raw), name)
        elif name == "assignee_id":
            values[name] = await _agent(session, raw if isinstance(raw, int) else None, assignee)
        elif name == "queue_id":
            values[name] = await _queue(session, raw if isinstance(raw, int) else None)
    return values


async def comment(ctx: Context, agent_id: int, ticket_id: int, body: str) -> TicketComment:
    text = check_body(body, "body", MAX_DESCRIPTION)
    async with ctx.transaction() as session:
        ticket = await ticket_for(session, ticket_id, agent_id)
        now = utcnow()
        note = TicketComment(ticket_id=ticket_id, agent_id=agent_id, body=text, created_at=now)
        session.add(note)
        ticket.updated_at = now
        await session.flush()
        audit.record(session, agent_id, audit.COMMENT, audit.TICKET, ticket_id, f"comment {note.id}")

    return note


@dataclass
class TicketPage:
    ticket: Ticket
    customer: Customer | None
    comments: list[TicketComment]
    changes: list[TicketChange]
    overdue: bool
    agents: list[Agent] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    may_change: bool = False  # the ownership rule (console.ownership): the forms are shown only then


async def page(session: AsyncSession, agent_id: int, ticket_id: int) -> TicketPage:
    """The ticket with its comments and history; viewing it is recorded in the audit trail."""
    ticket = await session.scalar(select(Ticket).where(Ticket.id == ticket_id).options(selectinload(Ticket.assignee)))
    if ticket is None:
        raise NotFound("This ticket does not exist.")
    customer = await session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    comments = list(await session.scalars(
        select(TicketComment).where(TicketComment.ticket_id == ticket_id).options(selectinload(TicketComment.agent))
        .order_by(TicketComment.created_at, TicketComment.id)))
    changes = list(await session.scalars(
        select(TicketChange).where(TicketChange.ticket_id == ticket_id).options(selectinload(TicketChange.agent))
        .order_by(TicketChange.at.desc(), TicketChange.id.desc())))
    audit.record(session, agent_id, audit.VIEW, audit.TICKET, ticket_id)
    return TicketPage(ticket, customer, comments, changes, is_overdue(ticket),
                      list(await session.scalars(select(Agent).where(or_(Agent.deactivated_at.is_(None),
                                                                         Agent.id == ticket.assignee_id))
                                                 .order_by(Agent.name))),
                      list(await session.scalars(select(Queue).order_by(Queue.name))),
                      await may_change_ticket(session, ticket_id, agent_id))


async def assigned_to(session: AsyncSession, agent_id: int, limit: int = 50) -> list[Ticket]:
    """My tickets: open ones assigned to the agent, the most urgent due time first."""
    rows = await session.scalars(
        select(Ticket).where(Ticket.assignee_id == agent_id, Ticket.status.in_(OPEN_TICKET_STATUSES))
        .order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.id).limit(limit))
    return list(rows)


async def of_customer(session: AsyncSession, customer_id: int, limit: int = 50) -> list[Ticket]:
    rows = await session.scalars(
        select(Ticket).where(Ticket.customer_id == customer_id)
        .order_by(Ticket.status.in_(OPEN_TICKET_STATUSES).desc(), Ticket.created_at.desc()).limit(limit))
    return list(rows)
