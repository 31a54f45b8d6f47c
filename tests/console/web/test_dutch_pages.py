"""A Dutch agent sees Dutch: no English text of the catalogue leaks into the pages they work in.

The pages are rendered from a real day's work (a call popped, answered, handed off, wrapped up,
a ticket changed, duplicates found, the audit trail read) and every text and every label an agent
reads is checked against the Dutch catalogue: an English message whose Dutch differs must not
appear as it is.
"""

from __future__ import annotations

import re

import lxml.html
from babel.messages.pofile import read_po

from console import audit, conversations, handoffs, merge, offers, routing, tickets, wrapup
from console.changes import ConversationInfo
from console.handoffs import Target
from console.models import Agent, AuditEvent, Channel, Conversation, Customer
from console.ports import Context
from console.screenpop import agent_view, wrap_up_of
from console.web.render import Renderer
from tests.console.test_i18n import DUTCH
from tests.helpers import add_agent, add_customer

READ = ("placeholder", "title", "aria-label", "data-title")


def english_messages() -> set[str]:
    """Messages whose Dutch is different and that have no values put in (those are checked as they are shown)."""
    with DUTCH.open("rb") as handle:
        catalog = read_po(handle, locale="nl")
    found = set()
    for message in catalog:
        if not message.id or isinstance(message.id, tuple) or "%(" in message.id:
            continue
        if message.string and message.string.strip() != message.id.strip():
            found.add(message.id.strip())
    return found


def leaks(html: str, english: set[str]) -> set[str]:
    tree = lxml.html.fromstring(f"<div>{html}</div>")
    texts = [t for t in tree.itertext()]
    texts += [value for element in tree.iter() if isinstance(element.tag, str)
              for name, value in element.attrib.items() if name in READ]
    seen = set()
    for text in texts:
        for part in re.split(r"\s*[·:()]\s*|\s{2,}|\n", text):
            part = part.strip(" ,.–")
            if part in english:
                seen.add(part)
    return seen


async def test_the_pages_of_a_dutch_agents_day_hold_no_english(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201", language="nl")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202", language="nl")
    jan = await add_customer(ctx.db, "Jan Jansen", phones=("0612345678",), emails=("jan@jansen.nl",),
                             company="Jansen BV")
    await add_customer(ctx.db, "Jan Janssen", phones=("0611111111",), emails=("jan@jansen.nl",), company="Jansen BV")
    await routing.set_status(ctx, anna, "available")
    await routing.set_status(ctx, bram, "available")
    # An earlier call, wrapped up with a disposition the console ships with.
    first = await conversations.arrive(ctx, channel=Channel.CALL, external_id="c0", from_address="0687654321",
                                       to_address="0201234567")
    await offers.accept(ctx, first.agent_id or anna, first.conversation_id)
    await conversations.hang_up(ctx, Channel.CALL, "c0", "normalClearing")
    await wrapup.finish(ctx, first.agent_id or anna, first.conversation_id, "callback agreed")
    async with ctx.db.transaction() as session:
        from sqlalchemy import update

        await session.execute(update(Conversation).where(Conversation.id == first.conversation_id)
                              .values(customer_id=jan))
    # Now Jan calls; Anna takes it and hands it to Bram, warm.
    await routing.set_status(ctx, anna, "available")
    call = await conversations.arrive(ctx, channel=Channel.CALL, external_id="c1", from_address="0612345678",
                                      to_address="0201234567")
    holder = call.agent_id
    assert holder is not None
    colleague = bram if holder == anna else anna
    await offers.accept(ctx, holder, call.conversation_id)
    handoff = await handoffs.start(ctx, holder, call.conversation_id, Target(agent_id=colleague), "warm",
                                   "Wil een terugbelafspraak")
    await handoffs.accept(ctx, colleague, handoff.id)
    ticket = await tickets.open_ticket(ctx, colleague, tickets.Draft(subject="Factuur klopt niet", priority="high",
                                                                     status="new", customer_id=jan))
    await tickets.update(ctx, colleague, ticket.id, ticket.version, {"status": "open", "priority": "normal"})
    renderer = Renderer()
    english = english_messages()
    assert len(english) > 100, "the catalogue was not read"
    pages: dict[str, str] = {}
    async with ctx.db.reading() as session:
        view = await agent_view(session, colleague, ctx.region, ctx.away_reasons)
        pages["live view, on a handed-over call"] = renderer.live(view)
        held = await agent_view(session, holder, ctx.region, ctx.away_reasons)
        pages["live view, in wrap-up after the handoff"] = renderer.live(held)
        conversation = await session.get(Conversation, call.conversation_id)
        assert conversation is not None
        wrap = await wrap_up_of(session, ConversationInfo.of(conversation), 1)
        pages["wrap-up"] = renderer.render("partials/wrap_up.html", "nl", w=wrap)
        found = await merge.duplicates_of(session, jan)
        customer = await session.get(Customer, jan)
        pages["duplicates"] = renderer.render("partials/duplicates.html", "nl", customer=customer, found=found,
                                              supervisor=True, me=colleague)
        from sqlalchemy import select
        from sqlalchemy.orm import selectinload

        events = list(await session.scalars(select(AuditEvent).options(selectinload(AuditEvent.agent))))
        pages["audit trail"] = renderer.render("partials/audit.html", "nl", title="Jan Jansen", events=events)
        for agent_id in (holder, colleague):
            pages[f"account of agent {agent_id}"] = renderer.render(
                "partials/account.html", "nl", agent=await session.get(Agent, agent_id), min_password=8,
                error="Je huidige wachtwoord klopt niet.", error_field="current")
    async with ctx.db.transaction() as session:
        page = await tickets.page(session, colleague, ticket.id)
        pages["ticket"] = renderer.render("partials/ticket.html", "nl", page=page, me=colleague, supervisor=True)
    assert {audit.VIEW, audit.HANDOFF} <= {e.action for e in events}
    assert found and any(r for d in found for r in d.reasons)
    found_leaks = {name: leaks(html, english) for name, html in pages.items()}
    assert not any(found_leaks.values()), f"English on Dutch pages: {found_leaks}"
    assert "terugbelafspraak" in pages["live view, on a handed-over call"], "the earlier call's disposition, in Dutch"
    assert "zelfde e-mailadres" in pages["duplicates"]
