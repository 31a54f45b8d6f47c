"""What Twilio's voice and messaging connectors share: signed webhooks and Twilio's REST API.

Every request from Twilio is checked with Twilio's own validator (the `twilio` package): the
signature in X-Twilio-Signature covers the full URL Twilio requested and the sorted form fields,
or, for a JSON body, the URL with its `bodySHA256` (the hash of the body). The URL is rebuilt from
CONSOLE_TWILIO_PUBLIC_URL, not from what a reverse proxy passed on, and the validator accepts it
with and without the default port, as Twilio signs either. Anything else fails closed: 403.

The REST API is used to move a live call (a caller on hold to the agent the console chose) and to
send messages. CONSOLE_TWILIO_API_URL points it elsewhere (the demo's simulated Twilio, tests).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm

from console.errors import ConsoleError, Unavailable
from console.logs import UNSAFE, safe
from integrations.connectors import ConnectorState
from integrations.telephony.cti import limited_body

log = logging.getLogger("integrations.twilio")

MAX_BODY = 64 * 1024
MAX_FIELDS = 200
SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")


class Refused(Exception):
    """A webhook request that is not taken: `status` 403 (signature) or 400 (malformed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Twilio:
    """The account's settings and the connector's state, shared by voice and messaging."""

    auth_token: str
    public_url: str
    account_sid: str = ""
    api_url: str = "https://api.twilio.com"
    state: ConnectorState = field(default_factory=lambda: ConnectorState("twilio"))
    transport: httpx.AsyncBaseTransport | None = None  # tests answer as Twilio's API

    def __post_init__(self) -> None:
        self.state.state = "ready" if self.auth_token else "off"
        self._validator = RequestValidator(self.auth_token) if self.auth_token else None

    @property
    def can_call_api(self) -> bool:
        return bool(self.auth_token and self.account_sid)

    def url(self, path: str) -> str:
        """The public URL of one of the console's paths (what Twilio requests, and signs)."""
        return self.public_url + path

    def _signed_url(self, request: Request) -> str:
        query = request.url.query
        return self.public_url + request.url.path + (f"?{query}" if query else "")

    async def params(self, request: Request) -> dict[str, str]:
        """The request's fields once its signature holds; Refused says why not."""
        if self._validator is None:
            raise self._refuse(403, "Twilio is not set up on this console (CONSOLE_TWILIO_AUTH_TOKEN is unset)")
        signature = request.headers.get("x-twilio-signature", "")
        if not signature:
            raise self._refuse(403, "request without X-Twilio-Signature")
        body = await limited_body(request, MAX_BODY, Refused(400, f"request body is larger than {MAX_BODY} bytes"))
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        url = self._signed_url(request)
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        if content_type == "application/json":
            if not re.fullmatch(r"[0-9a-f]{64}", request.query_params.get("bodySHA256", "")):
                raise self._refuse(403, "JSON request without a bodySHA256 (64 hexadecimal digits) in its URL")
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise self._refuse(400, "body is not valid UTF-8") from None
            if not self._validator.validate(url, text, signature, algorithm):
                raise self._refuse(403, _wrong_signature(url))
            try:
                data = json.loads(text or "{}")
            except (ValueError, RecursionError):
                raise self._refuse(400, "body is not valid JSON") from None
            if not isinstance(data, dict):
                raise self._refuse(400, "JSON body must be an object")
            fields = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
        elif content_type in ("application/x-www-form-urlencoded", ""):
            try:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict",
                                  max_num_fields=MAX_FIELDS)
            except UnicodeDecodeError:
                raise self._refuse(400, "form body is not valid UTF-8") from None
            except ValueError:
                raise self._refuse(400, f"form body has more than {MAX_FIELDS} fields") from None
            if not self._validator.validate(url, ImmutableMultiDict(pairs), signature, algorithm):
                raise self._refuse(403, _wrong_signature(url))
            fields = dict(pairs)
        else:
            raise self._refuse(400, f"content type must be application/x-www-form-urlencoded or application/json, "
                               f"not {safe(content_type)}")
        self.state.seen()  # each field the console reads is checked as it is read (`text`, `sid`)
        return fields

    def _refuse(self, status: int, message: str) -> Refused:
        log.warning("Twilio request refused (%d): %s", status, message)
        if status == 403:
            # What the operator needs when every request fails: the usual cause is the public URL.
            self.state.failures += 1
            self.state.last_error = message[:500]
        return Refused(status, message)

    async def api(self, path: str, data: dict[str, str | list[str]]) -> dict[str, Any]:
        """POST to Twilio's REST API under the account; raises ApiError with Twilio's message."""
        if not self.can_call_api:
            raise ApiError("CONSOLE_TWILIO_ACCOUNT_SID is unset: the console cannot call Twilio's API")
        url = f"{self.api_url}/2010-04-01/Accounts/{self.account_sid}/{path}"
        try:
            async with httpx.AsyncClient(auth=(self.account_sid, self.auth_token), timeout=10.0,
                                         transport=self.transport) as client:
                response = await client.post(url, data=data)
        except httpx.HTTPError as exc:
            error = f"Twilio's API is unreachable: {type(exc).__name__}"
            self.state.failed(error)
            raise ApiError(error, status=0) from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if response.status_code >= 400:
            error = f"Twilio's API answered {response.status_code}: {safe(str(answer.get('message', '')))[:300]}"
            self.state.failed(error)
            raise ApiError(error, status=response.status_code,
                           code=answer.get("code") if isinstance(answer.get("code"), int) else None)
        self.state.state = "ready"
        return answer


class ApiError(Exception):
    """Twilio's API did not do it: `status` 0 when it could not be reached, else its HTTP status
    with Twilio's error `code` when it gave one."""

    def __init__(self, message: str, status: int = 0, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    @property
    def passing(self) -> bool:
        """Worth trying again later: unreachable, rate-limited (429) or Twilio's own trouble (5xx)."""
        return self.status == 0 or self.status == 429 or self.status >= 500


def _wrong_signature(url: str) -> str:
    return (f"wrong X-Twilio-Signature for {safe(url)} (is CONSOLE_TWILIO_PUBLIC_URL the address Twilio "
            "requests, and CONSOLE_TWILIO_AUTH_TOKEN the account's auth token?)")


def text(fields: dict[str, str], name: str, *, required: bool = False, limit: int = 250) -> str:
    """A field Twilio sent, checked: no control characters, at most `limit` characters."""
    value = fields.get(name, "").strip()
    if required and not value:
        raise Refused(400, f"field {name} is required")
    if len(value) > limit:
        raise Refused(400, f"field {name} is longer than {limit} characters")
    found = UNSAFE.search(value)
    if found:
        raise Refused(400, f"field {name} contains the character U+{ord(found.group()):04X}, which is not allowed")
    return value


def sid(fields: dict[str, str], name: str, prefix: str, *, required: bool = True) -> str:
    """A Twilio SID field (two letters and 32 hexadecimal digits), checked."""
    value = fields.get(name, "").strip()
    if not value and not required:
        return ""
    if not SID.match(value) or not value.startswith(prefix):
        raise Refused(400, f"field {name} must be a Twilio SID starting with {prefix} (34 characters)")
    return value


def webhook(handler: Callable[[Request], Awaitable[Response]], refused_status: int = 400
            ) -> Callable[[Request], Awaitable[Response]]:
    """A Twilio endpoint: a refused request answers its status and reason, the database being
    briefly away 503 with Retry-After (Twilio retries), what the console refuses `refused_status`."""
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except Refused as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except Unavailable as exc:
            log.error("Twilio request not taken, the database is unavailable: %s", exc.message)
            return JSONResponse({"error": exc.message}, status_code=503, headers={"Retry-After": str(exc.retry_after)})
        except ConsoleError as exc:
            log.warning("Twilio request refused: %s", exc.message)
            return JSONResponse({"error": exc.message, "field": exc.field}, status_code=refused_status)
    return endpoint
