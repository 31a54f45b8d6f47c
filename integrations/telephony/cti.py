"""Generic CTI, compatible with Zammad's: the phone system posts newCall, answer and hangup.

    POST /integrations/cti/{token}   JSON or form data
    event=newCall|answer|hangup  from  to  direction=in|out  callId  user (or user[])  queue
    cause  answeringNumber

A newCall that names ringing agents in `user` shows them the offer; one that names nobody is
routed by the console, and the response tells the phone system where to send the call:
{"action": "transfer", "target": "<extension>"}. While nobody is free the response has no
action; posting the same newCall again later returns the target once an agent took the call.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from console import conversations
from console.errors import ConsoleError, NotFound, Unavailable
from console.logs import UNSAFE, safe
from console.models import Channel, Direction
from console.ports import Context

log = logging.getLogger("integrations.cti")

EVENTS = ("newCall", "answer", "hangup")
MAX_BODY = 64 * 1024
MAX_VALUE = 250
MAX_FIELDS = 200
MAX_INTEGER = 10**18 - 1  # a JSON integer field is taken as its digits up to this size


class CTIError(Exception):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class CallEvent:
    event: str
    call_id: str
    from_: str
    to: str
    direction: Direction
    users: list[str]
    queue: str | None
    cause: str | None
    answering_number: str | None


def _unfit(value: str) -> str | None:
    """The first character a CTI value may not hold, as U+XXXX: what may not reach a log line
    (console.logs.UNSAFE: NUL, line breaks, halves of surrogate pairs, which no database stores)."""
    found = UNSAFE.search(value)
    return f"U+{ord(found.group()):04X}" if found else None


def _text(data: dict[str, Any], name: str, *, required: bool = False) -> str:
    value = data.get(name)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 42.0 is the integer 42 in JSON
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_INTEGER:
        value = str(value)  # JSON from some phone systems has numeric ids and numbers
    if value is not None and not isinstance(value, str):
        raise CTIError(f"field '{name}' must be a string", name)
    if value and len(value) > MAX_VALUE:
        raise CTIError(f"field '{name}' is longer than {MAX_VALUE} characters", name)
    bad = _unfit(value) if value else None
    if bad is not None:
        raise CTIError(f"field '{name}' contains the character {bad}, which is not allowed", name)
    value = (value or "").strip()
    if not value and required:
        raise CTIError(f"field '{name}' is required", name)
    return value


def _users(data: dict[str, Any]) -> list[str]:
    raw = data.get("user", data.get("user[]"))
    if raw is None or raw == "":
        return []
    values = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(v, str) and len(v) <= MAX_VALUE for v in values) or len(values) > 100:
        raise CTIError(f"field 'user' must be a name or a list of at most 100 names of at most {MAX_VALUE} "
                       "characters", "user")
    for value in values:
        bad = _unfit(value)
        if bad is not None:
            raise CTIError(f"field 'user' contains the character {bad}, which is not allowed", "user")
    return [v.strip() for v in values if v.strip()]


def parse(data: dict[str, Any]) -> CallEvent:
    """Validate a CTI event; CTIError names the first field that is missing or malformed."""
    event = _text(data, "event", required=True)
    if event not in EVENTS:
        raise CTIError(f"field 'event' must be one of {', '.join(EVENTS)}, not '{event}'", "event")
    call_id = _text(data, "callId", required=True)
    is_new = event == "newCall"
    direction_text = _text(data, "direction", required=is_new) or "in"
    if direction_text not in ("in", "out"):
        raise CTIError(f"field 'direction' must be 'in' or 'out', not '{direction_text}'", "direction")
    return CallEvent(
        event=event,
        call_id=call_id,
        from_=_text(data, "from", required=is_new),
        to=_text(data, "to", required=is_new),
        direction=Direction(direction_text),
        users=_users(data),
        queue=_text(data, "queue") or None,
        cause=_text(data, "cause") or None,
        answering_number=_text(data, "answeringNumber") or None,
    )


async def limited_body(request: Request, limit: int, too_large: Exception) -> bytes:
    """The body, refused with `too_large` once it passes `limit` bytes (without reading the rest
    into memory)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _form(body: bytes) -> dict[str, Any]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict",
                          max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise CTIError("form body is not valid UTF-8", "body") from None
    except ValueError:
        raise CTIError(f"form body has more than {MAX_FIELDS} fields", "body") from None
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in ("user", "user[]"):
            data.setdefault(key, []).append(value)
        else:
            data[key] = value
    return data


async def read_body(request: Request) -> dict[str, Any]:
    """The event's fields from a JSON object or a URL-encoded form; CTIError says what is wrong."""
    body = await limited_body(request, MAX_BODY, CTIError(f"request body is larger than {MAX_BODY} bytes", "body"))
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            data = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise CTIError("body is not valid JSON", "body") from None
        except RecursionError:
            raise CTIError("JSON body is nested too deeply", "body") from None
        if not isinstance(data, dict):
            raise CTIError("JSON body must be an object", "body")
        return data
    if content_type in ("application/x-www-form-urlencoded", ""):
        return _form(body)
    raise CTIError(f"content type must be application/json or application/x-www-form-urlencoded, not "
                   f"{safe(content_type)}", "body")


async def handle(ctx: Context, call: CallEvent) -> dict[str, Any]:
    if call.event == "newCall":
        arrival = await conversations.arrive(
            ctx, channel=Channel.CALL, external_id=call.call_id, from_address=call.from_, to_address=call.to,
            direction=call.direction, ringing=call.users, queue=call.queue,
        )
        reply: dict[str, Any] = {"conversation": arrival.conversation_id, "state": arrival.state.value,
                                 "created": arrival.created}
        if arrival.target_extension:
            reply |= {"action": "transfer", "target": arrival.target_extension}
        return reply
    if call.event == "answer":
        answered_by = [r for r in (call.answering_number, *call.users) if r]
        conversation = await conversations.answer(ctx, Channel.CALL, call.call_id, answered_by)
    else:
        conversation = await conversations.hang_up(ctx, Channel.CALL, call.call_id, call.cause)
    return {"conversation": conversation.id, "state": conversation.state.value}


def routes(ctx: Context, token: str, observe_pop: Callable[[float], None] | None = None) -> list[Route]:
    """The CTI endpoint; with an empty token it refuses everything (CONSOLE_CTI_TOKEN unset).

    `observe_pop` is told how long a newCall took from arrival to its pop being published.
    """

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        given = request.path_params["token"]
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            log.warning("CTI request with a wrong token from %s", request.client.host if request.client else "?")
            return JSONResponse({"error": "wrong or missing CTI token"}, status_code=401)
        try:
            call = parse(await read_body(request))
            reply = await handle(ctx, call)
            if reply.pop("created", False) and observe_pop is not None:
                observe_pop(time.perf_counter() - started)
        except CTIError as exc:
            log.warning("CTI request refused: %s", exc.message)
            return JSONResponse({"error": exc.message, "field": exc.field}, status_code=422)
        except NotFound as exc:
            return JSONResponse({"error": exc.message, "field": exc.field}, status_code=404)
        except Unavailable as exc:
            log.error("CTI event not stored, phone system told to retry: %s", exc.message)
            return JSONResponse({"error": f"not stored, retry after Retry-After: {exc.message}"}, status_code=503,
                                headers={"Retry-After": str(exc.retry_after)})
        except ConsoleError as exc:
            return JSONResponse({"error": exc.message, "field": exc.field}, status_code=409)
        return JSONResponse(reply)

    return [Route("/integrations/cti/{token}", endpoint, methods=["POST"])]



def openapi_paths() -> dict[str, Any]:
    """The endpoint described for /openapi.json (console.web.openapi): what parse and read_body accept."""
    # A value: at most MAX_VALUE characters, none that console.logs.UNSAFE refuses; in JSON also an
    # integer. A required one needs more than spaces.
    # (Halves of surrogate pairs are refused too; a pattern cannot name them portably.)
    unsafe = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029"
    safe_text = {"type": "string", "maxLength": MAX_VALUE, "pattern": f"^[^{unsafe}]*$"}
    some_text = {**safe_text, "minLength": 1, "pattern": f"^[^{unsafe}]*[^\\s{unsafe}][^{unsafe}]*$"}
    integer = {"type": "integer", "minimum": -MAX_INTEGER, "maximum": MAX_INTEGER}
    value = {"oneOf": [safe_text, integer, {"type": "null"}]}  # null: as if absent
    given = {"oneOf": [some_text, integer]}
    optional = {
        "user": {"oneOf": [safe_text, {"type": "array", "items": safe_text, "maxItems": 100}, {"type": "null"}],
                 "description": "extensions or agent names the call rings at"},
        "queue": {**value, "description": "the console queue's name"},
        "cause": {**value, "description": "hangup: cancel, noAnswer, busy, normalClearing, ..."},
        "answeringNumber": {**value, "description": "answer: the extension that took the call"},
    }
    new_call = {
        "type": "object", "title": "newCall",
        "required": ["event", "callId", "from", "to", "direction"],
        "properties": {
            "event": {"const": "newCall"},
            "callId": {**given, "description": "the phone system's id of the call"},
            "from": {**given, "description": "the caller's number"},
            "to": {**given, "description": "the number dialled"},
            "direction": {"type": "string", "enum": ["in", "out"]},
            **optional,
        },
    }
    later = {
        "type": "object", "title": "answer or hangup",
        "required": ["event", "callId"],
        "properties": {
            "event": {"type": "string", "enum": [e for e in EVENTS if e != "newCall"]},
            "callId": given, "from": value, "to": value,
            "direction": {"type": "string", "enum": ["in", "out"]},
            **optional,
        },
    }
    event = {"oneOf": [new_call, later]}
    problem = {"$ref": "#/components/schemas/Problem"}
    answers = {
        "200": {"description": "stored", "content": {"application/json": {"schema": {
            "type": "object", "required": ["conversation", "state"],
            "properties": {"conversation": {"type": "integer"}, "state": {"type": "string"},
                           "action": {"type": "string", "enum": ["transfer"]},
                           "target": {"type": "string", "description": "the extension to transfer to"}}}}}},
        "401": {"description": "wrong or missing token", "content": {"application/json": {"schema": problem}}},
        "404": {"description": "answer or hangup of a call the console does not know",
                "content": {"application/json": {"schema": problem}}},
        "409": {"description": "the event does not fit the call's state",
                "content": {"application/json": {"schema": problem}}},
        "422": {"description": "a field is missing or malformed; `field` names it",
                "content": {"application/json": {"schema": problem}}},
        "503": {"description": "not stored now (the node is past its capacity); retry after Retry-After",
                "headers": {"Retry-After": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": problem}}},
    }
    return {"/integrations/cti/{token}": {"post": {
        "operationId": "ctiEvent",
        "summary": "A call event from the phone system (Zammad's generic CTI format)",
        "parameters": [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
                        "description": "CONSOLE_CTI_TOKEN"}],
        "requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": event},
            "application/json": {"schema": event}}},
        "responses": answers,
    }}}
