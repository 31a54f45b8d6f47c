"""Canned responses: reply texts for chats and mails, managed by supervisors.

Placeholders name a field of the customer or the agent: {customer.first_name}, {customer.name},
{customer.company}, {agent.name}, {agent.first_name}. An unknown placeholder is refused when the
text is saved, so a reply never goes out with a brace in it.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from console import audit
from console.auth import require_supervisor
from console.errors import Conflict, InvalidInput, NotFound
from console.i18n import N_
from console.models import Agent, CannedResponse, Chat, ChatVisitor, Customer, utcnow
from console.ownership import conversation_for
from console.ports import Context

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
KNOWN = ("customer.first_name", "customer.name", "customer.company", "agent.name", "agent.first_name")
MAX_TITLE = 100
MAX_BODY = 5000


def check(title: str, body: str) -> tuple[str, str]:
    name, text = title.strip(), body.strip()
    if not name:
        raise InvalidInput("Give the response a title.", field="title")
    if len(name) > MAX_TITLE:
        raise InvalidInput("The title is longer than %(limit)s characters.", field="title", limit=MAX_TITLE)
    if not text:
        raise InvalidInput("The response text is empty.", field="body")
    if len(text) > MAX_BODY:
        raise InvalidInput("The response text is longer than %(limit)s characters.", field="body", limit=MAX_BODY)
    unknown = [p for p in PLACEHOLDER.findall(text) if p not in KNOWN]
    if unknown:
        raise InvalidInput("Unknown placeholder {%(name)s}; use one of %(known)s.", field="body", name=unknown[0],
                           known=", ".join("{" + k + "}" for k in KNOWN))
    return name, text


def first_name(full: str | None) -> str:
    parts = (full or "").split()
    return parts[0] if parts else ""


def fill(body: str, customer: Customer | None, agent: Agent, said_name: str | None = None) -> str:
    """The text with its placeholders filled in; what is unknown about the customer stays empty.
    `said_name`: the name a chat visitor gave, for a customer not linked (yet)."""
    name = customer.name if customer else said_name
    values = {
        "customer.first_name": first_name(name),
        "customer.name": name or "",
        "customer.company": (customer.company or "") if customer else "",
        "agent.name": agent.name,
        "agent.first_name": first_name(agent.name),
    }
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), body)


async def save(ctx: Context, agent_id: int, title: str, body: str, response_id: int | None = None) -> CannedResponse:
    """Create a canned response, or change the one with `response_id`."""
    name, text = check(title, body)
    try:
        return await _save(ctx, agent_id, name, text, response_id)
    except IntegrityError:
        # A colleague saved the same title at the same moment; the unique index decided.
        raise Conflict("A response with the title %(title)s exists already.", field="title", title=name) from None


async def _save(ctx: Context, agent_id: int, name: str, text: str, response_id: int | None) -> CannedResponse:
    async with ctx.transaction() as session:
        await require_supervisor(session, agent_id, N_("Only supervisors manage canned responses."))
        clash = await session.scalar(select(CannedResponse.id).where(CannedResponse.title == name))
        if clash is not None and clash != response_id:
            raise Conflict("A response with the title %(title)s exists already.", field="title", title=name)
        if response_id is None:
            response = CannedResponse(title=name, body=text, updated_by_id=agent_id, updated_at=utcnow())
            session.add(response)
        else:
            found = await session.get(CannedResponse, response_id)
            if found is None:
                raise NotFound("That canned response does not exist.")
            response = found
            response.title, response.body, response.updated_by_id = name, text, agent_id
            response.updated_at = utcnow()
        await session.flush()
    return response


async def remove(ctx: Context, agent_id: int, response_id: int) -> None:
    async with ctx.transaction() as session:
        await require_supervisor(session, agent_id, N_("Only supervisors manage canned responses."))
        found = await session.get(CannedResponse, response_id)
        if found is None:
            raise NotFound("That canned response does not exist.")
        await session.delete(found)


async def listed(session: AsyncSession) -> list[CannedResponse]:
    return list(await session.scalars(select(CannedResponse).order_by(CannedResponse.title)))


async def render_for(ctx: Context, agent_id: int, response_id: int, conversation_id: int | None = None) -> str:
    """The response filled in for this agent, and for the customer of the conversation (which the
    agent must be allowed to work on, see console.ownership), ready to paste into a reply."""
    async with ctx.transaction() as session:
        found = await session.get(CannedResponse, response_id)
        if found is None:
            raise NotFound("That canned response does not exist.")
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        customer_id = chat_id = said_name = None
        if conversation_id is not None:
            conversation = await conversation_for(session, conversation_id, agent_id)
            customer_id, chat_id = conversation.customer_id, conversation.chat_id
        customer = await session.get(Customer, customer_id) if customer_id else None
        if customer is not None:
            audit.record(session, agent_id, audit.VIEW, audit.CUSTOMER, customer.id, "canned response filled")
        elif chat_id is not None:  # a chat visitor not linked to a customer: the name they gave
            said_name = await session.scalar(select(ChatVisitor.name).join(Chat, Chat.visitor_id == ChatVisitor.id)
                                             .where(Chat.id == chat_id))
        return fill(found.body, customer, agent, said_name)
