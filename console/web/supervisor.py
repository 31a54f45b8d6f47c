"""The supervisors' pages: the wallboard (its board comes from console.web.board), stepping in
for an agent or a waiting contact, a silent view of an agent's screen, and whispering into or
taking over a chat (console.supervising does each)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from console import i18n, supervising
from console.errors import Forbidden, NotFound
from console.i18n import N_
from console.models import Agent, AgentStatus, Channel, Conversation, Queue, Role, State
from console.web.pages import field, record_id, wiring
from console.web.security import csrf_token, signed_in_as, signed_out
from console.web.wiring import Wiring

SUPERVISING = (Role.SUPERVISOR, Role.ADMIN)
NOT_FOR_AGENTS = Forbidden(N_("The wallboard is for supervisors."))


async def supervisor_page(request: Request) -> Response:
    found = await signed_in_as(request, wiring(request).ctx.db)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    agent_id, role = found
    if role not in SUPERVISING:
        raise NOT_FOR_AGENTS
    w = wiring(request)
    async with w.ctx.db.reading() as session:
        me = (await session.execute(select(Agent.name, Agent.language).where(Agent.id == agent_id))).one()
    board = w.wallboard.render(await w.wallboard.read(), me.language)
    html = w.renderer.render("supervisor.html", me.language, board_html=board, name=me.name, role=role.value,
                             here="/supervisor", csrf=csrf_token(request.session))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


# Stepping in -------------------------------------------------------------------------------------

NO_AGENT = NotFound("That agent does not exist.")
NO_CONVERSATION = NotFound("This conversation does not exist.")


def stepping_in(handler: Callable[[Request, int], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint for supervisors (given their id); agents are refused, a stale session is told so."""
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        found = await signed_in_as(request, wiring(request).ctx.db)
        if found is None:
            return signed_out()
        if found[1] not in SUPERVISING:
            raise Forbidden(supervising.ONLY_SUPERVISORS)
        return await handler(request, found[0])

    return endpoint


async def _language(w: Wiring, agent_id: int) -> str:
    async with w.ctx.db.reading() as session:
        return await session.scalar(select(Agent.language).where(Agent.id == agent_id)) or "en"


@stepping_in
async def agent_panel(request: Request, by: int) -> Response:
    """What a supervisor can do for one agent: set their status, log them out."""
    w = wiring(request)
    agent_id = record_id(request.path_params["id"], NO_AGENT)
    async with w.ctx.db.reading() as session:
        agent = await session.get(Agent, agent_id)
        if agent is None:
            raise NO_AGENT
        chats = (await session.execute(
            select(Conversation.id, Conversation.from_address).where(
                Conversation.agent_id == agent_id, Conversation.channel == Channel.CHAT,
                Conversation.state == State.ACTIVE).order_by(Conversation.id))).all()
    html = w.renderer.render("partials/step_in_agent.html", await _language(w, by), agent=agent,
                             away_reasons=w.settings.away_reasons, chats=chats)
    return HTMLResponse(html)


@stepping_in
async def set_agent_status(request: Request, by: int) -> Response:
    w = wiring(request)
    agent_id = record_id(request.path_params["id"], NO_AGENT)
    form = await request.form()
    log_out = field(form, "log_out", 5) == "1"
    await supervising.set_agent_status(w.ctx, by, agent_id, field(form, "status", 20),
                                       field(form, "reason", 100) or None, log_out=log_out)
    return await _done(request, by, N_("Done: logged out.") if log_out else N_("Done: the status is set."))


@stepping_in
async def conversation_panel(request: Request, by: int) -> Response:
    """Where a waiting or ringing contact can go: an agent who can take it now, or another queue."""
    w = wiring(request)
    conversation_id = record_id(request.path_params["id"], NO_CONVERSATION)
    async with w.ctx.db.reading() as session:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            raise NO_CONVERSATION
        agents = (await session.execute(select(Agent.id, Agent.name, Agent.status)
                                        .where(Agent.status != AgentStatus.OFFLINE).order_by(Agent.name))).all()
        queues = (await session.execute(select(Queue.id, Queue.name).order_by(Queue.name))).all()
    html = w.renderer.render("partials/step_in_conversation.html", await _language(w, by),
                             conversation=conversation, agents=agents, queues=queues)
    return HTMLResponse(html)


@stepping_in
async def reassign(request: Request, by: int) -> Response:
    w = wiring(request)
    conversation_id = record_id(request.path_params["id"], NO_CONVERSATION)
    form = await request.form()
    agent = field(form, "agent", 12)
    queue = field(form, "queue", 12)
    moved = await supervising.reassign(
        w.ctx, by, conversation_id,
        agent_id=record_id(agent, NotFound("That agent does not exist.", field="agent")) if agent else None,
        queue_id=record_id(queue, NotFound("That queue does not exist.", field="queue")) if queue else None)
    if moved.offered_to is None:
        return await _done(request, by, N_("Done: it waits in the queue for the next agent who can take it."))
    return await _done(request, by, N_("Done: it rings for the agent now."))


async def _done(request: Request, by: int, message: str, link: str = "") -> Response:
    w = wiring(request)
    language = await _language(w, by)
    text = i18n.translations(language).gettext(message)
    html = w.renderer.render("partials/step_in_done.html", language, message=text, link=link)
    return HTMLResponse(html)


async def watch_page(request: Request) -> Response:
    """A silent, read-only view of an agent's live screen: the fragments the agent receives, on a
    page where nothing can be clicked or typed. Audited; the agent is told."""
    found = await signed_in_as(request, wiring(request).ctx.db)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    by, role = found
    if role not in SUPERVISING:
        raise Forbidden(supervising.ONLY_SUPERVISORS)
    w = wiring(request)
    agent_id = record_id(request.path_params["id"], NO_AGENT)
    name = await supervising.watch(w.ctx, by, agent_id)
    live = w.renderer.live(await w.notifier.view(agent_id))
    html = w.renderer.render("watch.html", await _language(w, by), name=name, agent_id=agent_id, live_html=live,
                             role=role.value, here="/supervisor", csrf=csrf_token(request.session))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@stepping_in
async def whisper(request: Request, by: int) -> Response:
    w = wiring(request)
    conversation_id = record_id(request.path_params["id"], NO_CONVERSATION)
    form = await request.form()
    await supervising.whisper(w.ctx, by, conversation_id, field(form, "text", 2000))
    return await _done(request, by, N_("Done: the operator reads your whisper in their chat."))


@stepping_in
async def take_over(request: Request, by: int) -> Response:
    w = wiring(request)
    conversation_id = record_id(request.path_params["id"], NO_CONVERSATION)
    await supervising.take_over(w.ctx, by, conversation_id)
    return await _done(request, by, N_("Done: the chat is yours now; answer it in your agent console."),
                       link="/")
