"""Files in a chat, over HTTP beside the sockets (a 10 MB file has no place in a socket frame).

- The widget uploads with `POST /chat/attachments?site=KEY&lang=nl` from the website's page:
  the file as the body, the visitor's token in `X-Chat-Visitor`, the message's own id in
  `X-Chat-Message` and the file's name (URI-encoded) in `X-Chat-Filename`. It goes into the
  visitor's open chat (a chat starts with words: the pre-chat form, leaving a message when nobody
  answers, and the socket's following of the chat all begin there). It is a cross-origin request,
  allowed (CORS) for the site's origins only; the answer is the `ack` or `error` frame the socket
  would have sent.
- The visitor's widget shows a file from `GET /chat/files/{id}?e=EXPIRY&s=SIGNATURE`: a link the
  console signed for the message when it sent it to that visitor, valid for a day, so no token
  ever travels in a URL.
- Agents upload with `POST /conversations/{id}/attachments` (a form with `file` and `client_id`)
  and open files with `GET /attachments/{id}`: the files of chats they had (or supervisors),
  audited as a view of the conversation.

Every file is served as what its content is (never HTML), with `Content-Disposition: attachment`,
`nosniff` and a sandboxing policy, so a file can not act as a page of the console.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from console import attachments, audit, chat, i18n
from console.errors import ConsoleError, Forbidden, InvalidInput, NotFound, TooLarge
from console.i18n import N_
from console.models import Message

if TYPE_CHECKING:
    from console.web.wiring import Wiring

log = logging.getLogger("console.web.attachments")

LINK_SECONDS = 24 * 3600  # a visitor's link to a file lasts a day (rounded up to the hour, so it caches)
FILES_PER_MINUTE = 10  # per visitor
CORS_HEADERS = "content-type, x-chat-visitor, x-chat-message, x-chat-filename"
NO_FILE = NotFound("This file does not exist (any more).")
NUMBER = re.compile(r"[0-9]{1,12}")


def file_key(secret_key: str) -> str:
    """The key that signs visitors' links to files: derived from the console's secret, so a link
    can never stand for a session cookie or anything else signed with that secret."""
    return hmac.new(secret_key.encode(), b"console chat file links", hashlib.sha256).hexdigest()


def _signature(secret: str, attachment_id: int, expires: int) -> str:
    return hmac.new(secret.encode(), f"file:{attachment_id}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def visitor_link(secret: str, attachment_id: int, now: float | None = None) -> str:
    """The path a visitor's widget opens the file at, signed for a day."""
    expires = (int((now or time.time()) + LINK_SECONDS) // 3600 + 1) * 3600
    return f"/chat/files/{attachment_id}?e={expires}&s={_signature(secret, attachment_id, expires)}"


def line_for_visitor(line: chat.Line, secret: str) -> dict[str, object]:
    """A message as the widget receives it: with a signed link to its file (a path on the
    console, which the widget resolves against the address it was loaded from), if it has one."""
    data = line.as_json()
    if line.attachment is not None:
        data["attachment"] = {**line.attachment.as_json(), "url": visitor_link(secret, line.attachment.id)}
    return data


def _file_response(found: Any, cache: str, embedders: str) -> Response:
    """The file as a download: its own type (never HTML), no sniffing, no script, no page."""
    disposition = f"attachment; filename*=UTF-8''{quote(found.name)}"
    return Response(found.data, media_type=found.content_type, headers={
        "Content-Disposition": disposition, "X-Content-Type-Options": "nosniff", "Cache-Control": cache,
        "ETag": f'"{found.sha256[:32]}"', "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": embedders})


async def visitor_file(request: Request) -> Response:
    """A file of a chat, for the visitor holding the link the console signed for it."""
    w: Wiring = request.app.state.wiring
    attachment_id = request.path_params["id"]
    expires = request.query_params.get("e", "")
    given = request.query_params.get("s", "")
    if not NUMBER.fullmatch(expires) or int(expires) < time.time() or not hmac.compare_digest(
            _signature(w.file_key, attachment_id, int(expires)), given[:64]):
        log.info("a link to chat file %s was refused: its signature is wrong or it expired", attachment_id)
        return Response("This link to a file is not valid (any more). Reload the page with the chat.",
                        status_code=403, media_type="text/plain")
    async with w.ctx.db.reading() as session:
        found = await attachments.read(session, attachment_id)
    if found is None:
        return Response(NO_FILE.message, status_code=404, media_type="text/plain")
    return _file_response(found, "private, max-age=3600", "cross-origin")  # shown on the website's page


async def agent_file(request: Request) -> Response:
    """A file of a chat, for a signed-in agent; the view is audited as one of its conversation."""
    from console.web.pages import agent_id_of
    from console.web.security import signed_out

    agent_id = await agent_id_of(request)
    if agent_id is None:
        return signed_out()
    w: Wiring = request.app.state.wiring
    async with w.ctx.transaction() as session:
        found = await attachments.for_agent(session, request.path_params["id"], agent_id)
        conversation_id = await session.scalar(select(Message.conversation_id).where(Message.id == found.message_id))
        audit.record(session, agent_id, audit.VIEW, audit.CONVERSATION, conversation_id or 0, f"file {found.name}")
    # Kept by the agent's browser for an hour (a pop drawn again does not fetch it again); only the
    # console's own pages may show it.
    return _file_response(found, "private, max-age=3600", "same-origin")


async def agent_upload(request: Request) -> Response:
    """The agent sends a file to the visitor of the chat they handle."""
    from console.web.pages import agent_id_of, conversation_of, done, field
    from console.web.security import signed_out

    agent_id = await agent_id_of(request)
    if agent_id is None:
        return signed_out()
    w: Wiring = request.app.state.wiring
    conversation_id = conversation_of(request)
    try:
        async with w.ctx.db.reading() as session:  # theirs, and a chat, before a byte is read
            await chat.writer(session, conversation_id, agent_id)
        _too_large_by_header(request, required=True)
        async with request.form(max_files=1, max_fields=5) as form:  # closes the spooled file after
            file = form.get("file")
            if file is None or isinstance(file, str):
                raise InvalidInput("Choose a file to send.", field="file")
            upload = attachments.check(file.filename or "", await file.read(attachments.MAX_BYTES + 1))
            client_id = field(form, "client_id", chat.MAX_CLIENT_ID)
    except ConsoleError as exc:
        log.info("agent %s: a file for conversation %s was refused: %s", agent_id, conversation_id, exc)
        raise
    await chat.from_agent(w.ctx, agent_id, conversation_id, client_id, upload.name, upload)
    log.info("agent %s sent %s (%s, %d bytes) in conversation %s", agent_id, upload.name, upload.content_type,
             len(upload.data), conversation_id)
    return done()


def _too_large_by_header(request: Request, required: bool = False) -> None:
    """Refused before reading when the body says it is too large; with `required`, a body of
    unknown size is refused too (a form's file would be spooled to disk, whatever its size)."""
    length = request.headers.get("content-length", "")
    if not NUMBER.fullmatch(length):
        if required:
            raise InvalidInput("The upload did not say its size; send the file again.", field="file")
        return
    if int(length) > attachments.MAX_BYTES + 64 * 1024:  # a form's own parts besides the file
        raise TooLarge("A file may be at most %(mb)s MB.", field="file", mb=attachments.MAX_BYTES // (1024 * 1024))


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, **params: object) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.params = status, code, message, params


async def visitor_upload(request: Request) -> Response:
    """A file from a website's visitor into their chat (the first one starts the chat)."""
    from console.web.visitors import LIMITER, _language

    w: Wiring = request.app.state.wiring
    origin = request.headers.get("origin")
    language = _language(request.query_params.get("lang", ""))
    _ = i18n.translations(language).gettext
    client_id = request.headers.get("x-chat-message", "")[:200]
    allowed: str | None = None
    try:
        async with w.ctx.db.reading() as session:
            site = await chat.site_for(session, request.query_params.get("site", ""), origin)
            session.expunge(site)
        allowed = origin
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=_cors(allowed, preflight=True))
        async with w.ctx.db.reading() as session:
            visit = await chat.returning_visitor(session, site, request.headers.get("x-chat-visitor", ""))
            current = await chat.open_chat(session, visit.visitor_id) if visit is not None else None
        if visit is None:
            log.warning("chat site %s: a file came with an unknown visitor token; refused", site.name)
            raise _Refusal(403, "visitor", N_("The chat does not know you (any more). Reload the page."))
        if current is None:
            raise _Refusal(409, "file", N_("Write your question first; then you can send a file with it."))
        address = request.client.host if request.client else "unknown"
        if not (LIMITER.allow(f"files:{visit.visitor_id}", FILES_PER_MINUTE)
                and LIMITER.allow(f"visitor:{visit.visitor_id}", w.settings.chat_messages_per_minute)
                and LIMITER.allow(f"address:{address}", w.settings.chat_address_messages_per_minute)):
            log.warning("chat visitor %s (%s) sends files too fast; refused", visit.visitor_id, address)
            raise _Refusal(429, "flood", N_("You are sending files very fast. Wait a moment and send it again."))
        _too_large_by_header(request)
        data = await _body(request)
        upload = attachments.check(unquote(request.headers.get("x-chat-filename", ""))[:1000], data)
        line = await chat.from_visitor(w.ctx, visit, client_id, upload.name,
                                       page_url=request.headers.get("referer", ""), chat_id=current.id,
                                       attachment=upload)
    except _Refusal as exc:
        return _refused(exc.status, exc.code, _(exc.message), client_id, allowed)
    except (NotFound, Forbidden) as exc:
        code = "site" if isinstance(exc, NotFound) else "origin"
        return _refused(403 if code == "origin" else 404, code, exc.translated(_), client_id, allowed)
    except TooLarge as exc:
        log.info("a chat visitor's file was refused: %s", exc)
        return _refused(413, "file", exc.translated(_), client_id, allowed)
    except ConsoleError as exc:
        log.info("a chat visitor's file was refused: %s", exc)
        return _refused(422 if isinstance(exc, InvalidInput) else 409, "file", exc.translated(_), client_id, allowed)
    log.info("chat %s: the visitor sent %s (%s, %d bytes)", line.chat_id, upload.name, upload.content_type,
             len(upload.data))
    body = {"type": "ack", "id": client_id, "message": line_for_visitor(line, w.file_key)}
    return JSONResponse(body, headers=_cors(allowed))


async def _body(request: Request) -> bytes:
    """The request's body, refused as soon as it passes the limit (whatever its header said)."""
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > attachments.MAX_BYTES:
            raise TooLarge("A file may be at most %(mb)s MB.", field="file", mb=attachments.MAX_BYTES // (1024 * 1024))
        body += chunk
    return bytes(body)


def _cors(origin: str | None, preflight: bool = False) -> dict[str, str]:
    if origin is None:
        return {"Vary": "Origin"}
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    if preflight:
        headers |= {"Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": CORS_HEADERS,
                    "Access-Control-Max-Age": "600"}
    return headers


def _refused(status: int, code: str, message: str, client_id: str, origin: str | None) -> Response:
    return Response(json.dumps({"type": "error", "code": code, "message": message, "id": client_id or None}),
                    status_code=status, media_type="application/json", headers=_cors(origin))
