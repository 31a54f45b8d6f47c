"""CSRF protection and origin checks for the cookie-authenticated parts of the console."""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from functools import lru_cache, wraps
from ipaddress import IPv4Network, IPv6Network
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import auth
from console.db import Database
from console.models import Role

# The methods that change state, and so must come from a console page. Any other method (TRACE,
# PROPFIND, ...) reaches the router, which answers 405 where the path exists.
CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
# Plain HTML forms that work without htmx send the token as a form field; their handlers check it.
FORM_PATHS = {"/login", "/login/code", "/logout"}
REFUSED = ("Refused: this request did not come from a console page (CSRF check). "
           "Reload the console and try again.")


def csrf_token(session: dict[str, Any]) -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def token_matches(session: dict[str, Any], given: str | None) -> bool:
    expected = session.get("csrf")
    if not isinstance(expected, str) or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


SESSION_AGENT = "agent_id"
SESSION_VERSION = "v"
SESSION_STARTED = "at"  # when the agent logged in (seconds since the epoch)
SESSION_SEEN = "seen"  # the session's last request
SESSION_NOTICE = "notice"  # a message for the next page load (the page reloads after the password changed)
SEEN_STEP = 60  # how much newer a request must be to store it again (the cookie need not change each time)


def sign_in(session: dict[str, Any], agent_id: int, version: int) -> None:
    """A fresh session (a new CSRF token, nothing carried over from before the login)."""
    session.clear()
    now = int(time.time())
    session[SESSION_AGENT] = agent_id
    session[SESSION_VERSION] = version
    session[SESSION_STARTED] = session[SESSION_SEEN] = now
    csrf_token(session)


def _session_current(conn: HTTPConnection) -> bool:
    """Whether the session is within its lifetimes: CONSOLE_SESSION_LIFETIME since the login and
    CONSOLE_SESSION_IDLE since its last request. A session from before lifetimes were kept
    starts counting now."""
    settings = conn.app.state.wiring.settings
    session = conn.session
    now = int(time.time())
    started, seen = session.get(SESSION_STARTED), session.get(SESSION_SEEN)
    if not isinstance(started, int) or not isinstance(seen, int):
        session[SESSION_STARTED] = session[SESSION_SEEN] = now
        return True
    if now - started > settings.session_max_age or now - seen > settings.session_idle:
        session.clear()
        return False
    if conn.scope["type"] == "http" and now - seen >= SEEN_STEP:
        session[SESSION_SEEN] = now
    return True


def session_seconds_left(conn: HTTPConnection) -> float:
    """How long the session stays current without another request: until its lifetime or its
    idle time ends, whichever comes first (a socket is no request: it does not keep a session)."""
    settings = conn.app.state.wiring.settings
    started, seen = conn.session.get(SESSION_STARTED), conn.session.get(SESSION_SEEN)
    if not isinstance(started, int) or not isinstance(seen, int):
        return float(settings.session_idle)
    return max(0.0, float(min(started + settings.session_max_age, seen + settings.session_idle)) - time.time())


async def signed_in(conn: HTTPConnection, db: Database) -> int | None:
    """The agent whose session this is, when it has not been logged out since."""
    found = await signed_in_as(conn, db)
    return found[0] if found else None


async def signed_in_as(conn: HTTPConnection, db: Database) -> tuple[int, Role] | None:
    """The agent whose session this is and their role, when it has not been logged out since."""
    if "session" not in conn.scope:
        return None
    agent_id = conn.session.get(SESSION_AGENT)
    if not isinstance(agent_id, int) or not _session_current(conn):
        return None
    async with db.reading() as session:  # a read: on SQLite it does not wait for the writer's turn
        role = await auth.session_role(session, agent_id, conn.session.get(SESSION_VERSION))
    return (agent_id, role) if role is not None else None


def own_origin(conn: HTTPConnection) -> str:
    scheme = {"ws": "http", "wss": "https"}.get(conn.url.scheme, conn.url.scheme)
    return f"{scheme}://{conn.headers.get('host', '')}"


def origin_allowed(conn: HTTPConnection, allowed: Iterable[str]) -> bool:
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    origin = origin.rstrip("/")
    return origin == own_origin(conn) or origin in allowed


SIGNED_OUT = "Your session has ended. Log in again."


def signed_out() -> Response:
    """The answer to a request whose session has ended: htmx takes the page to the login form."""
    return HTMLResponse(SIGNED_OUT, status_code=401, headers={"HX-Redirect": "/login"})


def from_another_site(conn: HTTPConnection) -> bool:
    """The browser says the request was started by another site (Sec-Fetch-Site); a typed address
    or a bookmark ("none") and the console's own pages are not."""
    return conn.headers.get("sec-fetch-site", "none") not in ("same-origin", "none")


class CSRFMiddleware:
    """Refuse state-changing requests from other sites.

    Two checks: the browser's Sec-Fetch-Site/Origin must say same origin, and the request must
    carry the token bound to the session (header X-CSRF-Token, which htmx sends for every request
    through hx-headers:inherited on <body>). Integrations authenticate with their own tokens.
    """

    def __init__(self, app: ASGIApp, *, allowed_origins: Iterable[str] = (), exempt_prefixes: Iterable[str] = (),
                 exempt_paths: Iterable[str] = ()):
        self.app = app
        self.allowed = tuple(allowed_origins)
        self.exempt = tuple(exempt_prefixes)
        self.exempt_paths = frozenset(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGING_METHODS or scope["path"].startswith(self.exempt) \
                or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        headers = Headers(scope=scope)
        if from_another_site(conn) or not origin_allowed(conn, self.allowed):
            await PlainTextResponse(REFUSED, status_code=403)(scope, receive, send)
            return
        scope["csrf_ok"] = token_matches(scope.get("session", {}), headers.get(CSRF_HEADER))
        if not scope["csrf_ok"] and scope["path"] not in FORM_PATHS:
            if "agent_id" not in scope.get("session", {}):
                # Nobody is signed in (the session ended, or never was): the page goes to the login
                # form instead of showing a refusal the agent cannot act on.
                await signed_out()(scope, receive, send)
                return
            await PlainTextResponse(REFUSED, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


# The console's browser policy. Scripts and styles come from the console's own files only: no
# inline script, no inline style, no eval (htmx needs eval only for hx-on, js: values and trigger
# filters, which the console does not use; a <script> in swapped HTML is not run). Sockets and
# requests go to the console itself; nobody may frame it (clickjacking).
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "font-src 'self'",
    "connect-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'",
))
POLICY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")


def policy_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The policy headers for an answer to `scope` (HSTS only over HTTPS)."""
    return [*POLICY_HEADERS, HSTS] if scope.get("scheme") == "https" else list(POLICY_HEADERS)


class SecurityHeaders:
    """Put the browser policy on every HTTP answer (pages, fragments, static files, errors), and
    HSTS on those served over HTTPS (also when a trusted proxy says it terminated HTTPS)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = policy_headers(scope)

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_policy)


Endpoint = Callable[[Request], Awaitable[Response]]
IPNetwork = IPv4Network | IPv6Network


def client_address(conn: HTTPConnection) -> str:
    """The client's address: the peer's, or what a trusted proxy said it was (ProxyHeadersMiddleware)."""
    return conn.client.host if conn.client else "unknown"


@lru_cache(maxsize=8)
def _networks(addresses: tuple[str, ...]) -> tuple[IPNetwork, ...] | None:
    """The settings' addresses as networks, parsed once; None when `*` allows every address."""
    if "*" in addresses:
        return None
    return tuple(ipaddress.ip_network(item, strict=False) for item in addresses)


def _from_operator(request: Request, addresses: tuple[str, ...], token: str) -> bool:
    given = request.headers.get("authorization", "")
    if token and given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode()):
        return True
    networks = _networks(addresses)
    if networks is None:
        return True
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in network for network in networks)


def operators_only(endpoint: Endpoint) -> Endpoint:
    """Refuse with 403 unless the request comes from an operator address or carries the token."""

    @wraps(endpoint)
    async def guarded(request: Request) -> Response:
        s = request.app.state.wiring.settings
        if not _from_operator(request, s.operator_addresses, s.metrics_token):
            return JSONResponse({"error": "only for operators: connect from an address in "
                                          "CONSOLE_OPERATOR_ADDRESSES or send the CONSOLE_METRICS_TOKEN"},
                                status_code=403)
        return await endpoint(request)

    return guarded
