"""The chat widget's websocket: one per visitor's browser tab, at /chat/ws?site=KEY.

The page it runs on must be on one of the site's origins. The widget speaks JSON:

- it says `hello` first: `{"type": "hello", "visitor": token or null, "identifier": ..., "identifier_hash":
  ..., "after": the newest message id it shows, "page": its URL, "lang": "nl" or "en"}`;
- the console answers `welcome` with the visitor's token (new or the same), whether the site is
  open now, its greeting, and every message of the open chat after `after`;
- the widget sends `{"type": "message", "id": its own id for the message, "text": ...}`; the
  console answers `ack` with the stored message, and pushes `message` frames as either side writes;
- `{"type": "end"}` ends the open chat; `{"type": "rating", "chat": id, "score": 1-5, "comment": ...}`
  rates an ended one (answered `rated`), `{"type": "transcript", "chat": id}` asks for its text
  (answered `transcript` with a file name and the text), and with `"email"` has it mailed there
  (answered `mailed` with the address).

Messages carry the console's id: the widget shows each id once, in order of ids, so what arrives
twice (an ack and the push of the same message, a resend after a reconnect) is shown once.
Refusals come as `error` frames in the visitor's language, with a code the widget can act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from console import chat, i18n, ratings, transcripts
from console.errors import ConsoleError, Forbidden, NotFound
from console.i18n import N_
from console.models import Agent, ChatSite, Conversation
from console.web import attachments
from console.web.assets import asset_dir
from console.web.render import agent_stream
from console.web.security import signed_out
from console.web.wiring import Wiring
from realtime import BusUnavailable, Frame

log = logging.getLogger("console.web.visitors")

POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013
HELLO_SECONDS = 10.0  # a socket that says nothing is closed
OUTBOX = 256  # frames waiting for a slow widget before it is closed (it catches up on reconnect)


class Limiter:
    """How often a key did something in the last minute; a bounded memory of keys."""

    def __init__(self, keys: int = 10_000) -> None:
        self._seen: dict[str, deque[float]] = {}
        self._keys = keys

    def allow(self, key: str, per_minute: int) -> bool:
        now = time.monotonic()
        stamps = self._seen.pop(key, None) or deque()
        while stamps and now - stamps[0] > 60:
            stamps.popleft()
        allowed = len(stamps) < per_minute
        if allowed:
            stamps.append(now)
        self._seen[key] = stamps  # most recently used last
        while len(self._seen) > self._keys:
            self._seen.pop(next(iter(self._seen)))
        return allowed


LIMITER = Limiter()


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _error(code: str, message: str, message_id: str | None = None) -> str:
    return json.dumps({"type": "error", "code": code, "message": message, "id": message_id})


async def visitor_socket(websocket: WebSocket) -> None:
    w: Wiring = websocket.app.state.wiring
    await websocket.accept()  # refusals are said in words, then the socket closes with 1008
    language = _language(websocket.query_params.get("lang", ""))
    try:
        async with w.ctx.db.reading() as session:
            site = await chat.site_for(session, websocket.query_params.get("site", ""),
                                       websocket.headers.get("origin"))
            session.expunge(site)
        hello = await _hello(websocket)
        address = websocket.client.host if websocket.client else "unknown"
        if not hello.get("visitor") and not LIMITER.allow(f"hello:{address}",
                                                          w.settings.chat_address_visitors_per_minute):
            log.warning("chat: %s opens new visitors too fast; refused", address)
            raise Refused("flood", N_("Too many new chats from your network. Wait a minute and reload the page."))
        language = _language(str(hello.get("lang") or language))
        visit = await chat.visit(w.ctx, site, _text(hello, "visitor", 100) or None, _text(hello, "identifier", 320),
                                 _text(hello, "identifier_hash", 200))
    except (NotFound, Forbidden) as exc:
        code = "site" if isinstance(exc, NotFound) else "identity" if isinstance(exc, chat.IdentityRefused) \
            else "origin"
        await _close(websocket, _error(code, exc.translated(i18n.translations(language).gettext)))
        return
    except Refused as exc:
        await _close(websocket, _error(exc.code, i18n.translations(language).gettext(exc.message)))
        return
    except (WebSocketDisconnect, RuntimeError):
        return
    except Exception as exc:  # the database away, or anything else: said in words, logged, no traceback
        log.warning("a chat widget could not be greeted (%s: %s)", type(exc).__name__, exc)
        await _close(websocket, _error("unavailable", i18n.translations(language).gettext(
            N_("The chat is not available right now. Try again in a minute."))),
                     TRY_AGAIN_LATER)
        return
    await _serve(websocket, w, site, visit, hello, language)


def _language(raw: str) -> str:
    return "nl" if raw.lower().startswith("nl") else "en"


async def _close(websocket: WebSocket, frame: str, code: int = POLICY_VIOLATION) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_text(frame)
        await websocket.close(code)


def _text(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _number(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


async def _receive(websocket: WebSocket) -> dict[str, Any]:
    """The next JSON object from the widget; what is not one is refused in words."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw = message.get("text")
    try:
        data = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise Refused("protocol", N_("The chat sent something the console does not understand. Reload the page."))
    return data


async def _hello(websocket: WebSocket) -> dict[str, Any]:
    try:
        async with asyncio.timeout(HELLO_SECONDS):
            data = await _receive(websocket)
    except TimeoutError:
        raise Refused("protocol", N_("The chat did not say hello in time. Reload the page.")) from None
    if data.get("type") != "hello":
        raise Refused("protocol", N_("The chat must say hello first. Reload the page."))
    return data


async def _serve(websocket: WebSocket, w: Wiring, site: ChatSite, visit: chat.Visit, hello: dict[str, Any],
                 language: str) -> None:
    _ = i18n.translations(language).gettext
    outbox: asyncio.Queue[str | None] = asyncio.Queue(OUTBOX)
    shown = _number(hello, "after")  # the newest message id the widget has; the pushes go on from there
    page = _text(hello, "page", 2000)
    address = websocket.client.host if websocket.client else "unknown"

    def stop() -> None:
        """Drop what waits and close: the widget reconnects and asks for everything after the
        newest message it shows, so nothing it missed is skipped."""
        while not outbox.empty():
            outbox.get_nowait()
        outbox.put_nowait(None)

    def push(frame: Frame | None) -> None:
        if frame is None:  # the bus lost frames
            stop()
            return
        try:
            outbox.put_nowait(frame.payload)
        except asyncio.QueueFull:  # the widget does not keep up
            stop()

    async def send() -> None:
        while True:
            frame = await outbox.get()
            if frame is None:
                await websocket.close(TRY_AGAIN_LATER, "catch up")
                return
            await websocket.send_text(frame)

    sender = asyncio.create_task(send(), name=f"chat visitor {visit.visitor_id}")
    try:
        async with contextlib.AsyncExitStack() as stack:
            following: int | None = None

            async def follow(chat_id: int) -> None:
                """From now on, pushes of this chat reach the widget; what came before is read."""
                nonlocal following, shown
                if following == chat_id:
                    return
                subscription = await stack.enter_async_context(w.bus.subscribe(chat.chat_stream(chat_id), OUTBOX))
                following = chat_id
                await catch_up(chat_id)
                subscription.listen(push)

            async def catch_up(chat_id: int) -> None:
                """Every message of the chat after the newest the widget shows, page by page."""
                nonlocal shown
                while True:
                    async with w.ctx.db.reading() as session:
                        missed = await chat.lines(session, chat_id, after=shown)
                    for line in missed:
                        await outbox.put(json.dumps({"type": "message", "message": attachments.line_for_visitor(
                            line, w.file_key)}))
                        shown = max(shown, line.id)
                    if len(missed) < chat.PAGE:
                        return

            async with w.ctx.db.reading() as session:
                current = await chat.open_chat(session, visit.visitor_id)
                latest = current or await chat.latest_chat(session, visit.visitor_id)
                available = await chat.availability(session, site, current)
            # Whether the site is open and anyone could answer; when not, the widget offers to
            # leave a message with an email address. Whether to ask who they are first, and what
            # they said before.
            asks = current is None and (available.prechat or not available.answering)
            welcome = {"type": "welcome", "visitor": visit.token, "identity": visit.identity,
                       "open": available.open, "staffed": available.staffed, "prechat": available.prechat,
                       "greeting": site.greeting, "chat": current.id if current else None}
            if asks:  # what they said before fills the form in; said only when the form shows
                welcome["known"] = {"name": visit.name or "", "email": visit.email or ""}
            await outbox.put(json.dumps(welcome))
            if current is not None:
                await follow(current.id)
            elif latest is not None and shown > 0:
                await catch_up(latest.id)  # it ended while the widget was away: the last words, and the end
            while True:
                data = await _receive(websocket)
                kind = data.get("type")
                if kind == "typing" and following is not None:
                    if LIMITER.allow(f"typing:{visit.visitor_id}", TYPING_PER_MINUTE):
                        await _visitor_types(w, following)
                    continue
                if kind == "read":
                    await chat.read_by_visitor(w.ctx, visit, _number(data, "upto"))
                    continue
                if kind == "details":
                    if not LIMITER.allow(f"details:{visit.visitor_id}", DETAILS_PER_MINUTE):
                        log.warning("chat visitor %s (%s) sends their details too often; refused", visit.visitor_id,
                                    address)
                        await outbox.put(_error("details", _("Wait a moment before you change your details again.")))
                        continue
                    try:
                        visit = await chat.describe(w.ctx, visit, _text(data, "name", chat.MAX_NAME * 2),
                                                    _text(data, "email", 640))
                    except ConsoleError as exc:
                        await outbox.put(_error("details", exc.translated(_)))
                        continue
                    await outbox.put(json.dumps({"type": "details", "name": visit.name or "",
                                                 "email": visit.email or "", "identity": visit.identity}))
                    continue
                if kind == "end":
                    ended = await chat.end_by_visitor(w.ctx, visit)
                    if ended is not None:
                        await follow(ended)  # the line that says so comes with the chat's pushes
                    continue
                if kind in ("rating", "transcript"):
                    await outbox.put(await _after_chat(w, visit, data, language, address))
                    continue
                if kind != "message":
                    continue  # unknown kinds are ignored (a newer widget may say more)
                client_id, text = _text(data, "id", 200), _text(data, "text", chat.MAX_MESSAGE * 2)
                if data.get("left") is True and not visit.email:
                    await outbox.put(_error("email", _("Give your email address, so we can answer you."), client_id))
                    continue
                try:
                    chat.check_message(text)  # an empty or oversize message counts for no limit
                except ConsoleError as exc:
                    await outbox.put(_error("message", exc.translated(_), client_id))
                    continue
                limits = w.settings
                if not (LIMITER.allow(f"visitor:{visit.visitor_id}", limits.chat_messages_per_minute)
                        and LIMITER.allow(f"address:{address}", limits.chat_address_messages_per_minute)):
                    log.warning("chat visitor %s (%s) sends too fast; message refused", visit.visitor_id, address)
                    await outbox.put(_error("flood", _("You are sending messages very fast. Wait a moment and "
                                                       "send it again."), client_id))
                    continue
                try:
                    line = await chat.from_visitor(w.ctx, visit, client_id, text, page_url=page, chat_id=following,
                                                   left=data.get("left") is True)
                except ConsoleError as exc:
                    await outbox.put(_error("message", exc.translated(_), client_id))
                    continue
                await outbox.put(json.dumps({"type": "ack", "id": client_id, "message": attachments.line_for_visitor(
                    line, w.file_key)}))
                if line.chat_id:
                    await follow(line.chat_id)

    except Refused as exc:
        await _close(websocket, _error(exc.code, _(exc.message)))
    except BusUnavailable as exc:
        log.warning("bus unavailable for chat visitor %s: %s; the widget retries", visit.visitor_id, exc)
        with contextlib.suppress(Exception):
            await websocket.close(TRY_AGAIN_LATER, "bus unavailable")
    except (WebSocketDisconnect, RuntimeError, asyncio.CancelledError):
        pass
    except Exception:
        log.exception("the chat socket of visitor %s failed", visit.visitor_id)
        with contextlib.suppress(Exception):
            await websocket.close(1011, "server error")
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


AFTER_PER_MINUTE = 10  # ratings and transcripts asked for, per visitor


async def _after_chat(w: Wiring, visit: chat.Visit, data: dict[str, Any], language: str, address: str) -> str:
    """A rating of an ended chat, or its transcript: the frame that answers it (refusals in words)."""
    _ = i18n.translations(language).gettext
    if not LIMITER.allow(f"after:{visit.visitor_id}", AFTER_PER_MINUTE):
        log.warning("chat visitor %s (%s) asks for ratings or transcripts too often; refused", visit.visitor_id,
                    address)
        return _error("after", _("Wait a moment and try again."))
    chat_id = _number(data, "chat")
    try:
        if data.get("type") == "rating":
            await ratings.rate_chat(w.ctx, visit.visitor_id, chat_id, data.get("score"),
                                    _text(data, "comment", ratings.MAX_COMMENT * 2))
            return json.dumps({"type": "rated", "chat": chat_id})
        email = _text(data, "email", 400)
        if email:
            to = await transcripts.by_mail(w.ctx, visit.visitor_id, chat_id, language, email)
            log.info("chat visitor %s had the transcript of chat %s mailed", visit.visitor_id, chat_id)
            return json.dumps({"type": "mailed", "chat": chat_id, "to": to})
        transcript = await transcripts.of_chat(w.ctx, visit.visitor_id, chat_id, language)
    except ConsoleError as exc:
        log.info("chat visitor %s: %s refused: %s", visit.visitor_id, data.get("type"), exc)
        return _error("after", exc.translated(_))
    return json.dumps({"type": "transcript", "chat": chat_id, "filename": transcript.filename,
                       "text": transcript.text})


DETAILS_PER_MINUTE = 6  # the pre-chat form sent again and again is someone trying addresses
TYPING_PER_MINUTE = 20  # the widget says "typing" at most every 3 s while the visitor types


async def _visitor_types(w: Wiring, chat_id: int) -> None:
    """The agent of the chat sees "the visitor is typing" for a few seconds (not stored: it passes)."""
    async with w.ctx.db.reading() as session:
        part = await session.scalar(select(Conversation).where(Conversation.chat_id == chat_id)
                                    .order_by(Conversation.id.desc()).limit(1))
        language = await session.scalar(select(Agent.language).where(Agent.id == part.agent_id)) \
            if part is not None and part.agent_id is not None else None
    if part is None or language is None or part.agent_id is None:
        return
    html = w.renderer.render("partials/chat_typing.html", language, prefix=f"pop-{part.id}",
                             who=None, at=int(time.time() * 1000))
    await w.bus.publish(agent_stream(part.agent_id), html)


async def agent_types(request: Request) -> Response:
    """The agent types an answer: the visitor's widget says so for a few seconds (not stored)."""
    from console.web.pages import agent_id_of, conversation_of

    agent_id = await agent_id_of(request)
    if agent_id is None:
        return signed_out()
    w: Wiring = request.app.state.wiring
    async with w.ctx.db.reading() as session:
        chat_id, name = await chat.writer(session, conversation_of(request), agent_id)
    await w.bus.publish(chat.chat_stream(chat_id), json.dumps({"type": "typing", "agent": name}))
    return Response(status_code=204)


async def agent_read(request: Request) -> Response:
    """The agent's page showed the visitor's messages up to `upto`: the visitor sees them read."""
    from console.web.pages import act, conversation_of, field

    return await act(request, lambda ctx, agent_id, form: chat.read_by_agent(
        ctx, agent_id, conversation_of(request), int(field(form, "upto", 20) or 0)
        if field(form, "upto", 20).isdigit() else 0))


WIDGET = asset_dir("static") / "chat" / "widget.js"


async def widget_script(request: Request) -> Response:
    """The widget, for any website to load with one script tag: cached for a day by browsers
    (and revalidated after), the same file for every site (its key is on the tag)."""
    body = WIDGET.read_bytes()
    return Response(body, media_type="text/javascript; charset=utf-8", headers={
        "Cache-Control": "public, max-age=86400", "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff"})


DEMO_SITE = "Demo shop"


async def try_page(request: Request) -> Response:
    """In the demo: a page that stands for a customer's website, with the widget on it. It is
    served on another origin than the console (localhost against 127.0.0.1), so the widget works
    across origins as on a real site, under a policy of its own that lets the console's script in."""
    w: Wiring = request.app.state.wiring
    if not w.settings.demo:
        return Response("Not found", status_code=404, media_type="text/plain")
    async with w.ctx.db.reading() as session:
        key = await session.scalar(select(ChatSite.key).where(ChatSite.name == DEMO_SITE))
    if key is None:
        return Response("The demo shop's chat site is not set up; run make demo.", status_code=404,
                        media_type="text/plain")
    host = request.url.hostname or "127.0.0.1"
    console_host = "127.0.0.1" if host == "localhost" else "localhost"
    console = f"{request.url.scheme}://{console_host}" + (f":{request.url.port}" if request.url.port else "")
    sockets = console.replace("http", "ws", 1)
    language = "nl" if request.query_params.get("lang") == "nl" else "en"
    html = w.renderer.render("chat_try.html", language, key=key, console=console)
    # The widget's files: uploaded to the console (connect-src) and shown from it (img-src).
    policy = "; ".join(("default-src 'none'", f"script-src {console}", f"style-src {console}",
                        f"connect-src {sockets} {console}", f"img-src 'self' data: {console}", "base-uri 'none'",
                        "form-action 'none'", "frame-ancestors 'none'"))
    return Response(html, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": policy})
