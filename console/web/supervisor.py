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
from console.auth import SUPERVISING
from console.errors import Forbidden, NotFound
from console.i18n import N_
from console.models import Agent, AgentStatus, Channel, Conversation, Queue, State
from console.web.pages import field, record_id, wiring
from console.web.security import csrf_token, signed_in_as, signed_out
from console.web.wiring import Wiring

NOT_FOR_AGENTS = Forbidden(N_("The wallboard and the reports are for supervisors."))
NO_AGENT = supervising.NO_AGENT
NO_CONVERSATION = NotFound("This conversation does not exist.")

Handler = Callable[[Request, int], Awaitable[Response]]


def supervisors(*, page: bool = False) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """An endpoint for supervisors and admins, given the signed-in one's id; agents get 403. Signed
    out: a `page` goes to the login form, anything else is told (htmx then goes there)."""
    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            found = await signed_in_as(request, wiring(request).ctx.db)
            if found is None:
                return RedirectResponse("/login", status_code=303) if page else signed_out()
            if found[1] not in SUPERVISING:
                raise NOT_FOR_AGENTS if page else Forbidden(supervising.ONLY_SUPERVISORS)
            return await handler(request, found[0])

        return endpoint

    return wrap


async def me(w: Wiring, agent_id: int) -> tuple[str, str, str]:
    """The signed-in supervisor's name, language and role, for their pages."""
    async with w.ctx.db.reading() as session:
        found = (await session.execute(select(Agent.name, Agent.language, Agent.role)
                                       .where(Agent.id == agent_id))).one()
    return found.name, found.language, found.role.value


@supervisors(page=True)
async def supervisor_page(request: Request, by: int) -> Response:
    w = wiring(request)
    name, language, role = await me(w, by)
    board = await w.wallboard.snapshot(language)
    html = w.renderer.render("supervisor.html", language, board_html=board, name=name, role=role,
                             here="/supervisor", csrf=csrf_token(request.session))
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


# Stepping in -------------------------------------------------------------------------------------

stepping_in = supervisors()


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
                                        .where(Agent.status != AgentStatus.OFFLINE, Agent.deactivated_at.is_(None))
                                        .order_by(Agent.name))).all()
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


@supervisors(page=True)
async def watch_page(request: Request, by: int) -> Response:
    """A silent, read-only view of an agent's live screen: the fragments the agent receives, on a
    page where nothing can be clicked or typed. Its socket records the watching and tells the agent
    (a GET changes nothing)."""
    w = wiring(request)
    agent_id = record_id(request.path_params["id"], NO_AGENT)
    name = await supervising.watch_target(w.ctx, by, agent_id)  # the socket records the watching
    live = w.renderer.live(await w.notifier.view(agent_id))
    _, language, role = await me(w, by)
    html = w.renderer.render("watch.html", language, name=name, agent_id=agent_id, live_html=live,
                             role=role, here="/supervisor", csrf=csrf_token(request.session))
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
