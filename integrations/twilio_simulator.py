"""A pretend Twilio for the demo: calls, SMS and WhatsApp through the console's real Twilio webhooks.

The console cannot tell it from Twilio, which is the point: a newcomer sees a screen-pop from the
same code path a real Twilio account drives (integrations.telephony.twilio and
integrations.messaging.twilio), every request signed as Twilio signs it, for the console's public
URL (CONSOLE_TWILIO_PUBLIC_URL), and sent to where the console listens (the same address in the
demo; another one behind a proxy, as in the tests).

Three parts, one `SimulatedTwilio`:

* Its REST API (`api_app`, served by `serve_api` on a port of this machine, where
  CONSOLE_TWILIO_API_URL points): `Messages.json` takes a reply (201, "queued") and then reports
  its delivery to the StatusCallback: sent, delivered, and read on WhatsApp, a second or two
  apart and now and then out of order, as Twilio's callbacks may come. `Calls/{CallSid}.json` with
  a `Url` moves a live call: what the caller hears (hold music) stops and the call fetches that
  URL, which is how the console connects a holding caller to the agent it chose. Both check the
  account's basic auth and answer Twilio's error JSON (401, code 20003) when it is wrong.
* Callers (`call`, paced by `run_twilio_callers`): the voice webhook, then the TwiML the console
  answers, verb by verb. <Say> and <Play> take a few seconds (a shortened round of hold music),
  <Redirect> fetches its URL, <Dial> rings the agent's softphone, posting its leg's statuses to the
  noun's statusCallback; the softphone answers by itself (or, one time in five, rings until the
  Dial's timeout), the two talk, and the Dial's action says how it ended. <Hangup> or the end of the
  TwiML ends the call, and the caller's leg reports its final status. Some callers give up on hold.
* Texters (`text`, paced by `run_texters`): an SMS to the service line or a WhatsApp message to
  the WhatsApp sender, a short script in Dutch or English: the next line comes after the agent's
  reply (which reaches them through the REST API) and, now and then, unprompted. No texter sends
  STOP unless `stop_share` says so.

Only URLs under the public URL are requested (mapped to the console's address): the pretend Twilio
talks to the console and to nothing else. Failures are logged and the traffic goes on; nothing is
raised out of the run loops.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import random
import secrets
import socket
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from integrations.simulator import SERVICE_LINES, _Staffing, _unknown_number, keep_starting

log = logging.getLogger("integrations.twilio_simulator")

API_VERSION = "2010-04-01"
VOICE = "/integrations/twilio/voice"
VOICE_STATUS = "/integrations/twilio/voice/status"  # the number's "call status changes" webhook
MESSAGING = "/integrations/twilio/messaging"
WHATSAPP_NUMBER = "whatsapp:+14155238886"  # Twilio's WhatsApp sandbox sender
SMS_NUMBER = SERVICE_LINES[0]
MAX_TWIML = 64 * 1024
MAX_REDIRECTS = 200  # one call's TwiML documents; a loop in the console's TwiML ends the call
LEG_NOUNS = ("Client", "Sip", "Number")

TEXTS: dict[str, list[list[str]]] = {
    "nl": [
        ["Hoi, mijn pakket is nog steeds niet bezorgd. Kunnen jullie kijken waar het blijft?",
         "Het bestelnummer is 2026-48213.", "Top, dank je wel!"],
        ["Goedemiddag, ik wil mijn afspraak van donderdag graag verzetten naar volgende week.",
         "Dinsdag of woensdag na 14 uur kan ik.", "Prima, tot dan."],
        ["Mijn factuur is deze maand een stuk hoger dan normaal, klopt dat wel?",
         "Het gaat om factuur 2026-10049.", "Duidelijk, bedankt voor de uitleg."],
        ["Kan ik mijn abonnement tijdens de zomer een paar weken pauzeren?",
         "Van 1 juli tot 15 augustus graag.", "Fijn, dank u wel."],
        ["Hallo, de monteur is vandaag niet gekomen. Wat nu?", "Morgen ben ik de hele dag thuis.",
         "Oké, tot morgen dan."],
    ],
    "en": [
        ["Hi, my order hasn't arrived yet. Could you check where it is?", "The order number is 2026-50117.",
         "Great, thanks a lot!"],
        ["Hello, can I still change the delivery address of my order?", "It should go to Kerkstraat 12, Utrecht.",
         "Perfect, thank you."],
        ["Hi! Is the 20% discount still valid this weekend?", "Does it apply to the sale items too?",
         "Thanks, that helps."],
    ],
}
# What a texter adds on their own, before anyone answered.
AFTERTHOUGHTS = {"nl": ["O ja, mijn postcode is 3512 AB.", "Sorry, vergeten te zeggen: het is best dringend."],
                 "en": ["Oh, and my postcode is 3512 AB.", "Sorry, forgot to say: it's rather urgent."]}
PROFILE_NAMES = ("Jan", "Sanne", "Mohamed", "Lotte", "Priya", "Tom", "Emma", "Daan")


def new_sid(prefix: str) -> str:
    """A Twilio SID: two letters and 32 hexadecimal digits."""
    return prefix + secrets.token_hex(16)


def _now() -> str:
    return format_datetime(datetime.now(UTC), usegmt=True)


@dataclass(frozen=True)
class Timing:
    """How long things take and how often they go otherwise, in seconds (the demo's defaults)."""

    say: tuple[float, float] = (2.0, 4.0)  # a spoken message
    play: tuple[float, float] = (4.0, 8.0)  # one (shortened) round of hold music
    pause_max: float = 2.0  # a <Pause> lasts its length, at most this
    setup: tuple[float, float] = (0.3, 1.0)  # an agent's leg: from initiated to ringing
    answer: tuple[float, float] = (3.0, 8.0)  # the softphone answers by itself after ringing this long
    no_answer: float = 0.2  # the share of rings nobody answers (they ring until the Dial's timeout)
    ring_out: float | None = None  # how long an unanswered phone rings; None: the Dial's timeout
    talk: tuple[float, float] = (20.0, 90.0)
    patience: tuple[float, float] = (90.0, 240.0)  # a caller holds this long at most in all
    hang_up_holding: float = 0.05  # the chance a caller gives up during a round of hold music
    hang_up_ringing: float = 0.03  # the chance a caller hangs up while the agent's phone rings
    delivery_gap: tuple[float, float] = (1.0, 2.0)  # between a message's delivery statuses
    out_of_order: float = 0.25  # the chance a message's delivered comes before its sent
    reply_pause: tuple[float, float] = (5.0, 20.0)  # a texter reads the agent's reply and types the next line
    afterthought: float = 0.3  # the chance a texter adds a line before anyone answered
    afterthought_after: tuple[float, float] = (8.0, 30.0)
    text_patience: float = 600.0  # a texter waits this long for the agent's reply
    retry: float = 1.0  # before posting a webhook again that did not get through


@dataclass(frozen=True)
class _Fetch:
    """Go on with the TwiML at this URL (a Redirect, a Dial's action, a move through the API)."""

    url: str
    method: str = "POST"
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _End:
    """The call is over: the caller's leg ends with `status`; `why` is for the log."""

    status: str
    why: str


Step = _Fetch | _End


class _Call:
    """One live inbound call: its caller's leg, and what the REST API asked of it."""

    def __init__(self, sid: str, caller: str, callee: str, patience: float) -> None:
        self.sid, self.caller, self.callee = sid, caller, callee
        self.status = "ringing"
        self.answered_by = ""  # the softphone that answered, for the log
        self.sequence = 0  # of the caller's leg's status callbacks
        self.started = asyncio.get_running_loop().time()
        self.gives_up_at = self.started + patience
        self._asked: Step | None = None
        self._event = asyncio.Event()

    def ask(self, step: Step) -> None:
        """The REST API moves or ends the call: whatever it does now stops for this."""
        self._asked = step
        self._event.set()

    def take(self) -> Step | None:
        step, self._asked = self._asked, None
        self._event.clear()
        return step

    def drop_move_to(self, url: str) -> None:
        """About to fetch `url` anyway: a move there that is still pending is done by that."""
        if isinstance(self._asked, _Fetch) and self._asked.url == url:
            self.take()

    async def wait(self, seconds: float) -> Step | None:
        """Let `seconds` pass; what the API asked meanwhile, or None."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), max(0.0, seconds))
        return self.take()

    def params(self) -> dict[str, str]:
        return {"CallSid": self.sid, "From": self.caller, "To": self.callee, "Caller": self.caller,
                "Called": self.callee, "CallStatus": self.status, "Direction": "inbound", "ApiVersion": API_VERSION}


@dataclass
class _Leg:
    """The leg a <Dial> starts to the agent's softphone; its callbacks count their own sequence."""

    sid: str
    to: str
    callback: str
    method: str
    events: frozenset[str]
    sequence: int = 0


class SimulatedTwilio:
    """One pretend Twilio account in front of one console.

    `console_url` is where requests go; `public_url` (the console's CONSOLE_TWILIO_PUBLIC_URL;
    `console_url` when empty) is what they are signed for and what the console's TwiML names.
    """

    def __init__(self, account_sid: str, auth_token: str, console_url: str, public_url: str = "", *,
                 timing: Timing | None = None, rng: random.Random | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.console_url = console_url.rstrip("/")
        self.public_url = (public_url or console_url).rstrip("/")
        self.timing = timing or Timing()
        self.rng = rng or random.Random()
        self.signer = RequestValidator(auth_token)
        # Idle connections are dropped before uvicorn's keep-alive (5 s) ends: reusing one the
        # server is closing at that moment fails.
        self.client = httpx.AsyncClient(timeout=15.0, transport=transport,
                                        limits=httpx.Limits(keepalive_expiry=2.0))
        self.calls: dict[str, _Call] = {}
        self.ended: deque[str] = deque(maxlen=1000)  # calls that were live: the API says they are over
        self.requests: deque[tuple[str, dict[str, str]]] = deque(maxlen=200)  # what the REST API was asked
        self.inboxes: dict[str, asyncio.Queue[str]] = {}  # a texter's address: the replies sent to it
        self.tasks: set[asyncio.Task[None]] = set()

    # -- webhooks to the console ---------------------------------------------------------------

    def public(self, path: str) -> str:
        return self.public_url + path

    def _target(self, url: str) -> str | None:
        """Where to send a request for this public URL; None for a URL that is not the console's."""
        if url == self.public_url or url.startswith((self.public_url + "/", self.public_url + "?")):
            return self.console_url + url[len(self.public_url):]
        return None

    async def post(self, url: str, params: dict[str, str], method: str = "POST",
                   attempts: int = 3) -> httpx.Response | None:
        """A webhook as Twilio sends it: signed for `url`, with the account's SID. None when it did
        not get through (the reason is logged); an answer of 4xx or 5xx is logged and returned."""
        target = self._target(url)
        if target is None:
            log.warning("not requesting %s: the simulated Twilio only talks to the console at %s", url[:200],
                        self.public_url)
            return None
        params = {**params, "AccountSid": self.account_sid}
        if method.upper() == "GET":
            query = ("&" if "?" in url else "?") + urlencode(params)
            signature = self.signer.compute_signature(url + query, {})
            request: dict[str, Any] = {"method": "GET", "url": target + query}
        else:
            signature = self.signer.compute_signature(url, params)
            request = {"method": "POST", "url": target, "data": params}
        headers = {"X-Twilio-Signature": signature, "I-Twilio-Idempotency-Token": secrets.token_hex(16),
                   "User-Agent": "TwilioProxy/1.1 (simulated)"}
        for attempt in range(1, attempts + 1):
            try:
                response = await self.client.request(**request, headers=headers)
            except httpx.HTTPError as exc:
                log.warning("could not reach the console at %s (%s: %s)%s", target[:200], type(exc).__name__, exc,
                            "; trying again" if attempt < attempts else "; giving up")
            else:
                if response.status_code != 503 or attempt == attempts:
                    if response.status_code >= 400:
                        log.warning("the console answered %d to %s: %s", response.status_code, url[:200],
                                    response.text[:300])
                    return response
                log.warning("the console is unavailable for a moment (503 to %s); trying again", url[:200])
            await asyncio.sleep(self.timing.retry * attempt)
        return None

    # -- callers --------------------------------------------------------------------------------

    async def call(self, caller: str, callee: str, queue: str | None = None) -> str:
        """One inbound call from start to end; how it ended, for the log."""
        call = _Call(new_sid("CA"), caller, callee, self.rng.uniform(*self.timing.patience))
        self.calls[call.sid] = call
        try:
            end = await self._play(call, self.public(VOICE + (f"?{urlencode({'queue': queue})}" if queue else "")))
            await self._finish(call, end.status)
            return f"answered by {call.answered_by}; then {end.why}" if call.answered_by else end.why
        finally:
            self.calls.pop(call.sid, None)
            self.ended.append(call.sid)

    async def _play(self, call: _Call, url: str) -> _End:
        """Fetch the TwiML and carry it out, document after document, until the call ends."""
        step: Step = _Fetch(url)
        for _ in range(MAX_REDIRECTS):
            if isinstance(step, _End):
                return step
            document = await self._fetch(call, step)
            call.status = "in-progress"  # answered by its TwiML
            if document is None:
                # What Twilio does when the TwiML fails: "an application error has occurred".
                return _End("completed", f"the TwiML of {step.url[:120]} failed")
            step = await self._run(call, document, step.url)
        return step if isinstance(step, _End) else _End("completed", "too many TwiML documents")

    async def _fetch(self, call: _Call, step: _Fetch) -> ET.Element | None:
        call.drop_move_to(step.url)
        response = await self.post(step.url, {**call.params(), **step.extra}, step.method)
        if response is None or response.status_code != 200:
            return None
        if len(response.content) > MAX_TWIML:
            log.warning("TwiML of %s is larger than %d bytes", step.url[:200], MAX_TWIML)
            return None
        try:
            # The console's own answer, from the address the demo gave, size-limited: not
            # untrusted input (and expat refuses entity expansion bombs).
            document = ET.fromstring(response.content)  # noqa: S314
        except ET.ParseError as exc:
            log.warning("TwiML of %s is not XML (%s)", step.url[:200], exc)
            return None
        if document.tag != "Response":
            log.warning("TwiML of %s is a <%s>, not a <Response>", step.url[:200], document.tag)
            return None
        return document

    async def _run(self, call: _Call, document: ET.Element, source: str) -> Step:
        """Carry out one TwiML document; what comes after it."""
        for verb in document:
            asked = call.take()
            if asked is not None:
                return asked
            step = await self._verb(call, verb, source)
            if step is not None:
                return step
        return _End("completed", "the TwiML ended")

    async def _verb(self, call: _Call, verb: ET.Element, source: str) -> Step | None:
        timing = self.timing
        if verb.tag == "Say":
            return await self._listen(call, self.rng.uniform(*timing.say), holding=False)
        if verb.tag == "Play":
            # loop="0" plays for ever (until the call is moved or the caller gives up).
            while True:
                step = await self._listen(call, self.rng.uniform(*timing.play), holding=True)
                if step is not None or verb.get("loop") != "0":
                    return step
        if verb.tag == "Pause":
            length = verb.get("length", "1")
            seconds = min(float(length) if length.isdigit() else 1.0, timing.pause_max)
            return await self._listen(call, seconds, holding=True)
        if verb.tag == "Redirect":
            return _Fetch(urljoin(source, (verb.text or "").strip()), verb.get("method", "POST"))
        if verb.tag == "Dial":
            return await self._dial(call, verb, source)
        if verb.tag == "Hangup":
            return _End("completed", "the console hung up")
        if verb.tag == "Reject":
            return _End("busy", "the console rejected the call")
        log.info("simulated call %s skips <%s>, which the simulation does not play", call.sid, verb.tag)
        return None

    async def _listen(self, call: _Call, seconds: float, *, holding: bool) -> Step | None:
        """The caller listens for `seconds`; holding (music), they may give up."""
        if not holding:
            return await call.wait(seconds)
        left = call.gives_up_at - asyncio.get_running_loop().time()
        if left <= seconds:
            gives_up, seconds = True, max(0.0, left)
        elif self.rng.random() < self.timing.hang_up_holding:
            gives_up, seconds = True, seconds * self.rng.uniform(0.2, 1.0)
        else:
            gives_up = False
        asked = await call.wait(seconds)
        if asked is not None or not gives_up:
            return asked
        return _End("completed", "the caller gave up on hold")

    async def _dial(self, call: _Call, dial: ET.Element, source: str) -> Step | None:
        """Ring the agent's softphone: it answers after a few seconds, or rings until the timeout."""
        timing, rng = self.timing, self.rng
        timeout = dial.get("timeout", "30")
        ring_out = timing.ring_out if timing.ring_out is not None else float(timeout) if timeout.isdigit() else 30.0
        noun = next((child for child in dial if child.tag in LEG_NOUNS), None)
        if noun is not None:
            identity = noun.find("Identity")
            address = ((identity.text if identity is not None else noun.text) or "").strip()
            events = frozenset((noun.get("statusCallbackEvent") or "completed").replace(",", " ").split())
            leg = _Leg(new_sid("CA"), address, noun.get("statusCallback", ""), noun.get("statusCallbackMethod", "POST"),
                       events)
        else:
            leg = _Leg(new_sid("CA"), (dial.text or "").strip(), "", "POST", frozenset())
        await self._leg_status(call, leg, "initiated")
        asked = await call.wait(rng.uniform(*timing.setup))
        if asked is not None:
            await self._leg_status(call, leg, "canceled")
            return asked
        await self._leg_status(call, leg, "ringing")
        answers = rng.random() >= timing.no_answer
        ring = rng.uniform(*timing.answer) if answers else ring_out
        if rng.random() < timing.hang_up_ringing:
            asked = await call.wait(ring * rng.uniform(0.2, 0.9))
            await self._leg_status(call, leg, "canceled")
            return asked or _End("completed", f"the caller hung up while {leg.to} rang")
        asked = await call.wait(ring)
        if asked is not None:  # moved (the console withdrew the offer): Twilio requests no action
            await self._leg_status(call, leg, "canceled")
            return asked
        if not answers:
            await self._leg_status(call, leg, "no-answer")
            return self._dialed(dial, source, "no-answer", leg)
        await self._leg_status(call, leg, "in-progress")
        call.answered_by = leg.to
        started = asyncio.get_running_loop().time()
        asked = await call.wait(rng.uniform(*timing.talk))
        duration = str(round(asyncio.get_running_loop().time() - started))
        await self._leg_status(call, leg, "completed", CallDuration=duration)
        if asked is not None:
            return asked
        return self._dialed(dial, source, "completed", leg, DialCallDuration=duration)

    @staticmethod
    def _dialed(dial: ET.Element, source: str, outcome: str, leg: _Leg, **extra: str) -> Step | None:
        """The Dial's action with how it ended; without an action the TwiML goes on after the Dial."""
        action = dial.get("action")
        if not action:
            return None
        return _Fetch(urljoin(source, action), dial.get("method", "POST"),
                      {"DialCallStatus": outcome, "DialCallSid": leg.sid, **extra})

    async def _leg_status(self, call: _Call, leg: _Leg, status: str, **extra: str) -> None:
        """The agent's leg's status callback, when the Dial asked for this event."""
        event = {"in-progress": "answered", "initiated": "initiated", "ringing": "ringing"}.get(status, "completed")
        if not leg.callback or event not in leg.events:
            return
        params = {"CallSid": leg.sid, "ParentCallSid": call.sid, "CallStatus": status,
                  "SequenceNumber": str(leg.sequence), "Direction": "outbound-dial", "From": call.caller,
                  "To": leg.to, "Timestamp": _now(), "CallbackSource": "call-progress-events",
                  "ApiVersion": API_VERSION, **extra}
        leg.sequence += 1
        await self.post(urljoin(self.public_url + "/", leg.callback), params, leg.method)

    async def _finish(self, call: _Call, status: str) -> None:
        """The caller's leg's final status, to the number's status callback."""
        duration = round(asyncio.get_running_loop().time() - call.started)
        call.status = status
        params = {**call.params(), "SequenceNumber": str(call.sequence), "CallDuration": str(duration),
                  "Timestamp": _now(), "CallbackSource": "call-progress-events"}
        call.sequence += 1
        await self.post(self.public(VOICE_STATUS), params)

    # -- texters --------------------------------------------------------------------------------

    async def text(self, sender: str, to: str, queue: str | None = None, language: str = "nl", *,
                   stop: bool = False) -> str:
        """One customer's text conversation: a script's first line, the next after each reply."""
        timing, rng = self.timing, self.rng
        lines = list(rng.choice(TEXTS[language]))
        if rng.random() < timing.afterthought:
            lines.insert(1, rng.choice(AFTERTHOUGHTS[language]))
            unprompted = 1  # the afterthought comes before anyone answered
        else:
            unprompted = 0
        if stop:
            lines[-1] = "STOP"
        url = self.public(MESSAGING + (f"?{urlencode({'queue': queue})}" if queue else ""))
        profile = rng.choice(PROFILE_NAMES)
        inbox: asyncio.Queue[str] = asyncio.Queue()
        self.inboxes[sender] = inbox
        try:
            for number, line in enumerate(lines):
                if number and number <= unprompted:
                    await asyncio.sleep(rng.uniform(*timing.afterthought_after))
                elif number:
                    try:
                        await asyncio.wait_for(inbox.get(), timing.text_patience)
                    except TimeoutError:
                        return f"nobody answered after {number} messages"
                    await asyncio.sleep(rng.uniform(*timing.reply_pause))
                    while not inbox.empty():  # they read every reply that came, and answer once
                        inbox.get_nowait()
                response = await self.post(url, self._message(sender, to, line, profile))
                if response is None or response.status_code != 200:
                    return f"message {number + 1} was not taken"
            return f"wrote {len(lines)} messages"
        finally:
            if self.inboxes.get(sender) is inbox:
                del self.inboxes[sender]

    @staticmethod
    def _message(sender: str, to: str, body: str, profile: str) -> dict[str, str]:
        sid = new_sid("SM")
        params = {"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "From": sender, "To": to, "Body": body,
                  "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": API_VERSION}
        if sender.startswith("whatsapp:"):
            params.update(ProfileName=profile, WaId=sender.removeprefix("whatsapp:+"), MessageType="text")
        return params

    # -- the REST API ---------------------------------------------------------------------------

    def api_app(self) -> Starlette:
        """Twilio's REST API, the two resources the console uses."""
        base = f"/{API_VERSION}/Accounts/{{account}}"
        return Starlette(routes=[Route(f"{base}/Messages.json", self._messages, methods=["POST"]),
                                 Route(f"{base}/Calls/{{call}}.json", self._update_call, methods=["POST"])])

    def _refused(self, request: Request) -> Response | None:
        """Twilio's answer to a request without the account's credentials; None when they hold."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if (scheme.lower() == "basic" and hmac.compare_digest(user, self.account_sid)
                and hmac.compare_digest(password, self.auth_token)
                and request.path_params["account"] == self.account_sid):
            return None
        return JSONResponse({"code": 20003, "message": "Authenticate", "more_info": "https://www.twilio.com/docs/"
                             "errors/20003", "status": 401}, status_code=401,
                            headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})

    async def _form(self, request: Request) -> dict[str, str]:
        form = await request.form()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        self.requests.append((request.url.path, fields))
        return fields

    @staticmethod
    def _error(status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/"
                             f"{code}", "status": status}, status_code=status)

    async def _messages(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        fields = await self._form(request)
        to, sender = fields.get("To", ""), fields.get("From", "")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not sender and not fields.get("MessagingServiceSid"):
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not fields.get("Body") and not fields.get("ContentSid"):
            return self._error(400, 21602, "Message body is required.")
        sid = new_sid("SM")
        self._later(self._deliver(sid, sender, to, fields.get("StatusCallback", "")))
        inbox = self.inboxes.get(to)
        if inbox is not None:
            inbox.put_nowait(fields.get("Body") or fields.get("ContentSid", ""))
        return JSONResponse({"sid": sid, "account_sid": self.account_sid, "status": "queued", "to": to,
                             "from": sender, "body": fields.get("Body", ""), "direction": "outbound-api",
                             "api_version": API_VERSION, "num_segments": "1", "num_media": "0",
                             "date_created": _now(), "error_code": None, "error_message": None, "price": None,
                             "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json"},
                            status_code=201)

    async def _deliver(self, sid: str, sender: str, to: str, callback: str) -> None:
        """The message's delivery, reported to its StatusCallback; now and then out of order."""
        if not callback:
            return
        statuses = ["sent", "delivered"] + (["read"] if to.startswith("whatsapp:") else [])
        if self.rng.random() < self.timing.out_of_order:
            statuses[0], statuses[1] = statuses[1], statuses[0]
        for status in statuses:
            await asyncio.sleep(self.rng.uniform(*self.timing.delivery_gap))
            await self.post(callback, {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                                       "From": sender, "To": to, "ApiVersion": API_VERSION})

    async def _update_call(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        sid = request.path_params["call"]
        fields = await self._form(request)
        call = self.calls.get(sid)
        if call is None:
            if sid in self.ended:
                return self._error(400, 21220, "Call is not in-progress. Cannot redirect.")
            return self._error(404, 20404, f"The requested resource {request.url.path} was not found")
        status = fields.get("Status", "")
        if status in ("completed", "canceled"):
            call.ask(_End("completed", "ended through the REST API"))
        elif fields.get("Url"):
            call.ask(_Fetch(urljoin(self.public_url + "/", fields["Url"]), fields.get("Method") or "POST"))
        else:
            return self._error(400, 21205, "The simulated Twilio moves a call with Url, or ends it with Status.")
        return JSONResponse({"sid": sid, "account_sid": self.account_sid, "status": "in-progress",
                             "from": call.caller, "to": call.callee, "direction": "inbound",
                             "api_version": API_VERSION})

    def _later(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the other callbacks go on
            log.error("a simulated Twilio callback failed", exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()


class _Server(uvicorn.Server):
    """uvicorn that leaves the signals alone: Ctrl+C belongs to the console's server beside it,
    which stops the demo, which stops this."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class ApiServer:
    """The pretend REST API, served: its address, and how to stop it."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int

    @property
    def url(self) -> str:
        """What CONSOLE_TWILIO_API_URL is set to."""
        return f"http://{self.host}:{self.port}"

    async def close(self) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), 5.0)
        except TimeoutError:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def serve_api(twilio: SimulatedTwilio, host: str = "127.0.0.1", port: int = 0) -> ApiServer:
    """Serve `twilio`'s REST API on host:port (0: a free port); returns once it listens."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = int(sock.getsockname()[1])
    server = _Server(uvicorn.Config(twilio.api_app(), log_level="warning", lifespan="off", access_log=False))
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            sock.close()
            await task  # raises why it did not start
            raise RuntimeError("the simulated Twilio API did not start")
        await asyncio.sleep(0.02)
    return ApiServer(server, task, host, port)


def _mobile(rng: random.Random, taken: set[str]) -> str:
    """A Dutch mobile number nobody here has (texts come from mobiles)."""
    while True:
        number = "+316" + rng.choice("123458") + f"{rng.randrange(10**7):07d}"
        if number not in taken:
            return number


async def run_twilio_callers(
    twilio: SimulatedTwilio,
    *,
    rate: float = 1.0,
    count: int = 0,
    numbers: Sequence[str] = (),
    queues: Sequence[str] = ("service",),
    known_share: float = 0.75,
    staffing: Callable[[], Awaitable[int]] | None = None,
    waiting: int = 0,
    staffing_check: float = 1.0,
) -> None:
    """Start at most `rate` calls a minute (0: no pause); after `count` (0: never) wait for them and return.

    Paced as integrations.simulator paces its calls: given `staffing` (how many agents are logged
    in), a call starts only while the calls in progress are fewer than that plus `waiting`.
    Callers are mostly `numbers` (customers'), the rest unknown Dutch numbers; each call names one
    of `queues`. Cancelling ends at once and cancels the calls in progress.
    """
    rng = twilio.rng
    known = list(numbers)
    taken = set(known)
    staffed = _Staffing(staffing) if staffing is not None else None

    async def one(caller: str, callee: str, queue: str | None) -> None:
        try:
            outcome = await twilio.call(caller, callee, queue)
        except Exception:  # a bug in one call must not stop the traffic
            log.exception("simulated Twilio call from %s failed", caller)
        else:
            log.info("simulated Twilio call from %s: %s", caller, outcome)

    def next_call() -> Coroutine[Any, Any, None]:
        caller = rng.choice(known) if known and rng.random() < known_share else _unknown_number(rng, taken)
        return one(caller, rng.choice(SERVICE_LINES), rng.choice(queues) if queues else None)

    async def room(in_progress: Callable[[], int]) -> None:
        if staffed is not None:
            await staffed.room(in_progress, waiting, staffing_check)

    await keep_starting(next_call, rate=rate, count=count, rng=rng, room=room)


async def run_texters(
    twilio: SimulatedTwilio,
    *,
    rate: float = 1.0,
    count: int = 0,
    numbers: Sequence[str] = (),
    queues: Sequence[str] = ("service",),
    whatsapp_share: float = 0.4,
    known_share: float = 0.6,
    at_once: int = 3,
    stop_share: float = 0.0,
    staffing: Callable[[], Awaitable[int]] | None = None,
    staffing_check: float = 1.0,
    sms_number: str = SMS_NUMBER,
    whatsapp_number: str = WHATSAPP_NUMBER,
) -> None:
    """Start about `rate` text conversations a minute (0: no pause), at most `at_once` at a time and
    only while `staffing` says agents are logged in; after `count` (0: never) wait for them and return.

    A texter writes from a customer's mobile number (`numbers`, `known_share` of the time) or an
    unknown one, by SMS to `sms_number` or by WhatsApp to `whatsapp_number` (`whatsapp_share`).
    `stop_share` of them end with STOP (none by default: the demo keeps its customers).
    """
    rng = twilio.rng
    mobiles = [n for n in numbers if n.startswith(("+316", "+447"))]
    taken = set(numbers)
    staffed = _Staffing(staffing) if staffing is not None else None

    async def one(sender: str, to: str, queue: str | None, language: str, stop: bool) -> None:
        try:
            outcome = await twilio.text(sender, to, queue, language, stop=stop)
        except Exception:  # one texter's trouble must not stop the others
            log.exception("simulated texter %s failed", sender)
        else:
            log.info("simulated texter %s: %s", sender, outcome)

    def next_texter() -> Coroutine[Any, Any, None] | None:
        number = rng.choice(mobiles) if mobiles and rng.random() < known_share else _mobile(rng, taken)
        whatsapp = rng.random() < whatsapp_share
        sender, to = (f"whatsapp:{number}", whatsapp_number) if whatsapp else (number, sms_number)
        if sender in twilio.inboxes:  # this customer is texting already: someone else, in a moment
            return None
        language = "en" if number.startswith("+44") or rng.random() < 0.3 else "nl"
        return one(sender, to, rng.choice(queues) if queues else None, language, rng.random() < stop_share)

    async def room(in_progress: Callable[[], int]) -> None:
        while in_progress() >= max(1, at_once) or (staffed is not None and await staffed.now() <= 0):
            await asyncio.sleep(staffing_check)

    await keep_starting(next_texter, rate=rate, count=count, rng=rng, room=room, retry=staffing_check)
