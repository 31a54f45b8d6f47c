"""The admin pages (admins only): agents, queues, skills, dispositions, chat sites and connections.

Each page is a template under templates/admin/, shown inside admin/page.html. Its forms post with
htmx and get the page's main part back: saved, or refused with the error next to its field and
what was typed still in the form. A save is one transaction: a refusal stores nothing.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from console import admin, audit, auth, i18n
from console.errors import ConsoleError, Forbidden, InvalidInput, NotFound, Unavailable
from console.i18n import N_
from console.models import Agent, ChatSite, Queue, Role, Skill
from console.web.pages import CONTROL, field, record_id, wiring
from console.web.render import agent_stream
from console.web.security import csrf_token, signed_in_as, signed_out
from console.web.statuses import status_of
from realtime import BusUnavailable, close_frame

NOT_ADMIN = Forbidden(N_("Only admins open the admin pages."))
PRIVATE = {"Cache-Control": "no-store"}  # a password shown once must not stay in a cache


@dataclass(frozen=True)
class Admin:
    """The signed-in admin: who changes things, and the language the pages are in."""

    id: int
    language: str

    def gettext(self, message: str) -> str:
        return i18n.translations(self.language).gettext(message)


Handler = Callable[[Request, Admin], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def admins_only(handler: Handler) -> Endpoint:
    """Admins get the page; other roles 403; logged out: the login page (a tab) or 401 (htmx)."""
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        w = wiring(request)
        found = await signed_in_as(request, w.ctx.db)
        if found is None:
            if (request.method == "GET" and not request.headers.get("hx-request")
                    and "text/html" in request.headers.get("accept", "")):
                return RedirectResponse("/login", status_code=303)
            return signed_out()
        agent_id, role = found
        if role is not Role.ADMIN:
            raise NOT_ADMIN
        async with w.ctx.db.reading() as session:
            language = await session.scalar(select(Agent.language).where(Agent.id == agent_id))
        return await handler(request, Admin(agent_id, language or w.settings.default_language))

    return endpoint


def render(request: Request, who: Admin, content: str, status_code: int = 200, **values: Any) -> Response:
    """The whole page for a browser tab; only its main part for htmx (a form's answer)."""
    whole = request.method == "GET" and not request.headers.get("hx-request")
    html = wiring(request).renderer.render("admin/page.html" if whole else content, who.language, content=content,
                                           csrf=csrf_token(request.session), role="admin", here=request.url.path,
                                           me=who.id, **values)
    return HTMLResponse(html, status_code=status_code, headers=PRIVATE)


Show = Callable[[int], Awaitable[Response]]
Change = Callable[[AsyncSession], Awaitable[object]]


async def save(request: Request, who: Admin, change: Change,
               show: Callable[..., Awaitable[Response]]) -> Response:
    """`change` in one transaction, then the page again: `show(status, result=...)` when saved,
    `show(status, error=..., error_field=...)` when refused (with the form as typed)."""
    try:
        async with wiring(request).ctx.db.transaction() as session:
            result = await change(session)
    except Unavailable:
        raise
    except ConsoleError as exc:
        return await show(status_of(exc), error=exc.translated(who.gettext), error_field=exc.field or "")
    return await show(200, result=result)


def many(form: FormData, name: str, limit: int = 120) -> list[str]:
    """Every value of a repeated field (a select per skill), checked like `field`."""
    values = [value for value in form.getlist(name) if isinstance(value, str)]
    if len(values) > 1000 or any(len(value) > limit for value in values):
        raise InvalidInput("This text is longer than %(limit)s characters.", field=name, limit=limit)
    if any(CONTROL.search(value) for value in values):
        raise InvalidInput("This text contains control characters; type or paste it again as plain text.",
                           field=name)
    return [value for value in values if value.strip()]


def path_id(request: Request, missing: NotFound) -> int:
    return record_id(request.path_params["id"], missing)


# The overview -----------------------------------------------------------------------------------

@admins_only
async def overview(request: Request, who: Admin) -> Response:
    async with wiring(request).ctx.db.reading() as session:
        counts = {name: await session.scalar(select(func.count()).select_from(model)) or 0
                  for name, model in (("agents", Agent), ("queues", Queue), ("skills", Skill), ("sites", ChatSite))}
    return render(request, who, "admin/overview.html", counts=counts)


# Agents -----------------------------------------------------------------------------------------

async def agents_page(request: Request, who: Admin, status_code: int = 200, **values: Any) -> Response:
    async with wiring(request).ctx.db.reading() as session:
        rows = await admin.agents(session)
    return render(request, who, "admin/agents.html", status_code, rows=rows, **values)


@admins_only
async def list_agents(request: Request, who: Admin) -> Response:
    return await agents_page(request, who)


NEW_AGENT_FIELDS = ("email", "name", "password", "role", "extension", "language")


@admins_only
async def create_agent(request: Request, who: Admin) -> Response:
    form = await request.form()
    typed: dict[str, str] = {}

    async def change(session: AsyncSession) -> tuple[Agent, str]:
        for name in NEW_AGENT_FIELDS:  # one by one: what was typed before a bad field shows again
            typed[name] = field(form, name, 1001 if name == "password" else 254)
        return await admin.create_agent(session, who.id, admin.NewAgent(**typed))

    async def show(status: int, result: tuple[Agent, str] | None = None, **error: Any) -> Response:
        if result is None:
            return await agents_page(request, who, status, values={**typed, "password": ""}, **error)
        agent, password = result
        return await agents_page(request, who, status, created=agent, password=password)

    return await save(request, who, change, show)


async def agent_page(request: Request, who: Admin, agent_id: int, status_code: int = 200,
                     **values: Any) -> Response:
    async with wiring(request).ctx.db.reading() as session:
        row = await admin.agent_row(session, agent_id)
        skills = await admin.all_skills(session)
        events = await admin.trail(session, audit.AGENT, agent_id)
    levels = dict(row.skills)
    return render(request, who, "admin/agent.html", status_code, row=row, skills=skills, levels=levels,
                  events=events, channels=("call", "chat", "mail"), **values)


@admins_only
async def show_agent(request: Request, who: Admin) -> Response:
    return await agent_page(request, who, path_id(request, admin.NO_AGENT))


AGENT_FIELDS = ("name", "role", "extension", "language", "capacity_call", "capacity_chat", "capacity_mail")


@admins_only
async def edit_agent(request: Request, who: Admin) -> Response:
    agent_id = path_id(request, admin.NO_AGENT)
    form = await request.form()
    typed: dict[str, Any] = {}

    async def change(session: AsyncSession) -> Agent:
        typed.update({name: field(form, name, 200) for name in AGENT_FIELDS})
        typed["skills"] = many(form, "skills")
        capacity = {channel: typed[f"capacity_{channel}"] for channel in ("call", "chat", "mail")}
        return await admin.update_agent(session, who.id, agent_id, admin.AgentChanges(
            name=typed["name"], role=typed["role"], extension=typed["extension"], language=typed["language"],
            capacity=capacity, skills=typed["skills"]))

    async def show(status: int, result: object = None, **error: Any) -> Response:
        if result is None:
            chosen = dict(spec.partition(":")[::2] for spec in typed.get("skills", []))
            return await agent_page(request, who, agent_id, status, values=typed, chosen=chosen, **error)
        return await agent_page(request, who, agent_id, status, saved=True)

    return await save(request, who, change, show)


async def _signed_out_everywhere(request: Request, agent_id: int) -> None:
    """Close the agent's open pages now (else their socket sees the ended session within seconds)."""
    with contextlib.suppress(BusUnavailable):
        await wiring(request).bus.publish(agent_stream(agent_id), close_frame(1008, "signed out"))


@admins_only
async def reset_agent_password(request: Request, who: Admin) -> Response:
    """A new password: the one typed (at least 8 characters), or, left empty, a made-up one."""
    agent_id = path_id(request, admin.NO_AGENT)
    form = await request.form()

    async def change(session: AsyncSession) -> str:
        return await admin.reset_password(session, who.id, agent_id, field(form, "password", auth.MAX_PASSWORD + 1))

    async def show(status: int, result: str | None = None, **error: Any) -> Response:
        if result is None:
            return await agent_page(request, who, agent_id, status, action_error=error.get("error"),
                                    action_field=error.get("error_field"))
        await _signed_out_everywhere(request, agent_id)
        return await agent_page(request, who, agent_id, status, password=result)

    return await save(request, who, change, show)


@admins_only
async def set_agent_totp(request: Request, who: Admin) -> Response:
    """One-time codes on (a new secret, shown once) or off, as `console totp EMAIL [--off]` does."""
    agent_id = path_id(request, admin.NO_AGENT)
    form = await request.form()

    async def change(session: AsyncSession) -> str:
        choice = field(form, "totp", 5)
        if choice not in ("on", "off"):
            raise InvalidInput("Choose on or off.", field="totp")
        return await admin.set_second_factor(session, who.id, agent_id, choice == "on") or ""

    async def show(status: int, result: str | None = None, **error: Any) -> Response:
        if result is None:
            return await agent_page(request, who, agent_id, status, action_error=error.get("error"))
        if not result:
            return await agent_page(request, who, agent_id, status, totp_off=True)
        await _signed_out_everywhere(request, agent_id)
        key = parse_qs(urlsplit(result).query).get("secret", [""])[0]
        return await agent_page(request, who, agent_id, status, totp_uri=result, totp_key=key)

    return await save(request, who, change, show)


@admins_only
async def reactivate_agent(request: Request, who: Admin) -> Response:
    agent_id = path_id(request, admin.NO_AGENT)

    async def show(status: int, result: object = None, **error: Any) -> Response:
        if result is None:
            return await agent_page(request, who, agent_id, status, action_error=error.get("error"))
        return await agent_page(request, who, agent_id, status, reactivated=True)

    return await save(request, who, lambda session: admin.reactivate(session, who.id, agent_id), show)


@admins_only
async def deactivate_agent(request: Request, who: Admin) -> Response:
    agent_id = path_id(request, admin.NO_AGENT)
    w = wiring(request)
    try:
        await admin.deactivate(w.ctx, who.id, agent_id)
    except Unavailable:
        raise
    except ConsoleError as exc:
        return await agent_page(request, who, agent_id, status_of(exc), action_error=exc.translated(who.gettext))
    await _signed_out_everywhere(request, agent_id)
    return await agent_page(request, who, agent_id, deactivated=True)


# Queues -----------------------------------------------------------------------------------------

async def queues_page(request: Request, who: Admin, status_code: int = 200, **values: Any) -> Response:
    async with wiring(request).ctx.db.reading() as session:
        rows = await admin.queues(session)
    return render(request, who, "admin/queues.html", status_code, rows=rows, **values)


@admins_only
async def list_queues(request: Request, who: Admin) -> Response:
    return await queues_page(request, who)


@admins_only
async def create_queue(request: Request, who: Admin) -> Response:
    form = await request.form()
    typed: dict[str, str] = {}

    async def change(session: AsyncSession) -> Queue:
        typed["name"] = field(form, "name", 200)
        return await admin.create_queue(session, who.id, typed["name"])

    async def show(status: int, result: Queue | None = None, **error: Any) -> Response:
        if result is None:
            return await queues_page(request, who, status, values=typed, **error)
        # On to the new queue's settings.
        return Response(status_code=204, headers={"HX-Redirect": f"/admin/queues/{result.id}"})

    return await save(request, who, change, show)


async def queue_page(request: Request, who: Admin, queue_id: int, status_code: int = 200,
                     **values: Any) -> Response:
    async with wiring(request).ctx.db.reading() as session:
        row = await admin.queue_row(session, queue_id)
        skills = await admin.all_skills(session)
        general = await admin.general_dispositions(session)
        events = await admin.trail(session, audit.QUEUE, queue_id)
    return render(request, who, "admin/queue.html", status_code, row=row, skills=skills, levels=dict(row.skills),
                  general=general, events=events, numbers=admin.NUMBER_FIELDS, **values)


@admins_only
async def show_queue(request: Request, who: Admin) -> Response:
    return await queue_page(request, who, path_id(request, admin.NO_QUEUE))


@admins_only
async def edit_queue(request: Request, who: Admin) -> Response:
    queue_id = path_id(request, admin.NO_QUEUE)
    form = await request.form()
    typed: dict[str, Any] = {}

    async def change(session: AsyncSession) -> Queue:
        typed.update({name: field(form, name, 20) for name in (*admin.NUMBER_FIELDS, *admin.WEIGHT_FIELDS)})
        typed["dispositions"] = field(form, "dispositions", 20_000)
        typed["skills"] = many(form, "skills")
        typed.update({name: field(form, name, 600) for name in ("hold_message", "hold_music_url")})
        numbers = {name: typed[name] for name in (*admin.NUMBER_FIELDS, *admin.WEIGHT_FIELDS)}
        return await admin.update_queue(session, who.id, queue_id, admin.QueueChanges(
            numbers=numbers, skills=typed["skills"], dispositions=typed["dispositions"],
            hold_message=typed["hold_message"], hold_music_url=typed["hold_music_url"]))

    async def show(status: int, result: object = None, **error: Any) -> Response:
        if result is None:
            chosen = dict(spec.partition(":")[::2] for spec in typed.get("skills", []))
            return await queue_page(request, who, queue_id, status, values=typed, chosen=chosen, **error)
        return await queue_page(request, who, queue_id, status, saved=True)

    return await save(request, who, change, show)


# Skills and general dispositions ----------------------------------------------------------------

async def skills_page(request: Request, who: Admin, status_code: int = 200, **values: Any) -> Response:
    async with wiring(request).ctx.db.reading() as session:
        used = await admin.skill_use(session)
    return render(request, who, "admin/skills.html", status_code, used=used, **values)


@admins_only
async def list_skills(request: Request, who: Admin) -> Response:
    return await skills_page(request, who)


@admins_only
async def add_skill(request: Request, who: Admin) -> Response:
    form = await request.form()
    typed: dict[str, str] = {}

    async def change(session: AsyncSession) -> Skill:
        typed["skill"] = field(form, "skill", 200)
        return await admin.add_skill(session, who.id, typed["skill"])

    async def show(status: int, result: Skill | None = None, **error: Any) -> Response:
        if result is None:
            return await skills_page(request, who, status, values=typed, **error)
        return await skills_page(request, who, status, added=result.name)

    return await save(request, who, change, show)


async def dispositions_page(request: Request, who: Admin, status_code: int = 200, **values: Any) -> Response:
    async with wiring(request).ctx.db.reading() as session:
        codes = await admin.general_dispositions(session)
        events = await admin.trail(session, audit.DISPOSITIONS, admin.GENERAL)
    return render(request, who, "admin/dispositions.html", status_code, codes=codes, events=events, **values)


@admins_only
async def list_dispositions(request: Request, who: Admin) -> Response:
    return await dispositions_page(request, who)


@admins_only
async def set_dispositions(request: Request, who: Admin) -> Response:
    form = await request.form()
    typed: dict[str, str] = {}

    async def change(session: AsyncSession) -> list[str]:
        typed["dispositions"] = field(form, "dispositions", 20_000)
        return await admin.set_general_dispositions(session, who.id, typed["dispositions"])

    async def show(status: int, result: object = None, **error: Any) -> Response:
        if result is None:
            return await dispositions_page(request, who, status, values=typed, **error)
        return await dispositions_page(request, who, status, saved=True)

    return await save(request, who, change, show)


# Chat sites -------------------------------------------------------------------------------------

SITE_FIELDS = {"origins": 5000, "queue": 100, "greeting": 500, "hours": 500, "timezone": 64, "idle_minutes": 10}


def site_form(form: FormData) -> tuple[dict[str, Any], admin.SiteForm]:
    typed: dict[str, Any] = {name: field(form, name, limit + 1) for name, limit in SITE_FIELDS.items()}
    typed["identity_required"] = bool(field(form, "identity_required", 5))
    typed["prechat"] = bool(field(form, "prechat", 5))
    return typed, admin.SiteForm(**typed)


def console_url(request: Request) -> str:
    """The console's address as this admin reaches it, for the tags and URLs to copy."""
    return str(request.base_url).rstrip("/")


async def sites_page(request: Request, who: Admin, status_code: int = 200, **values: Any) -> Response:
    async with wiring(request).ctx.db.reading() as session:
        rows = await admin.sites(session)
        queues = await admin.queue_names(session)
    return render(request, who, "admin/chat_sites.html", status_code, rows=rows, queues=queues, **values)


@admins_only
async def list_sites(request: Request, who: Admin) -> Response:
    return await sites_page(request, who)


@admins_only
async def create_site(request: Request, who: Admin) -> Response:
    form = await request.form()
    typed: dict[str, Any] = {}

    async def change(session: AsyncSession) -> ChatSite:
        typed["name"] = field(form, "name", 201)
        values, settings = site_form(form)
        typed.update(values)
        return await admin.create_site(session, who.id, typed["name"], settings)

    async def show(status: int, result: ChatSite | None = None, **error: Any) -> Response:
        if result is None:
            return await sites_page(request, who, status, values=typed, **error)
        return Response(status_code=204, headers={"HX-Redirect": f"/admin/chat-sites/{result.id}"})

    return await save(request, who, change, show)


async def site_page(request: Request, who: Admin, site_id: int, status_code: int = 200, **values: Any) -> Response:
    async with wiring(request).ctx.db.reading() as session:
        site, queue = await admin.site_row(session, site_id)
        queues = await admin.queue_names(session)
        events = await admin.trail(session, audit.CHAT_SITE, site_id)
    return render(request, who, "admin/chat_site.html", status_code, site=site, queue=queue, queues=queues,
                  events=events, console_url=console_url(request), **values)


@admins_only
async def show_site(request: Request, who: Admin) -> Response:
    return await site_page(request, who, path_id(request, admin.NO_SITE))


@admins_only
async def edit_site(request: Request, who: Admin) -> Response:
    site_id = path_id(request, admin.NO_SITE)
    form = await request.form()
    typed: dict[str, Any] = {}

    async def change(session: AsyncSession) -> ChatSite:
        values, settings = site_form(form)
        typed.update(values)
        return await admin.update_site(session, who.id, site_id, settings)

    async def show(status: int, result: object = None, **error: Any) -> Response:
        if result is None:
            return await site_page(request, who, site_id, status, values=typed, **error)
        return await site_page(request, who, site_id, status, saved=True)

    return await save(request, who, change, show)
