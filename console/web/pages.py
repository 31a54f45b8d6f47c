"""The pages: login, logout, the agent page and the agent's actions on it."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from console import auth, chat, conversations, i18n, mail, offers, routing, texts, wrapup
from console.errors import Conflict, InvalidInput, NotFound, TooManyAttempts
from console.i18n import N_
from console.models import AgentStatus, Channel, Conversation
from console.ports import Context
from console.web.render import AGENTS_CHANGED_STREAM, agent_stream
from console.web.security import (
    CSRF_FIELD,
    REFUSED,
    SESSION_NOTICE,
    client_address,
    csrf_token,
    sign_in,
    signed_in,
    signed_out,
    token_matches,
)
from console.web.wiring import Wiring
from realtime import BusUnavailable, close_frame

MAX_FIELD = 1000
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # no database stores NUL; none belongs in a form
MAX_ID = 2**31 - 1


def record_id(raw: object, missing: NotFound) -> int:
    """A database id from a path or form value; anything else is the `missing` error (a 404)."""
    value = -1
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 10:
        value = int(raw)
    if not 0 < value <= MAX_ID:
        raise missing
    return value


log = logging.getLogger("console.web")
NO_CONVERSATION = NotFound("This conversation does not exist.")
NO_MAIL = NotFound("This mail does not exist (any more).")
NO_CUSTOMER = NotFound("That customer does not exist.", field="customer_id")


def wiring(request: Request) -> Wiring:
    w: Wiring = request.app.state.wiring
    return w


async def agent_id_of(request: Request) -> int | None:
    return await signed_in(request, wiring(request).ctx.db)


LANGUAGE_COOKIE = "console_language"


def login_language(request: Request) -> str:
    """The login page's language: the one chosen on it (remembered in a cookie), else the browser's."""
    for chosen in (request.query_params.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
        if chosen in i18n.LANGUAGES:
            return chosen
    return i18n.pick_language(request.headers.get("accept-language", ""), wiring(request).settings.default_language)


def form_csrf_ok(request: Request, form: FormData) -> bool:
    given = form.get(CSRF_FIELD)
    if request.scope.get("csrf_ok"):
        return True
    return token_matches(request.session, given if isinstance(given, str) else None)


def field(form: FormData, name: str, limit: int = MAX_FIELD) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if len(value) > limit:
        raise InvalidInput("This text is longer than %(limit)s characters.", field=name, limit=limit)
    if CONTROL.search(value):
        raise InvalidInput("This text contains control characters; type or paste it again as plain text.",
                           field=name)
    return value


def login_page(request: Request, *, error: str = "", email: str = "", status_code: int = 200) -> Response:
    w = wiring(request)
    language = login_language(request)
    html = w.renderer.render("login.html", language, csrf=csrf_token(request.session), error=error, email=email)
    response = HTMLResponse(html, status_code=status_code)
    if request.query_params.get("lang") == language:
        response.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, samesite="lax",
                            secure=w.settings.cookie_secure, httponly=True)
    return response


async def login_form(request: Request) -> Response:
    if await agent_id_of(request) is not None:
        return RedirectResponse("/", status_code=303)
    return login_page(request)


async def _login_form(request: Request) -> FormData | None:
    """The posted login form when its CSRF token is right (these forms post without htmx)."""
    form = await request.form()
    return form if form_csrf_ok(request, form) else None


def _wait(response: Response, exc: TooManyAttempts) -> Response:
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def login(request: Request) -> Response:
    w = wiring(request)
    form = await _login_form(request)
    if form is None:
        return HTMLResponse(REFUSED, status_code=403)
    _ = i18n.translations(login_language(request)).gettext
    email, password = field(form, "email", 254).strip(), field(form, "password")
    if not email or not password:
        return login_page(request, error=_("Enter your email address and password."), email=email, status_code=400)
    address = known_device(request, email) or client_address(request)
    try:
        async with w.ctx.db.transaction() as session:
            agent = await auth.authenticate(session, email, password, address, w.login_policy)
    except TooManyAttempts as exc:
        return _wait(login_page(request, error=exc.translated(_), email=email, status_code=429), exc)
    except auth.AccountDeactivated as exc:
        return login_page(request, error=exc.translated(_), email=email, status_code=403)
    if agent is None:
        return login_page(request, error=_("Email address or password is wrong."), email=email, status_code=400)
    if agent.totp_secret is not None:  # loaded by authenticate
        # Not signed in yet: the session only remembers who passed the password, for a while.
        request.session.clear()
        request.session[PENDING_AGENT], request.session[PENDING_SINCE] = agent.id, int(time.time())
        request.session[PENDING_VERSION] = agent.session_version
        request.session[PENDING_ADDRESS] = address
        return code_page(request)
    sign_in(request.session, agent.id, agent.session_version)
    return remember_device(request, RedirectResponse("/", status_code=303), email)


DEVICE_COOKIE = "console_device"
DEVICE_DAYS = 90


def _device_mac(request: Request, email: str, nonce: str) -> str:
    key = wiring(request).settings.secret_key.encode()
    return hmac.new(key, f"device:{email.strip().lower()}:{nonce}".encode(), hashlib.sha256).hexdigest()[:32]


def known_device(request: Request, email: str) -> str | None:
    """The browser's own name for the login limits when it logged in to this account before.

    A browser that logged in successfully keeps a cookie bound to the account. Its attempts count
    under that name instead of its address, so strangers failing from the same office address
    (one NAT for the whole floor) hold up neither it nor the agent using it.
    """
    nonce, _, mac = request.cookies.get(DEVICE_COOKIE, "").partition(".")
    if len(nonce) == 16 and nonce.isalnum() and hmac.compare_digest(mac, _device_mac(request, email, nonce)):
        return f"device:{nonce}"
    return None


def remember_device(request: Request, response: Response, email: str) -> Response:
    nonce = secrets.token_hex(8)
    response.set_cookie(DEVICE_COOKIE, f"{nonce}.{_device_mac(request, email, nonce)}",
                        max_age=DEVICE_DAYS * 86400, httponly=True, samesite="lax",
                        secure=wiring(request).settings.cookie_secure)
    return response


PENDING_AGENT, PENDING_SINCE, PENDING_VERSION, PENDING_ADDRESS = "totp_agent", "totp_since", "totp_version", "totp_from"
CODE_WAIT = 300  # seconds to type the code after the password


def code_page(request: Request, *, error: str = "", status_code: int = 200) -> Response:
    w = wiring(request)
    html = w.renderer.render("login_code.html", login_language(request), csrf=csrf_token(request.session),
                             error=error)
    return HTMLResponse(html, status_code=status_code)


async def login_code(request: Request) -> Response:
    """The second step of a login with a second factor: the one-time code from the agent's app."""
    w = wiring(request)
    form = await _login_form(request)
    if form is None:
        return HTMLResponse(REFUSED, status_code=403)
    _ = i18n.translations(login_language(request)).gettext
    agent_id, since = request.session.get(PENDING_AGENT), request.session.get(PENDING_SINCE)
    if not isinstance(agent_id, int) or not isinstance(since, int) or time.time() - since > CODE_WAIT:
        request.session.clear()
        return login_page(request, error=_("Log in again: the code must follow the password within five minutes."),
                          status_code=400)
    code = field(form, "code", 20)
    pending_address = request.session.get(PENDING_ADDRESS)
    address = pending_address if isinstance(pending_address, str) else client_address(request)
    try:
        async with w.ctx.db.transaction() as session:
            agent = await auth.check_code(session, agent_id, code, address, w.login_policy)
    except TooManyAttempts as exc:
        return _wait(code_page(request, error=exc.translated(_), status_code=429), exc)
    if agent is None:
        return code_page(request, error=_("That code is wrong or was used already. Enter the current code."),
                         status_code=400)
    if agent.session_version != request.session.get(PENDING_VERSION):
        request.session.clear()
        return login_page(request, error=_("Log in again: your account changed meanwhile."), status_code=400)
    sign_in(request.session, agent.id, agent.session_version)
    return remember_device(request, RedirectResponse("/", status_code=303), agent.email)


async def logout(request: Request) -> Response:
    if await _login_form(request) is None:
        return HTMLResponse(REFUSED, status_code=403)
    agent_id = await agent_id_of(request)
    if agent_id is not None:
        w = wiring(request)
        async with w.ctx.db.transaction() as session:
            await auth.end_sessions(session, agent_id)
        await routing.set_status(w.ctx, agent_id, AgentStatus.OFFLINE)
        # Pages of this agent still open elsewhere close their socket and say "signed out".
        await w.bus.publish(agent_stream(agent_id), close_frame(1008, "signed out"))
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


# What a page shows once when it loads after an action that reloaded it (the key is kept in the session).
PASSWORD_CHANGED = "password-changed"
NOTICES = {PASSWORD_CHANGED: N_("Your password is changed. Your other sessions are signed out.")}


async def agent_page(request: Request) -> Response:
    agent_id = await agent_id_of(request)
    if agent_id is None:
        return RedirectResponse("/login", status_code=303)
    w = wiring(request)
    view = await w.notifier.view(agent_id)
    notice = NOTICES.get(request.session.pop(SESSION_NOTICE, None) or "")
    html = w.renderer.render("agent.html", view.agent.language, view=view, oob=False,
                             csrf=csrf_token(request.session), notice=notice)
    # Never from the back/forward cache: a restored page would hold a closed socket.
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def done() -> Response:
    """The answer to an action on the agent page: nothing; the push over the socket shows the change."""
    return Response(status_code=204)


Action = Callable[[Context, int, FormData], Awaitable[object]]


async def act(request: Request, action: Action) -> Response:
    """An agent's action on the page: check the session, call one service; the socket shows the result."""
    agent_id = await agent_id_of(request)
    if agent_id is None:
        return signed_out()
    await action(wiring(request).ctx, agent_id, await request.form())
    return done()


def conversation_of(request: Request) -> int:
    return record_id(request.path_params["id"], NO_CONVERSATION)


async def set_status(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, form: routing.set_status(
        ctx, agent_id, field(form, "status", 20), field(form, "reason", 100)))


async def set_language(request: Request) -> Response:
    """The agent switches the page's language: stored on the agent, so it is remembered, and the
    page loads again in it (the pushes that follow are rendered in it too)."""
    agent_id = await agent_id_of(request)
    if agent_id is None:
        return signed_out()
    form = await request.form()
    w = wiring(request)
    async with w.ctx.transaction() as session:
        await auth.set_language(session, agent_id, field(form, "language", 20))
    w.notifier.forget(agent_id)  # this node renders their next pushes in the new language at once
    try:  # and so do the others (without the bus, they read the agent again within a minute)
        await w.bus.publish(AGENTS_CHANGED_STREAM, str(agent_id))
    except BusUnavailable:
        log.warning("could not tell the other nodes that agent %s works in %s now; they follow within a minute",
                    agent_id, field(form, "language", 20))
    return Response(status_code=204, headers={"HX-Refresh": "true"})


async def accept_offer(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, _: offers.accept(ctx, agent_id, conversation_of(request)))


async def decline_offer(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, _: offers.decline(ctx, agent_id, conversation_of(request)))


async def wrap_up(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, form: wrapup.finish(
        ctx, agent_id, conversation_of(request), field(form, "disposition", 100),
        field(form, "note", wrapup.MAX_NOTE + 1)))


async def send_message(request: Request) -> Response:
    """The agent answers the visitor of a chat, or the customer of a text conversation (SMS,
    WhatsApp: sent by Twilio after the commit); the message's id comes from the page, so a resend
    (the network dropped the answer) is stored once."""
    w = wiring(request)

    async def send(ctx: Context, agent_id: int, form: FormData) -> None:
        conversation_id = conversation_of(request)
        async with ctx.db.reading() as session:
            channel = await session.scalar(select(Conversation.channel).where(Conversation.id == conversation_id))
        client_id = field(form, "client_id", chat.MAX_CLIENT_ID)
        if channel is not Channel.SMS:
            await chat.from_agent(ctx, agent_id, conversation_id, client_id,
                                  field(form, "text", chat.MAX_MESSAGE + 100))
            return
        if not w.twilio.can_call_api:
            raise Conflict("Text replies cannot be sent: Twilio's account (CONSOLE_TWILIO_ACCOUNT_SID) is not set up "
                           "on this console.", field="text")
        name = field(form, "template", 100)
        template = None
        if name:
            content = dict(w.settings.twilio_whatsapp_templates).get(name)
            if content is None:
                raise InvalidInput("Choose one of the approved templates.", field="template")
            template = (name, content)
        message_id = await texts.from_agent(ctx, agent_id, conversation_id, client_id,
                                            field(form, "text", texts.MAX_TEXT + 100), template)
        if w.twilio.can_call_api:
            w.messaging.kick(message_id)

    return await act(request, send)


async def send_reply(request: Request) -> Response:
    """The agent replies to the mail conversation they handle; the reply's id comes from the page,
    so a resend is stored (and sent) once."""
    return await act(request, lambda ctx, agent_id, form: mail.reply(
        ctx, agent_id, conversation_of(request), field(form, "client_id", chat.MAX_CLIENT_ID),
        field(form, "text", mail.MAX_REPLY + 100)))


async def send_mail_again(request: Request) -> Response:
    """A reply the mail server refused for good is sent again (the agent corrected the address)."""
    return await act(request, lambda ctx, agent_id, _: mail.send_again(ctx, agent_id, record_id(
        request.path_params["id"], NO_MAIL)))


async def end_conversation(request: Request) -> Response:
    return await act(request, lambda ctx, agent_id, _: conversations.end(ctx, agent_id, conversation_of(request)))


async def link_customer(request: Request) -> Response:
    def chosen(form: FormData) -> int:
        raw = field(form, "customer_id", 20)
        if not raw:
            raise InvalidInput("Choose a customer.", field="customer_id")
        return record_id(raw, NO_CUSTOMER)

    return await act(request, lambda ctx, agent_id, form: conversations.link_customer(
        ctx, agent_id, conversation_of(request), chosen(form)))


async def create_customer(request: Request) -> Response:
    agent_id = await agent_id_of(request)
    if agent_id is None:
        return signed_out()
    w = wiring(request)
    form = await request.form()
    conversation_id = conversation_of(request)
    values: dict[str, Any] = {name: field(form, name, 320) for name in ("name", "company", "phone", "email")}
    try:
        await conversations.create_customer(w.ctx, agent_id, conversation_id, **values)
    except InvalidInput as exc:
        view = await w.notifier.view(agent_id)
        _ = i18n.translations(view.agent.language).gettext
        html = w.renderer.render("partials/new_customer.html", view.agent.language, conversation_id=conversation_id,
                                 values=values, error=exc.translated(_), error_field=exc.field)
        return HTMLResponse(html, status_code=422)
    return done()
