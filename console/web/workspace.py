"""The agent's workspace: notes, tickets, handoffs, the customer page, search, duplicates, canned responses.

Each handler parses the form, calls one service and answers with the live view (out-of-band
swaps) or with the fragment for the side panel. Errors that belong to a form in the panel are
shown in that form with what the agent typed; the others go to the flash message.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from html import escape
from typing import Any

from sqlalchemy import or_, select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from console import audit, auth, canned, handoffs, i18n, merge, notes, privacy, profile, search, tickets
from console.errors import Conflict, ConsoleError, InvalidInput, NotFound, TooManyAttempts
from console.i18n import N_
from console.models import Agent, Conversation, Customer, Queue, State, Ticket, Tier
from console.web.pages import (
    NO_CONVERSATION,
    NO_CUSTOMER,
    PASSWORD_CHANGED,
    act,
    agent_id_of,
    conversation_of,
    field,
    known_device,
    record_id,
    wiring,
)
from console.web.security import SESSION_NOTICE, SESSION_STARTED, client_address, from_another_site, sign_in, signed_out
from console.web.statuses import status_of

NO_TICKET = NotFound("This ticket does not exist.")
NO_HANDOFF = NotFound("This handoff does not exist.")
NO_RESPONSE = NotFound("That canned response does not exist.")
NO_QUEUE = NotFound("That queue does not exist.", field="to_queue_id")
NO_AGENT = NotFound("That colleague does not exist.", field="to_agent_id")


def optional_id(form: FormData, name: str, missing: NotFound) -> int | None:
    raw = field(form, name, 20).strip()
    return record_id(raw, missing) if raw else None


def path_id(request: Request, missing: NotFound) -> int:
    return record_id(request.path_params["id"], missing)


async def language_of(request: Request, agent_id: int) -> str:
    async with wiring(request).ctx.db.transaction() as session:
        agent = await session.get(Agent, agent_id)
        return agent.language if agent else wiring(request).settings.default_language


async def fragment(request: Request, agent_id: int, template: str, status_code: int = 200, **values: Any) -> Response:
    html = wiring(request).renderer.render(template, await language_of(request, agent_id), **values)
    return HTMLResponse(html, status_code=status_code)


def with_live(html: str) -> Response:
    """A panel fragment or a notice; the live view follows over the socket."""
    return HTMLResponse(html)


async def done_notice(request: Request, agent_id: int, message: str, **params: object) -> Response:
    """The flash line's "done" for an action, in the agent's language; the live view follows."""
    _ = i18n.translations(await language_of(request, agent_id)).gettext
    return with_live(wiring(request).renderer.render("partials/flash.html", "en", ok=True,
                                                     message=_(message) % params))


Endpoint = Callable[[Request], Awaitable[Response]]


def signed_in(handler: Callable[[Request, int], Awaitable[Response]]) -> Endpoint:
    """The endpoint for a handler that needs the signed-in agent; others are told to log in again."""
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        agent_id = await agent_id_of(request)
        if agent_id is None:
            if (request.method == "GET" and not request.headers.get("hx-request")
                    and "text/html" in request.headers.get("accept", "")):
                return RedirectResponse("/login", status_code=303)  # a browser tab opened on a page
            return signed_out()
        return await handler(request, agent_id)

    return endpoint


def panel(handler: Callable[[Request, int], Awaitable[Response]]) -> Endpoint:
    """A fragment for the side panel: a part of the agent page, so a browser that asks for one
    directly (or a link from elsewhere) gets the page instead, and nothing is read or audited."""
    @functools.wraps(handler)
    async def fragment_only(request: Request, agent_id: int) -> Response:
        if not request.headers.get("hx-request"):
            return RedirectResponse("/", status_code=303)
        return await handler(request, agent_id)

    return signed_in(fragment_only)


# The agent's account ---------------------------------------------------------------------------

async def account_page(request: Request, agent_id: int, status_code: int = 200, **values: Any) -> Response:
    async with wiring(request).ctx.db.transaction() as session:
        agent = await session.get(Agent, agent_id)
    return await fragment(request, agent_id, "partials/account.html", status_code, agent=agent,
                          min_password=auth.MIN_PASSWORD, **values)


@panel
async def account(request: Request, agent_id: int) -> Response:
    return await account_page(request, agent_id)


@signed_in
async def change_password(request: Request, agent_id: int) -> Response:
    """The agent changes their password. Every session ends, this one is signed in again at once,
    and the page reloads, so its socket opens with the new session (and says so)."""
    w = wiring(request)
    form = await request.form()
    limit = auth.MAX_PASSWORD + 1
    try:
        current, new, repeated = (field(form, name, limit) for name in ("current", "password", "repeat"))
        async with w.ctx.db.reading() as session:
            email = (await session.get(Agent, agent_id) or Agent(email="")).email
        # Counted like the login from this browser: the same key, so colleagues behind the
        # office's one address do not share the waits.
        address = known_device(request, email) or client_address(request)
        version = await auth.change_password(w.ctx.db, agent_id, current, new, repeated, address, w.login_policy)
        if version is None:
            raise InvalidInput("Your current password is wrong.", field="current")
    except (InvalidInput, TooManyAttempts, Conflict) as exc:
        _ = i18n.translations(await language_of(request, agent_id)).gettext
        response = await account_page(request, agent_id, status_of(exc), error=exc.translated(_),
                                      error_field=exc.field)
        if isinstance(exc, TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    started = request.session.get(SESSION_STARTED)
    sign_in(request.session, agent_id, version)
    if isinstance(started, int):
        request.session[SESSION_STARTED] = started  # a new password is no new login: the lifetime runs on
    request.session[SESSION_NOTICE] = PASSWORD_CHANGED
    return Response(status_code=204, headers={"HX-Refresh": "true"})


# Notes ----------------------------------------------------------------------------------------

async def conversation_note(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, form: notes.add(
        ctx, agent_id, field(form, "body", notes.MAX_NOTE), conversation_id=conversation_of(request)))


async def customer_note(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, form: notes.add(
        ctx, agent_id, field(form, "body", notes.MAX_NOTE), customer_id=path_id(request, NO_CUSTOMER)))


# Handoffs -------------------------------------------------------------------------------------

def target_of(form: FormData) -> handoffs.Target:
    kind, _, raw = field(form, "target", 40).partition(":")
    if kind == "agent":
        return handoffs.Target(agent_id=record_id(raw, NO_AGENT))
    if kind == "queue":
        return handoffs.Target(queue_id=record_id(raw, NO_QUEUE))
    raise InvalidInput("Choose a colleague or a queue to hand off to.", field="target")


async def start_handoff(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, form: handoffs.start(
        ctx, agent_id, conversation_of(request), target_of(form), field(form, "mode", 10),
        field(form, "note", handoffs.MAX_NOTE)))


async def accept_handoff(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, _: handoffs.accept(ctx, agent_id, path_id(request, NO_HANDOFF)))


async def decline_handoff(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, form: handoffs.decline(
        ctx, agent_id, path_id(request, NO_HANDOFF), field(form, "reason", handoffs.MAX_REASON)))


async def cancel_handoff(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, _: handoffs.cancel(ctx, agent_id, path_id(request, NO_HANDOFF)))


# Pickers: colleagues and queues, loaded when a form opens instead of pushed with every view --

PICKERS = ("handoff", "assignee", "queue", "canned")


@panel
async def picker(request: Request, agent_id: int) -> Response:
    kind = request.path_params["kind"]
    if kind not in PICKERS:
        raise NotFound("There is no such list.")
    raw = request.query_params.get("selected", "")
    selected = record_id(raw, NotFound("That queue does not exist.")) if raw else None
    raw = request.query_params.get("conversation", "")
    conversation_id = record_id(raw, NotFound("This conversation does not exist.")) if raw else None
    async with wiring(request).ctx.db.reading() as session:
        if kind == "handoff":
            agents = await handoffs.takers(session, agent_id, conversation_id)  # only who can take it now
        elif kind == "assignee":
            agents = list(await session.scalars(select(Agent).where(Agent.id != agent_id, auth.ACTIVE)
                                                .order_by(Agent.name)))
        else:
            agents = []
        queues = list(await session.scalars(select(Queue).order_by(Queue.name))) if kind in ("handoff", "queue") else []
        responses = await canned.listed(session) if kind == "canned" else []
    return await fragment(request, agent_id, "partials/options.html", kind=kind, agents=agents, queues=queues,
                          me=agent_id, selected=selected, responses=responses)


# Tickets --------------------------------------------------------------------------------------

def draft_of(form: FormData) -> tickets.Draft:
    return tickets.Draft(
        subject=field(form, "subject", tickets.MAX_SUBJECT), description=field(form, "description", 10_000),
        priority=field(form, "priority", 20) or "normal", status=field(form, "status", 20) or "new",
        assignee_id=optional_id(form, "assignee_id", NotFound("That colleague does not exist.", field="assignee_id")),
        queue_id=optional_id(form, "queue_id", NotFound("That queue does not exist.", field="queue_id")),
        conversation_id=optional_id(form, "conversation_id", NO_CONVERSATION),
        customer_id=optional_id(form, "customer_id", NO_CUSTOMER))


@signed_in
async def open_ticket(request: Request, agent_id: int) -> Response:
    ticket = await tickets.open_ticket(wiring(request).ctx, agent_id, draft_of(await request.form()))
    # The form is sent with hx-swap="none": the confirmation goes to the flash line, out of band.
    return await done_notice(request, agent_id, N_("Ticket #%(id)s opened."), id=ticket.id)


@panel
async def my_tickets(request: Request, agent_id: int) -> Response:
    async with wiring(request).ctx.db.transaction() as session:
        mine = await tickets.assigned_to(session, agent_id)
    _ = i18n.translations(await language_of(request, agent_id)).gettext
    return await fragment(request, agent_id, "partials/tickets.html", tickets=mine, title=_("My tickets"),
                          overdue=tickets.is_overdue)


async def ticket_page(request: Request, agent_id: int, ticket_id: int, status_code: int = 200,
                      **values: Any) -> Response:
    async with wiring(request).ctx.db.transaction() as session:
        page = await tickets.page(session, agent_id, ticket_id)
        supervisor = await auth.is_supervisor(session, agent_id)
    return await fragment(request, agent_id, "partials/ticket.html", status_code, page=page, supervisor=supervisor,
                          **values)


@panel
async def show_ticket(request: Request, agent_id: int) -> Response:
    return await ticket_page(request, agent_id, path_id(request, NO_TICKET))


@signed_in
async def edit_ticket(request: Request, agent_id: int) -> Response:
    ticket_id = path_id(request, NO_TICKET)
    form = await request.form()
    submitted = {name: field(form, name, 10_000) for name in ("subject", "description", "priority", "status")}
    try:
        version = int(field(form, "version", 10) or "0")
        changes: dict[str, object] = dict(submitted)
        changes["assignee_id"] = optional_id(form, "assignee_id", NotFound("That colleague does not exist."))
        changes["queue_id"] = optional_id(form, "queue_id", NotFound("That queue does not exist."))
        await tickets.update(wiring(request).ctx, agent_id, ticket_id, version, changes)
    except (ConsoleError, ValueError) as exc:
        _ = i18n.translations(await language_of(request, agent_id)).gettext
        message = exc.translated(_) if isinstance(exc, ConsoleError) else _("The form was out of date; reload it.")
        status = status_of(exc) if isinstance(exc, ConsoleError) else 422
        return await ticket_page(request, agent_id, ticket_id, status, error=message, values=submitted,
                                 version=field(form, "version", 10))
    return await ticket_page(request, agent_id, ticket_id)


@signed_in
async def comment_ticket(request: Request, agent_id: int) -> Response:
    ticket_id = path_id(request, NO_TICKET)
    form = await request.form()
    try:
        await tickets.comment(wiring(request).ctx, agent_id, ticket_id, field(form, "body", 10_000))
    except InvalidInput as exc:
        _ = i18n.translations(await language_of(request, agent_id)).gettext
        return await ticket_page(request, agent_id, ticket_id, 422, error=exc.translated(_))
    return await ticket_page(request, agent_id, ticket_id)


# Customers ------------------------------------------------------------------------------------

@signed_in
async def search_customers(request: Request, agent_id: int) -> Response:
    query = request.query_params.get("q", "")[:search.MAX_QUERY]
    raw_link = request.query_params.get("link", "")
    link = record_id(raw_link, NO_CONVERSATION) if raw_link else None  # results that link an unknown caller
    async with wiring(request).ctx.db.transaction() as session:
        found = await search.search(session, query)
    return await fragment(request, agent_id, "partials/search_results.html", found=found, link=link,
                          query=query.strip() if search.query_terms(query) else "")


async def open_customer(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, _: profile.open_page(ctx, agent_id,
                                                                         path_id(request, NO_CUSTOMER)))


async def close_customer(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, _: profile.open_page(ctx, agent_id, None))


async def customer_form(request: Request, agent_id: int, customer: Customer, status_code: int = 200,
                        error: str = "") -> Response:
    async with wiring(request).ctx.db.transaction() as session:
        # Active colleagues, and the owner now even when deactivated (saving keeps them).
        agents = list(await session.scalars(select(Agent).where(or_(Agent.deactivated_at.is_(None),
                                                                    Agent.id == customer.owner_id))
                                            .order_by(Agent.name)))
    return await fragment(request, agent_id, "partials/customer_edit.html", status_code, customer=customer,
                          agents=agents, error=error)


@panel
async def edit_customer_form(request: Request, agent_id: int) -> Response:
    async with wiring(request).ctx.db.transaction() as session:
        customer = await session.get(Customer, path_id(request, NO_CUSTOMER))
    if customer is None:
        raise NO_CUSTOMER
    return await customer_form(request, agent_id, customer)


def changes_of(form: FormData) -> profile.Changes:
    return profile.Changes(
        name=field(form, "name", 200), company=field(form, "company", 200), tier=field(form, "tier", 5),
        segment=field(form, "segment", 100), language=field(form, "language", 8),
        owner_id=optional_id(form, "owner_id", NotFound("That colleague does not exist.", field="owner_id")),
        lifetime_value=field(form, "lifetime_value", 40), consent_email=bool(field(form, "consent_email", 5)),
        consent_phone=bool(field(form, "consent_phone", 5)))


def as_typed(customer_id: int, version: str, changes: profile.Changes) -> Customer:
    """What the agent typed, shown again in the form next to the error."""
    tier = changes.tier.strip().upper()
    return Customer(id=customer_id, name=changes.name, company=changes.company, segment=changes.segment,
                    language=changes.language, owner_id=changes.owner_id, lifetime_value=changes.lifetime_value,
                    tier=Tier(tier) if tier in ("A", "B", "C") else None, consent_email=changes.consent_email,
                    consent_phone=changes.consent_phone, version=int(version) if version.isdigit() else 0)


@signed_in
async def save_customer(request: Request, agent_id: int) -> Response:
    customer_id = path_id(request, NO_CUSTOMER)
    form = await request.form()
    version = field(form, "version", 10)
    changes = changes_of(form)
    try:
        await profile.update(wiring(request).ctx, agent_id, customer_id, int(version) if version.isdigit() else 0,
                             changes)
    except ConsoleError as exc:
        _ = i18n.translations(await language_of(request, agent_id)).gettext
        return await customer_form(request, agent_id, as_typed(customer_id, version, changes), status_of(exc),
                                   exc.translated(_))
    _ = i18n.translations(await language_of(request, agent_id)).gettext
    notice = wiring(request).renderer.render("partials/notice.html", "en", message=_("Saved."))
    return with_live(notice)


async def add_contact_point(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, form: profile.add_contact_point(
        ctx, agent_id, path_id(request, NO_CUSTOMER), field(form, "kind", 10), field(form, "value", 320)))


async def add_address(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, form: profile.add_address(
        ctx, agent_id, path_id(request, NO_CUSTOMER), kind=field(form, "kind", 20), street=field(form, "street", 200),
        postal_code=field(form, "postal_code", 20), city=field(form, "city", 100), country=field(form, "country", 2)))


async def add_contract(request: Request) -> Response:
    raw = request.path_params.get("detail")
    contract_id = record_id(raw, NotFound("Not found.")) if raw is not None else None
    return await act(request, lambda ctx, agent_id, form: profile.add_contract(
        ctx, agent_id, path_id(request, NO_CUSTOMER), title=field(form, "title", 200), status=field(form, "status", 20),
        starts_on=field(form, "starts_on", 20), ends_on=field(form, "ends_on", 20), terms=field(form, "terms", 10_000),
        contract_id=contract_id))


def remove(kind: str) -> Endpoint:
    """Removing a contact point or an address of the customer in the path."""
    async def endpoint(request: Request) -> Response:
        detail = record_id(request.path_params["detail"], NotFound("Not found."))
        return await act(request, lambda ctx, agent_id, _: profile.remove_detail(
            ctx, agent_id, path_id(request, NO_CUSTOMER), kind, detail))

    return endpoint


remove_contact_point = remove("contact-point")
remove_address = remove("address")


AUDITED = {audit.CUSTOMER: (Customer, NO_CUSTOMER), audit.TICKET: (Ticket, NO_TICKET),
           audit.CONVERSATION: (Conversation, NO_CONVERSATION)}


@panel
async def audit_trail(request: Request, agent_id: int) -> Response:
    """Who viewed and changed this customer, ticket or conversation: for supervisors (GDPR)."""
    entity = request.path_params["entity"]
    if entity not in AUDITED:
        raise NotFound("Nothing is audited under that name.")
    model, missing = AUDITED[entity]
    record_key = path_id(request, missing)
    async with wiring(request).ctx.db.transaction() as session:
        await auth.require_supervisor(session, agent_id, N_("Only supervisors see the audit trail."))
        if await session.get(model, record_key) is None:
            raise missing
        events = await audit.trail(session, entity, record_key, limit=200)
    _ = i18n.translations(await language_of(request, agent_id)).gettext
    title = {audit.CUSTOMER: _("Customer"), audit.TICKET: _("Ticket"), audit.CONVERSATION: _("Conversation")}[entity]
    return await fragment(request, agent_id, "partials/audit.html", title=f"{title} #{record_key}", events=events)


@panel
async def duplicates_of(request: Request, agent_id: int) -> Response:
    customer_id = path_id(request, NO_CUSTOMER)
    async with wiring(request).ctx.db.transaction() as session:
        found = await merge.duplicates_of(session, customer_id)
        customer = await session.get(Customer, customer_id)
        supervisor = await auth.is_supervisor(session, agent_id)
    return await fragment(request, agent_id, "partials/duplicates.html", customer=customer, found=found,
                          supervisor=supervisor)


@panel
async def duplicate_list(request: Request, agent_id: int) -> Response:
    async with wiring(request).ctx.db.transaction() as session:
        pairs = await merge.duplicate_list(session)
    return await fragment(request, agent_id, "partials/duplicates.html", customer=None, pairs=pairs)


@signed_in
async def merge_customers(request: Request, agent_id: int) -> Response:
    keep_id = path_id(request, NO_CUSTOMER)
    form = await request.form()
    other = optional_id(form, "other_id", NotFound("That customer does not exist.", field="other_id"))
    if other is None:
        raise InvalidInput("Choose the customer to merge into this one.", field="other_id")
    record = await merge.merge(wiring(request).ctx, agent_id, keep_id, other)
    _ = i18n.translations(await language_of(request, agent_id)).gettext
    async with wiring(request).ctx.db.transaction() as session:
        customer = await session.get(Customer, keep_id)
        found = await merge.duplicates_of(session, keep_id)
    html = wiring(request).renderer.render(
        "partials/duplicates.html", await language_of(request, agent_id), customer=customer, found=found,
        supervisor=True,
        merged=_("%(name)s was merged into this customer.") % {"name": record.merged_name})
    return with_live(html)


# Personal data (GDPR) -------------------------------------------------------------------------

PRIVATE = {"Cache-Control": "no-store"}  # personal data: never kept by a browser or proxy cache


def _from_elsewhere(request: Request) -> Response | None:
    """The export writes to the audit trail, so a link on another site must not open it in a
    supervisor's name (the session cookie goes along with a top-level GET)."""
    if from_another_site(request):
        return PlainTextResponse("Open the export from the console's customer page.", status_code=403)
    return None


@signed_in
async def export_customer(request: Request, agent_id: int) -> Response:
    """Everything held about the customer as a page to read or print (supervisors; audited)."""
    if (refused := _from_elsewhere(request)) is not None:
        return refused
    customer_id = path_id(request, NO_CUSTOMER)
    data = await privacy.export(wiring(request).ctx, agent_id, customer_id, "html")
    language = await language_of(request, agent_id)
    renderer = wiring(request).renderer
    when = renderer.context(language)["when"]

    def at(value: str | None) -> str:
        return when(datetime.fromisoformat(value), "d MMM yyyy HH:mm") if value else "–"

    return HTMLResponse(renderer.render("export.html", language, data=data, at=at), headers=PRIVATE)


@signed_in
async def export_customer_json(request: Request, agent_id: int) -> Response:
    """The same as JSON, downloaded as a file (supervisors; audited)."""
    if (refused := _from_elsewhere(request)) is not None:
        return refused
    customer_id = path_id(request, NO_CUSTOMER)
    data = await privacy.export(wiring(request).ctx, agent_id, customer_id, "json")
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return Response(body, media_type="application/json", headers={
        **PRIVATE, "Content-Disposition": f'attachment; filename="customer-{customer_id}.json"'})


@signed_in
async def erase_customer(request: Request, agent_id: int) -> Response:
    customer_id = path_id(request, NO_CUSTOMER)
    await privacy.erase(wiring(request).ctx, agent_id, customer_id)
    # The pages that showed the customer close by themselves (pushed); this says what happened.
    return await done_notice(request, agent_id, N_("Customer #%(id)s was erased."), id=customer_id)


# Canned responses -----------------------------------------------------------------------------

async def canned_page(request: Request, agent_id: int, status_code: int = 200, **values: Any) -> Response:
    w = wiring(request)
    async with w.ctx.db.transaction() as session:
        supervisor = await auth.is_supervisor(session, agent_id)
        responses = await canned.listed(session)
        current = await session.scalar(select(Conversation.id).where(
            Conversation.agent_id == agent_id, Conversation.state == State.ACTIVE).order_by(Conversation.id).limit(1))
    return await fragment(request, agent_id, "partials/canned.html", status_code, responses=responses,
                          supervisor=supervisor, conversation_id=current, **values)


@panel
async def list_canned(request: Request, agent_id: int) -> Response:
    return await canned_page(request, agent_id)


@signed_in
async def save_canned(request: Request, agent_id: int) -> Response:
    form = await request.form()
    raw_id = request.path_params.get("id")
    values = {"title": field(form, "title", canned.MAX_TITLE), "body": field(form, "body", canned.MAX_BODY)}
    try:
        await canned.save(wiring(request).ctx, agent_id, values["title"], values["body"],
                          record_id(raw_id, NO_RESPONSE) if raw_id is not None else None)
    except ConsoleError as exc:
        _ = i18n.translations(await language_of(request, agent_id)).gettext
        return await canned_page(request, agent_id, status_of(exc), error=exc.translated(_), values=values)
    return await canned_page(request, agent_id)


@signed_in
async def delete_canned(request: Request, agent_id: int) -> Response:
    await canned.remove(wiring(request).ctx, agent_id, path_id(request, NO_RESPONSE))
    return await canned_page(request, agent_id)


@panel
async def fill_canned(request: Request, agent_id: int) -> Response:
    w = wiring(request)
    raw = request.query_params.get("conversation", "")
    conversation_id = record_id(raw, NO_CONVERSATION) if raw else None
    text = await canned.render_for(w.ctx, agent_id, path_id(request, NO_RESPONSE), conversation_id)
    return HTMLResponse(escape(text))  # swapped into the page: customer names are untrusted
