"""Internal notes on a conversation and its customer: for colleagues, never shown to the customer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from console import audit, changes, customers
from console.errors import InvalidInput, NotFound
from console.models import Conversation, Handoff, HandoffState, Note, utcnow
from console.ownership import conversation_for
from console.ports import Context

MAX_NOTE = 5000


def check_body(body: str, field: str = "body", limit: int = MAX_NOTE) -> str:
    text = body.strip()
    if not text:
        raise InvalidInput("Write something first: the note is empty.", field=field)
    if len(text) > limit:
        raise InvalidInput("The note is longer than %(limit)s characters.", field=field, limit=limit)
    return text


async def add(ctx: Context, agent_id: int, body: str, *, conversation_id: int | None = None,
              customer_id: int | None = None,
              also: Callable[[AsyncSession], Awaitable[None]] | None = None) -> Note:
    """Add a note to a conversation (and so to its customer) or to a customer directly; `also`
    runs in the same transaction (a supervisor's whisper records itself with the note)."""
    text = check_body(body)
    async with ctx.transaction() as session:
        if conversation_id is not None:
            conversation = await conversation_for(session, conversation_id, agent_id)
            customer_id = conversation.customer_id
        elif customer_id is None:
            raise NotFound("That customer does not exist.", field="customer_id")
        if customer_id is not None:
            await customers.for_change(session, customer_id)
        note = Note(customer_id=customer_id, conversation_id=conversation_id, agent_id=agent_id, body=text,
                    created_at=utcnow())
        session.add(note)
        await session.flush()
        if customer_id is not None:
            audit.record(session, agent_id, audit.NOTE, audit.CUSTOMER, customer_id, f"note {note.id}")
        if conversation_id is not None:
            audit.record(session, agent_id, audit.NOTE, audit.CONVERSATION, conversation_id, f"note {note.id}")
            agents = frozenset({agent_id} | await _seeing(session, conversation_id))
            note_id, on = note.id, conversation_id
            changes.emit(session, lambda: changes.NoteAdded(note_id, on, agents))
        await customers.changed(session, customer_id, also={agent_id})
        if also is not None:
            await also(session)
    return note


async def _seeing(session: AsyncSession, conversation_id: int) -> set[int]:
    """Who has the conversation's notes on screen: its agent, and a colleague asked to take it over."""
    handling = await session.scalar(select(Conversation.agent_id).where(Conversation.id == conversation_id))
    asked = set(await session.scalars(select(Handoff.to_agent_id).where(
        Handoff.conversation_id == conversation_id, Handoff.state == HandoffState.PENDING)))
    return {a for a in {handling, *asked} if a is not None}


async def of_parts(session: AsyncSession, parts: list[int]) -> list[Note]:
    """The notes of a conversation's parts (see conversations.parts), oldest first."""
    rows = await session.scalars(
        select(Note).where(Note.conversation_id.in_(parts)).options(selectinload(Note.agent))
        .order_by(Note.created_at, Note.id))
    return list(rows)
