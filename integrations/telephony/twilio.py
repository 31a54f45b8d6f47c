"""Twilio Voice: Twilio holds the caller, the console chooses the agent, Twilio connects them.

Set up in Twilio's console, for the phone number (all POST, all signed by Twilio):

    A call comes in            {public}/integrations/twilio/voice?queue=<console queue>
    Call status changes        {public}/integrations/twilio/voice/status

The voice webhook stores the call (a conversation, idempotent on CallSid) and lets the console
route it. When an agent was chosen, the answer is TwiML that dials the agent's Twilio Client
identity, SIP address or phone number (CONSOLE_TWILIO_DIAL from the agent's extension); otherwise
the caller hears the queue's hold message in their language and its music, and the call comes
back to `/voice/wait` after each round of it. When an agent is chosen while the caller holds, the
console moves the call there at once through Twilio's REST API (with CONSOLE_TWILIO_ACCOUNT_SID),
and at the end of the round of music otherwise.

The agent's leg reports to `/voice/status?leg=agent`: its answer makes the conversation active for
that agent. The Dial's action (`/voice/dialed`) says how the ring ended: no answer, busy or
failed rings the offer out (as a missed offer) and the call moves on to the next agent or back to
hold; after a conversation it hangs up. The caller's final status (completed, busy, no-answer,
failed, canceled) ends the conversation. Status callbacks may repeat or come out of order: each
leg's status only moves forward (Twilio's SequenceNumber, then the order of the statuses), and a
final one is never overwritten, so a late callback changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.twiml.voice_response import VoiceResponse

from console import changes, conversations, i18n, offers
from console.errors import Conflict, ConsoleError, Unavailable
from console.lifecycle import ENDED
from console.models import Agent, Channel, Conversation, Customer, Direction, Queue, State, TwilioCall, utcnow
from console.ports import Context
from integrations.twilio_webhooks import ApiError, Refused, Twilio, sid, text, webhook

log = logging.getLogger("integrations.twilio.voice")

BASE = "/integrations/twilio/voice"
ORDER = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3, "answered": 3}
FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
TALKED = ("completed", "answered")  # a Dial that connected
SAY_LANGUAGE = {"nl": "nl-NL", "en": "en-GB"}
HOLD_MUSIC = "https://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3"
HOLD_MESSAGE = i18n.N_("Thank you for calling. All our colleagues are busy; please hold, you will be connected "
                       "as soon as one is free.")
MAX_URL = 500


def dial_address(extension: str, template: str) -> tuple[str, str]:
    """Where Twilio rings an agent: ("client", identity), ("sip", uri) or ("number", +number).

    An extension that is itself an address (client:..., sip:..., +31...) is used as it is; any
    other fills CONSOLE_TWILIO_DIAL's {extension}.
    """
    address = extension if extension.startswith(("client:", "sip:", "+")) else template.replace(
        "{extension}", extension)
    if address.startswith("client:"):
        return "client", address.removeprefix("client:")
    if address.startswith("sip:"):
        return "sip", address
    return "number", address


def _rank(status: str) -> int:
    return 4 if status in FINAL else ORDER.get(status, -1)


NEW, SAME, STALE = "new", "same", "stale"


async def record_status(ctx: Context, call_sid: str, status: str, sequence: int | None, *,
                        parent_sid: str | None = None, agent_id: int | None = None) -> str:
    """Keep the leg's status if it moves forward (NEW); SAME when it is the status the leg has (a
    repeat: what it means is done again, in case the first time failed half-way), STALE for a late
    one (an earlier status, or anything after a final one) or an unknown one."""
    if status not in ORDER and status not in FINAL:
        log.warning("Twilio call %s reported an unknown status %r; ignored", call_sid, status[:30])
        return STALE
    for _ in range(2):
        try:
            async with ctx.transaction() as session:
                row = await session.get(TwilioCall, call_sid, with_for_update=True)
                if row is None:
                    session.add(TwilioCall(call_sid=call_sid, parent_sid=parent_sid, agent_id=agent_id, status=status,
                                           sequence=sequence if sequence is not None else -1, updated_at=utcnow()))
                    return NEW
                if status == row.status and (sequence is None or sequence == row.sequence):
                    return SAME
                if row.status in FINAL or _rank(status) <= _rank(row.status) or (
                        sequence is not None and sequence <= row.sequence):
                    return STALE
                row.status = status
                row.sequence = sequence if sequence is not None else row.sequence
                row.updated_at = utcnow()
                return NEW
        except IntegrityError:
            continue  # the same leg's first callback twice at once: read the one stored
    return STALE


class Voice:
    """The voice webhooks, and the mover that connects a holding caller to a chosen agent."""

    def __init__(self, ctx: Context, twilio: Twilio, dial_template: str,
                 observe_pop: Callable[[float], None] | None = None) -> None:
        self.ctx = ctx
        self.twilio = twilio
        self.dial_template = dial_template
        self.observe_pop = observe_pop
        self.tasks: set[asyncio.Task[None]] = set()

    def url(self, step: str, **query: object) -> str:
        path = f"{BASE}/{step}" if step else BASE
        return self.twilio.url(path + (f"?{urlencode(query)}" if query else ""))

    # -- webhooks ---------------------------------------------------------------------------

    async def incoming(self, request: Request) -> Response:
        started = time.perf_counter()
        fields = await self.twilio.params(request)
        call_sid = sid(fields, "CallSid", "CA")
        direction = text(fields, "Direction") or "inbound"
        if direction != "inbound":
            raise Refused(400, f"this webhook takes incoming calls; Direction is {direction!r}")
        caller = text(fields, "From", required=True)
        queue = request.query_params.get("queue", "").strip()[:100] or None
        arrival = await conversations.arrive(
            self.ctx, channel=Channel.CALL, external_id=call_sid, from_address=caller,
            to_address=text(fields, "To", required=True), direction=Direction.IN, queue=queue)
        if arrival.created and self.observe_pop is not None:
            self.observe_pop(time.perf_counter() - started)
        await self._remember(call_sid, arrival.conversation_id, text(fields, "CallStatus") or "ringing")
        return await self.next_step(call_sid)

    async def wait(self, request: Request) -> Response:
        """Back from a round of hold music, or moved here by the console: dial, or hold on."""
        fields = await self.twilio.params(request)
        return await self.next_step(sid(fields, "CallSid", "CA"))

    async def dialed(self, request: Request) -> Response:
        """The Dial's action: after a conversation hang up; after a ring without answer, move on."""
        fields = await self.twilio.params(request)
        call_sid = sid(fields, "CallSid", "CA")
        outcome = text(fields, "DialCallStatus") or "failed"
        agent_id = _number(request.query_params.get("agent", ""))
        async with self.ctx.transaction() as session:
            row = await session.get(TwilioCall, call_sid, with_for_update=True)
            dialing = row.dialing_agent_id if row is not None else None
            if row is not None and dialing == agent_id:
                row.dialing_agent_id = None  # nobody is dialled now: a withdrawn offer moves nothing
            newest = await _newest(session, call_sid)
        if dialing is not None and dialing != agent_id:
            # The end of an earlier Dial (the call was moved on to a colleague since): go on there.
            return await self.next_step(call_sid)
        if outcome in TALKED:
            await self._hang_up(call_sid, "agent hung up")
            return _hang_up_twiml()
        if newest is not None and agent_id is not None:
            log.info("Twilio call %s: agent %d did not answer (%s)", call_sid, agent_id, outcome)
            if outcome == "no-answer":  # it rang and nobody took it: a missed offer, as at its deadline
                await offers.ring_out(self.ctx, newest.id, agent_id)
            else:  # busy, failed (no softphone online), canceled: declined for them, not counted as missed
                with contextlib.suppress(Conflict):  # it rang out or was taken meanwhile
                    await offers.decline(self.ctx, agent_id, newest.id)
        return await self.next_step(call_sid)

    async def status(self, request: Request) -> Response:
        """A status callback of the caller's leg, or (leg=agent) of a leg the console dialled."""
        fields = await self.twilio.params(request)
        call_sid = sid(fields, "CallSid", "CA")
        status = text(fields, "CallStatus", required=True)
        sequence = _number(fields.get("SequenceNumber", ""))
        if request.query_params.get("leg") == "agent":
            parent = sid(fields, "ParentCallSid", "CA")
            agent_id = _number(request.query_params.get("agent", ""))
            recorded = await record_status(self.ctx, call_sid, status, sequence, parent_sid=parent, agent_id=agent_id)
            if recorded != STALE and status == "in-progress" and agent_id is not None:
                # A repeat answers only a call nobody has yet (its first time failed half-way):
                # never takes it back from a colleague it was handed to since.
                await self._answered(parent, agent_id, unless_taken=recorded == SAME)
            return Response(status_code=204)
        if await record_status(self.ctx, call_sid, status, sequence) != STALE and status in FINAL:
            await self._hang_up(call_sid, status)
        return Response(status_code=204)

    # -- what happens to the call -------------------------------------------------------------

    async def _remember(self, call_sid: str, conversation_id: int, status: str) -> None:
        """Tie the caller's leg to its conversation, with the language the caller hears (a repeated
        webhook finds it tied; a status callback that came first made the row already)."""
        for _ in range(2):
            try:
                async with self.ctx.transaction() as session:
                    language = await session.scalar(
                        select(Customer.language).join(Conversation, Conversation.customer_id == Customer.id)
                        .where(Conversation.id == conversation_id))
                    language = language if language in SAY_LANGUAGE else None
                    row = await session.get(TwilioCall, call_sid, with_for_update=True)
                    if row is None:
                        session.add(TwilioCall(call_sid=call_sid, conversation_id=conversation_id, language=language,
                                               status=status if _rank(status) >= 0 else "ringing", sequence=-1,
                                               updated_at=utcnow()))
                    elif row.conversation_id is None:
                        row.conversation_id, row.language = conversation_id, language
                return
            except IntegrityError:
                continue  # its first status callback stored the row at the same moment: tie that one

    async def next_step(self, call_sid: str) -> Response:
        """Dial the agent the console chose, or hold; hang up when the conversation is over."""
        async with self.ctx.transaction() as session:
            row = await session.get(TwilioCall, call_sid, with_for_update=True)
            conversation = await _newest(session, call_sid)
            if row is None or conversation is None:
                raise Refused(400, f"call {call_sid} is not known here; it starts at {BASE}")
            if conversation.state in ENDED or row.status in FINAL:
                row.holding = False
                return _hang_up_twiml()
            queue = await session.get(Queue, conversation.queue_id) if conversation.queue_id else None
            agent = None
            if conversation.agent_id is not None and conversation.state in (State.OFFERED, State.ACTIVE):
                agent = await session.get(Agent, conversation.agent_id)
            if agent is not None and agent.extension:
                row.holding, row.dialing_agent_id = False, agent.id
                return _twiml(self._dial(conversation, agent, queue))
            first = not row.holding
            row.holding, row.dialing_agent_id = True, None
            language = row.language or (agent.language if agent else None)
            unreachable = agent.id if agent is not None else None
            hold = self._hold(queue, language, first)
        if unreachable is not None:
            # Chosen, but without an extension the console cannot say where Twilio should ring.
            log.warning("agent %d has no extension, so Twilio cannot ring them; the call moves on", unreachable)
            await offers.ring_out(self.ctx, conversation.id, unreachable)
        return _twiml(hold)

    def _dial(self, conversation: Conversation, agent: Agent, queue: Queue | None) -> VoiceResponse:
        kind, address = dial_address(agent.extension or "", self.dial_template)
        response = VoiceResponse()
        caller_id = conversation.to_address if kind == "number" else conversation.from_address
        dial = response.dial(action=self.url("dialed", agent=agent.id), method="POST",
                             timeout=queue.offer_seconds if queue else 20, answer_on_bridge=True,
                             caller_id=caller_id or None)
        callback: dict[str, Any] = {
            "status_callback": self.url("status", leg="agent", agent=agent.id), "status_callback_method": "POST",
            "status_callback_event": "initiated ringing answered completed"}
        if kind == "client":
            dial.client(address, **callback)
        elif kind == "sip":
            dial.sip(address, **callback)
        else:
            dial.number(address, **callback)
        return response

    def _hold(self, queue: Queue | None, language: str | None, first: bool) -> VoiceResponse:
        response = VoiceResponse()
        language = language if language in SAY_LANGUAGE else None
        if first:
            speak = language or "en"
            message = queue.hold_message if queue and queue.hold_message else \
                i18n.translations(speak).gettext(HOLD_MESSAGE)
            response.say(message, language=SAY_LANGUAGE[speak])
        response.play(queue.hold_music_url if queue and queue.hold_music_url else HOLD_MUSIC)
        response.redirect(self.url("wait"), method="POST")
        return response

    async def _answered(self, parent_sid: str, agent_id: int, *, unless_taken: bool = False) -> None:
        async with self.ctx.db.reading() as session:
            email = await session.scalar(select(Agent.email).where(Agent.id == agent_id))
            newest = await _newest(session, parent_sid) if unless_taken else None
        if email is None or (newest is not None and newest.state not in (State.QUEUED, State.OFFERED)):
            return
        try:
            await conversations.answer(self.ctx, Channel.CALL, parent_sid, [email])
        except ConsoleError as exc:
            if isinstance(exc, Unavailable):
                raise
            log.info("Twilio call %s answered late (%s); nothing changes", parent_sid, exc.message)

    async def _hang_up(self, call_sid: str, cause: str) -> None:
        try:
            await conversations.hang_up(self.ctx, Channel.CALL, call_sid, cause)
        except ConsoleError as exc:
            if isinstance(exc, Unavailable):
                raise
            log.info("Twilio call %s ended: %s", call_sid, exc.message)

    # -- moving a holding caller ----------------------------------------------------------------

    def publish(self, changed: Sequence[changes.Change]) -> None:
        """The notify port's side, for calls Twilio holds (on any part of them, after a handoff):
        - an offer made while the caller holds moves the call to that agent;
        - an offer withdrawn, or a conversation ended, while Twilio connects that agent moves the
          call on (to the next agent, back to hold, or, when it is over, hangs up);
        - a colleague taking over after a handoff moves the call to them."""
        if not self.twilio.can_call_api:
            return
        wanted: list[tuple[int, int, str]] = []
        for c in changed:
            if isinstance(c, changes.Offered) and c.conversation.channel is Channel.CALL:
                wanted.append((c.conversation.id, c.agent_id, "offered"))
            elif isinstance(c, changes.Answered) and c.conversation.channel is Channel.CALL \
                    and c.conversation.parent_id is not None:
                wanted.append((c.conversation.id, c.agent_id, "taken over"))
            elif isinstance(c, changes.Withdrawn | changes.Ended):
                wanted.append((c.conversation_id, c.agent_id, "gone"))
        if wanted:
            task = asyncio.get_running_loop().create_task(self._move(wanted))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _move(self, wanted: list[tuple[int, int, str]]) -> None:
        try:
            async with self.ctx.db.reading() as session:
                rows = {conversation_id: row for conversation_id, row in (await session.execute(
                    select(Conversation.id, TwilioCall)
                    .join(TwilioCall, TwilioCall.call_sid == Conversation.external_id)
                    .where(Conversation.id.in_({w[0] for w in wanted}), Conversation.channel == Channel.CALL,
                           TwilioCall.parent_sid.is_(None)))).all()}
            moved: set[str] = set()
            for conversation_id, agent_id, what in wanted:
                row = rows.get(conversation_id)
                if row is None or row.call_sid in moved or row.status in FINAL:
                    continue
                if (what == "offered" and row.holding) or (what == "gone" and row.dialing_agent_id == agent_id) or (
                        what == "taken over" and not row.holding and row.dialing_agent_id != agent_id):
                    moved.add(row.call_sid)
                    await self.twilio.api(f"Calls/{row.call_sid}.json", {"Url": self.url("wait"), "Method": "POST"})
        except ApiError as exc:
            log.warning("could not move a Twilio call to its agent (%s); it moves after this round of hold music",
                        exc.message)
        except Exception:
            log.exception("could not move a Twilio call to its agent; it moves after this round of hold music")

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _newest(session: AsyncSession, call_sid: str) -> Conversation | None:
    """The call's conversation part going on now (after a handoff, the colleague's)."""
    return await session.scalar(select(Conversation).where(
        Conversation.channel == Channel.CALL, Conversation.external_id == call_sid)
        .order_by(Conversation.id.desc()).limit(1))


def _number(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 12 else None


def _hang_up_twiml() -> Response:
    response = VoiceResponse()
    response.hangup()
    return _twiml(response)


def _twiml(response: VoiceResponse) -> Response:
    return Response(str(response), media_type="application/xml")


def routes(voice: Voice) -> list[Route]:
    return [Route(BASE, webhook(voice.incoming, 409), methods=["POST"]),
            Route(f"{BASE}/wait", webhook(voice.wait, 409), methods=["POST"]),
            Route(f"{BASE}/dialed", webhook(voice.dialed, 409), methods=["POST"]),
            Route(f"{BASE}/status", webhook(voice.status, 409), methods=["POST"])]
