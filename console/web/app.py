"""The app factory: the single place that names the concrete adapters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from console import chat, handoffs, i18n, logs, offers, presence, privacy, routing, wrapup
from console.errors import ConsoleError, Unavailable
from console.models import Agent
from console.settings import Settings
from console.settings import load as load_settings
from console.web import (
    admin,
    attachments,
    connections,
    health,
    live,
    mails,
    openapi,
    pages,
    reports,
    supervisor,
    visitors,
    workspace,
)
from console.web.assets import StaticAssets, asset_dir
from console.web.metrics import metrics_endpoint
from console.web.render import AGENTS_CHANGED_STREAM
from console.web.security import CSRFMiddleware, SecurityHeaders, policy_headers
from console.web.statuses import status_of
from console.web.wiring import Wiring, build
from integrations.messaging import twilio as twilio_messaging
from integrations.telephony import cti
from integrations.telephony import twilio as twilio_voice
from realtime import BusUnavailable, Overflow

log = logging.getLogger("console.web")

# How uvicorn serves the console, everywhere it runs (serve, demo, tests). No permessage-deflate:
# its compressor and decompressor cost some 55 KiB per socket for frames of a few KiB that
# change little (benchmarks, B3), and the pushes are small fragments now.
# The app reads X-Forwarded-For itself (from CONSOLE_TRUSTED_PROXIES only), so uvicorn must not.
# The page sends nothing on its socket, so a frame from the browser over 64 KiB is refused (1009)
# instead of held in memory (uvicorn's default allows 16 MiB).
SERVER_OPTIONS: dict[str, Any] = {"ws": "websockets-sansio", "ws_per_message_deflate": False,
                                  "proxy_headers": False, "ws_max_size": 64 * 1024}
CTI_PATH = re.compile(r"(/integrations/cti/)[^/?\s]+")

async def console_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleError)
    status = status_of(exc)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Unavailable) else {}
    if request.url.path.startswith("/integrations/"):
        return JSONResponse({"error": exc.message, "field": exc.field}, status_code=status, headers=headers)
    w: Wiring = request.app.state.wiring
    language = w.settings.default_language
    agent_id = request.session.get("agent_id")
    if isinstance(agent_id, int):
        try:
            # A read: when the error is a shed write, it must not wait for the writer's turn again.
            async with w.ctx.db.reading() as session:
                language = await session.scalar(select(Agent.language).where(Agent.id == agent_id)) or language
        except ConsoleError:
            pass
    text = exc.translated(i18n.translations(language).gettext)
    html = w.renderer.render("partials/flash.html", language, message=text)
    return HTMLResponse(html, status_code=status, headers=headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    """The answer to a bug (Starlette logs its traceback): a plain message, under the same browser
    policy as every other answer (this one is sent outside the middleware that adds it)."""
    response = PlainTextResponse("Something went wrong on the server. It was logged; try again.", status_code=500)
    response.headers.update({name.decode(): value.decode() for name, value in policy_headers(request.scope)})
    return response


class RequestIds:
    """Every request gets an id (the caller's X-Request-ID, or a new one) for its log lines."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        rid = given if given and len(given) <= 64 and given.isprintable() else secrets.token_hex(8)
        logs.request_id.set(rid)
        logs.conversation_id.set("-")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


class HideCTIToken(logging.Filter):
    """Access logs print request paths, and the CTI path carries the secret token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(CTI_PATH.sub(r"\1***", arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def hide_cti_token_in_access_logs() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HideCTIToken) for f in access.filters):
        access.addFilter(HideCTIToken())


SOCKET_REFRESH_SECONDS = 10.0


IDLE_SWEEP_SECONDS = 10.0  # idle chats are looked for this often (minutes are what counts there)


def every(seconds: float, sweep: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    """`sweep` at most once per `seconds`, however often the round comes."""
    last = [float("-inf")]

    async def maybe() -> object:
        now = time.monotonic()
        if now - last[0] < seconds:
            return None
        last[0] = now
        return await sweep()
    return maybe


async def sweep_forever(w: Wiring) -> None:
    """Deadlines fire here: offers ring out, wrap-ups time out, absent agents go offline.

    Every node runs this; the sweeps lock what they take with SKIP LOCKED, so nodes share the
    work instead of doing it twice. A failing sweep is logged and tried again next round.
    """
    grace = timedelta(seconds=w.settings.presence_grace)
    sweeps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("offers", lambda: offers.sweep(w.ctx)),
        ("wrap-up", lambda: wrapup.sweep(w.ctx)),
        ("handoffs", lambda: handoffs.sweep(w.ctx)),
        ("presence", lambda: presence.sweep(w.ctx, grace)),
        ("queue", lambda: routing.sweep_queue(w.ctx)),
        ("queue sizes", lambda: update_queue_sizes(w)),
        ("idle chats", every(IDLE_SWEEP_SECONDS, lambda: chat.sweep_idle(w.ctx))),
    ]
    down = False
    while True:
        await asyncio.sleep(w.settings.sweep_interval)
        failed = False
        for name, sweep in sweeps:
            try:
                await sweep()
            except Unavailable as exc:
                # The database is down, restarting or busy: one line when that starts, one when a
                # round goes through again, not a traceback per sweep per second. The other sweeps
                # still run (a shed or a deadlock in one says nothing about the next).
                if not down:
                    log.warning("the %s sweep waits for the database (%s); trying again each round", name,
                                exc.message)
                failed = down = True
            except Exception:
                log.exception("the %s sweep failed; trying again next round", name)
        if down and not failed:
            log.warning("sweeps go through again")
            down = False


async def update_queue_sizes(w: Wiring) -> None:
    figures = await routing.queue_figures(w.ctx)
    w.metrics.queue_size.clear()
    w.metrics.queue_ringing.clear()
    for name, numbers in figures.items():
        w.metrics.queue_size.labels(queue=name or "(none)").set(numbers.waiting)
        w.metrics.queue_ringing.labels(queue=name or "(none)").set(numbers.ringing)


async def follow_agent_changes(w: Wiring) -> None:
    """Drop this node's copy of an agent whose language another node changed (the page's language
    switch publishes it). While the bus is away, changes may be missed: everyone is read again once
    it is back. One line when following stops, one when it resumes."""
    paused = False
    while True:
        try:
            async with w.bus.subscribe(AGENTS_CHANGED_STREAM, 1000) as changes:
                w.notifier.forget()
                if paused:
                    log.warning("following agent changes again")
                    paused = False
                while True:
                    frame = await changes.get()
                    if frame.payload.isdigit():
                        w.notifier.forget(int(frame.payload))
        except Exception as exc:  # the bus lost frames, went away or failed: never stop following
            if not paused:
                log.warning("following agent changes paused (%s); every agent is read again when it resumes",
                            type(exc).__name__ if isinstance(exc, (BusUnavailable, Overflow)) else repr(exc))
                paused = True
            await asyncio.sleep(1)


async def refresh_sockets_forever(w: Wiring) -> None:
    """Tell the database this node still holds its sockets, and close those whose session ended;
    separate from the sweeps, so a slow sweep never makes present agents look gone."""
    interval = min(SOCKET_REFRESH_SECONDS, w.settings.presence_grace / 3)
    while True:
        await asyncio.sleep(interval)
        try:
            await presence.refresh(w.ctx, w.sockets)
            await live.close_ended_sessions(w)
        except Unavailable as exc:
            log.warning("could not refresh this node's sockets, the database is unavailable: %s", exc.message)
        except Exception:
            log.exception("could not refresh this node's sockets; trying again")


RETENTION_EVERY_SECONDS = 3600.0


def retention_of(settings: Settings) -> privacy.Retention:
    return privacy.Retention(conversations=settings.retain_conversations_days, notes=settings.retain_notes_days,
                             audit=settings.retain_audit_days)


async def retain_forever(w: Wiring) -> None:
    """The retention sweep: once a minute after start, then every hour (every node runs it; what
    one node did, the next finds done)."""
    keep = retention_of(w.settings)
    if keep.keeps_everything:
        return
    await asyncio.sleep(60)
    while True:
        try:
            await privacy.sweep(w.ctx, keep)
        except Unavailable as exc:
            log.warning("the retention sweep waits for the database (unavailable: %s); trying again in an hour",
                        exc.message)
        except Exception:
            log.exception("the retention sweep failed; trying again in an hour")
        await asyncio.sleep(RETENTION_EVERY_SECONDS)


def make_routes(w: Wiring) -> list[BaseRoute]:
    return [
        Route("/", pages.agent_page, methods=["GET"]),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/login/code", pages.login_code, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/agent/status", pages.set_status, methods=["POST"]),
        Route("/agent/language", pages.set_language, methods=["POST"]),
        Route("/account", workspace.account, methods=["GET"]),
        Route("/account/password", workspace.change_password, methods=["POST"]),
        Route("/conversations/{id:int}/customer", pages.link_customer, methods=["POST"]),
        Route("/conversations/{id:int}/accept", pages.accept_offer, methods=["POST"]),
        Route("/conversations/{id:int}/decline", pages.decline_offer, methods=["POST"]),
        Route("/conversations/{id:int}/wrap-up", pages.wrap_up, methods=["POST"]),
        Route("/conversations/{id:int}/end", pages.end_conversation, methods=["POST"]),
        Route("/conversations/{id:int}/messages", pages.send_message, methods=["POST"]),
        Route("/conversations/{id:int}/replies", pages.send_reply, methods=["POST"]),
        Route("/conversations/{id:int}/attachments", attachments.agent_upload, methods=["POST"]),
        Route("/attachments/{id:int}", attachments.agent_file, methods=["GET"]),
        Route("/mails/{id:int}/html", mails.mail_html, methods=["GET"]),
        Route("/mails/{id:int}/send-again", pages.send_mail_again, methods=["POST"]),
        Route("/conversations/{id:int}/typing", visitors.agent_types, methods=["POST"]),
        Route("/conversations/{id:int}/read", visitors.agent_read, methods=["POST"]),
        Route("/conversations/{id:int}/customers", pages.create_customer, methods=["POST"]),
        Route("/conversations/{id:int}/notes", workspace.conversation_note, methods=["POST"]),
        Route("/conversations/{id:int}/handoff", workspace.start_handoff, methods=["POST"]),
        Route("/handoffs/{id:int}/accept", workspace.accept_handoff, methods=["POST"]),
        Route("/handoffs/{id:int}/decline", workspace.decline_handoff, methods=["POST"]),
        Route("/handoffs/{id:int}/cancel", workspace.cancel_handoff, methods=["POST"]),
        Route("/pickers/{kind}", workspace.picker, methods=["GET"]),
        Route("/tickets", workspace.my_tickets, methods=["GET"]),
        Route("/tickets", workspace.open_ticket, methods=["POST"]),
        Route("/tickets/{id:int}", workspace.show_ticket, methods=["GET"]),
        Route("/tickets/{id:int}", workspace.edit_ticket, methods=["POST"]),
        Route("/tickets/{id:int}/comments", workspace.comment_ticket, methods=["POST"]),
        Route("/customers/search", workspace.search_customers, methods=["GET"]),
        Route("/customers/close", workspace.close_customer, methods=["POST"]),
        Route("/customers/{id:int}/open", workspace.open_customer, methods=["POST"]),
        Route("/customers/{id:int}", workspace.save_customer, methods=["POST"]),
        Route("/customers/{id:int}/edit", workspace.edit_customer_form, methods=["GET"]),
        Route("/customers/{id:int}/notes", workspace.customer_note, methods=["POST"]),
        Route("/customers/{id:int}/mails", mails.write_mail, methods=["POST"]),
        Route("/customers/{id:int}/contact-points", workspace.add_contact_point, methods=["POST"]),
        Route("/customers/{id:int}/addresses", workspace.add_address, methods=["POST"]),
        Route("/customers/{id:int}/contact-points/{detail:int}/delete", workspace.remove_contact_point,
              methods=["POST"]),
        Route("/customers/{id:int}/addresses/{detail:int}/delete", workspace.remove_address, methods=["POST"]),
        Route("/customers/{id:int}/contracts", workspace.add_contract, methods=["POST"]),
        Route("/customers/{id:int}/contracts/{detail:int}", workspace.add_contract, methods=["POST"]),
        Route("/customers/{id:int}/export", workspace.export_customer, methods=["GET"]),
        Route("/customers/{id:int}/export.json", workspace.export_customer_json, methods=["GET"]),
        Route("/customers/{id:int}/erase", workspace.erase_customer, methods=["POST"]),
        Route("/customers/{id:int}/duplicates", workspace.duplicates_of, methods=["GET"]),
        Route("/audit/{entity}/{id:int}", workspace.audit_trail, methods=["GET"]),
        Route("/customers/{id:int}/merge", workspace.merge_customers, methods=["POST"]),
        Route("/duplicates", workspace.duplicate_list, methods=["GET"]),
        Route("/canned", workspace.list_canned, methods=["GET"]),
        Route("/canned", workspace.save_canned, methods=["POST"]),
        Route("/canned/{id:int}", workspace.save_canned, methods=["POST"]),
        Route("/canned/{id:int}/delete", workspace.delete_canned, methods=["POST"]),
        Route("/canned/{id:int}/fill", workspace.fill_canned, methods=["GET"]),
        # Admin pages (admins only)
        Route("/admin", admin.overview, methods=["GET"]),
        Route("/admin/agents", admin.list_agents, methods=["GET"]),
        Route("/admin/agents", admin.create_agent, methods=["POST"]),
        Route("/admin/agents/{id:int}", admin.show_agent, methods=["GET"]),
        Route("/admin/agents/{id:int}", admin.edit_agent, methods=["POST"]),
        Route("/admin/agents/{id:int}/password", admin.reset_agent_password, methods=["POST"]),
        Route("/admin/agents/{id:int}/deactivate", admin.deactivate_agent, methods=["POST"]),
        Route("/admin/agents/{id:int}/reactivate", admin.reactivate_agent, methods=["POST"]),
        Route("/admin/agents/{id:int}/totp", admin.set_agent_totp, methods=["POST"]),
        Route("/admin/queues", admin.list_queues, methods=["GET"]),
        Route("/admin/queues", admin.create_queue, methods=["POST"]),
        Route("/admin/queues/{id:int}", admin.show_queue, methods=["GET"]),
        Route("/admin/queues/{id:int}", admin.edit_queue, methods=["POST"]),
        Route("/admin/skills", admin.list_skills, methods=["GET"]),
        Route("/admin/skills", admin.add_skill, methods=["POST"]),
        Route("/admin/dispositions", admin.list_dispositions, methods=["GET"]),
        Route("/admin/dispositions", admin.set_dispositions, methods=["POST"]),
        Route("/admin/chat-sites", admin.list_sites, methods=["GET"]),
        Route("/admin/chat-sites", admin.create_site, methods=["POST"]),
        Route("/admin/chat-sites/{id:int}", admin.show_site, methods=["GET"]),
        Route("/admin/chat-sites/{id:int}", admin.edit_site, methods=["POST"]),
        Route("/admin/connections", connections.connections, methods=["GET"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi.openapi, methods=["GET"]),
        Route("/supervisor", supervisor.supervisor_page, methods=["GET"]),
        Route("/reports", reports.reports_page, methods=["GET"]),
        Route("/reports/{table}.csv", reports.report_csv, methods=["GET"]),
        Route("/supervisor/agents/{id:int}", supervisor.agent_panel, methods=["GET"]),
        Route("/supervisor/agents/{id:int}/status", supervisor.set_agent_status, methods=["POST"]),
        Route("/supervisor/agents/{id:int}/watch", supervisor.watch_page, methods=["GET"]),
        Route("/supervisor/conversations/{id:int}/whisper", supervisor.whisper, methods=["POST"]),
        Route("/supervisor/conversations/{id:int}/take-over", supervisor.take_over, methods=["POST"]),
        Route("/supervisor/conversations/{id:int}", supervisor.conversation_panel, methods=["GET"]),
        Route("/supervisor/conversations/{id:int}/reassign", supervisor.reassign, methods=["POST"]),
        WebSocketRoute("/ws", live.live_socket),
        Route("/chat/widget.js", visitors.widget_script, methods=["GET"]),
        WebSocketRoute("/chat/ws", visitors.visitor_socket),
        Route("/chat/try", visitors.try_page, methods=["GET"]),
        Route("/chat/attachments", attachments.visitor_upload, methods=["POST", "OPTIONS"]),
        Route("/chat/files/{id:int}", attachments.visitor_file, methods=["GET"]),
        *cti.routes(w.ctx, w.settings.cti_token, observe_pop=w.metrics.pop_latency.observe),
        *twilio_voice.routes(w.voice),
        *twilio_messaging.routes(w.messaging),
        Mount("/static", StaticAssets(directory=asset_dir("static")), name="static"),
    ]


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    w = build(settings)
    hide_cti_token_in_access_logs()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await w.bus.start()
        tasks = [asyncio.create_task(sweep_forever(w), name="sweeps"),
                 asyncio.create_task(refresh_sockets_forever(w), name="socket refresh"),
                 asyncio.create_task(retain_forever(w), name="retention"),
                 asyncio.create_task(follow_agent_changes(w), name="agent changes"),
                 asyncio.create_task(w.wallboard.run(), name="wallboard"),
                 asyncio.create_task(w.wallboard.follow(), name="wallboard follower")]
        if w.twilio.can_call_api:
            tasks.append(asyncio.create_task(w.messaging.run(), name="text replies"))
        if w.asterisk is not None:
            tasks.append(asyncio.create_task(w.asterisk.run(), name="asterisk"))
        if w.mailboxes is not None:
            await w.mailboxes.start()
        try:
            yield
        finally:
            if w.mailboxes is not None:
                await w.mailboxes.close()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await w.wallboard.close()
            await w.voice.close()
            await w.messaging.close()
            await w.notifier.close()
            await w.bus.close()
            await w.ctx.db.close()

    middleware = [
        # The client's address (login limits, logs) is the connecting peer's, unless that peer is a
        # trusted reverse proxy: then the nearest address in X-Forwarded-For that is not one.
        Middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies)),
        Middleware(SecurityHeaders),
        Middleware(RequestIds),
        # Pages and static files travel compressed (the agent page's first load is about a third).
        Middleware(GZipMiddleware, minimum_size=500,  # not the chat's files: pictures and PDFs are compressed
                   exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/pdf")),
        Middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie="console_session",
                   max_age=settings.session_max_age, same_site="lax", https_only=settings.cookie_secure),
        # The chat widget's file upload comes from the website's page without the console's cookie:
        # it carries the visitor's token and is checked against the site's origins instead.
        Middleware(CSRFMiddleware, allowed_origins=settings.allowed_origins,
                   exempt_prefixes=("/integrations/",), exempt_paths=("/chat/attachments",)),
    ]
    app = Starlette(routes=make_routes(w), middleware=middleware, lifespan=lifespan,
                    exception_handlers={ConsoleError: console_error, Exception: internal_error})
    app.state.wiring = w
    return app
