"""Twilio SMS and WhatsApp: customers' messages in, agents' replies out, delivery statuses back.

Set up in Twilio's console, for the phone number's Messaging configuration (and for a WhatsApp
sender, its "When a message comes in"), HTTP POST, signed by Twilio:

    A message comes in     {public}/integrations/twilio/messaging?queue=<console queue>

Replies are sent through Twilio's REST API with `StatusCallback` set to
`/integrations/twilio/messaging/status`, so their delivery (queued, sent, delivered, read; failed,
undelivered) comes back; out of order as it may come, a status never moves a reply back. A reply
is stored before it is sent: one that could not go out (Twilio unreachable, a 5xx) is tried again
by whichever node sweeps first, one Twilio refused (an unsubscribed number, a closed WhatsApp
window) is marked failed with Twilio's reason.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.twiml.messaging_response import MessagingResponse

from console import i18n, texts
from console.errors import Unavailable
from console.ports import Context
from integrations.twilio_webhooks import ApiError, Twilio, sid, text, webhook

log = logging.getLogger("integrations.twilio.messaging")

BASE = "/integrations/twilio/messaging"
SWEEP_SECONDS = 5.0
CONFIRM = {
    "stop": i18n.N_("You will receive no more messages from us. Send START to receive them again."),
    "start": i18n.N_("You will receive our messages again. Send STOP to stop them."),
}


class Messaging:
    """The messaging webhooks, and the sender of the agents' replies."""

    def __init__(self, ctx: Context, twilio: Twilio, templates: dict[str, str], language: str = "en") -> None:
        self.ctx = ctx
        self.twilio = twilio
        self.templates = templates  # name: content SID
        self.language = language
        self.tasks: set[asyncio.Task[None]] = set()

    async def incoming(self, request: Request) -> Response:
        fields = await self.twilio.params(request)
        message_sid = fields.get("MessageSid", "") or fields.get("SmsSid", "")
        prefix = "MM" if message_sid.startswith("MM") else "SM"
        message_sid = sid({"MessageSid": message_sid}, "MessageSid", prefix)
        sender = text(fields, "From", required=True, limit=80)
        media = fields.get("NumMedia", "0")
        received = await texts.receive(
            self.ctx, sid=message_sid, from_address=sender, to_address=text(fields, "To", required=True, limit=80),
            body=text(fields, "Body", limit=texts.MAX_INCOMING),
            queue=request.query_params.get("queue", "")[:100] or None,
            media=int(media) if media.isdigit() and len(media) < 4 else 0)
        response = MessagingResponse()
        if received.keyword is not None and not received.repeated and texts.is_whatsapp(sender):
            # Twilio confirms an SMS opt-out itself; on WhatsApp the console says it.
            response.message(i18n.translations(self.language).gettext(CONFIRM[received.keyword]))
        return Response(str(response), media_type="application/xml")

    async def status(self, request: Request) -> Response:
        fields = await self.twilio.params(request)
        message_sid = fields.get("MessageSid", "") or fields.get("SmsSid", "")
        message_sid = sid({"MessageSid": message_sid}, "MessageSid", "MM" if message_sid.startswith("MM") else "SM")
        status = text(fields, "MessageStatus", required=True, limit=20)
        code = text(fields, "ErrorCode", limit=10)
        await texts.delivery(self.ctx, message_sid, status, f"Twilio error {code}" if code else None)
        return Response(status_code=204)

    # -- sending ----------------------------------------------------------------------------------

    def kick(self, message_id: int) -> None:
        """Send this reply now (the sweep sends it otherwise)."""
        task = asyncio.get_running_loop().create_task(self._send_claimed(message_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _send_claimed(self, message_id: int) -> None:
        try:
            for outgoing in await texts.claim(self.ctx, message_id):
                await self.send(outgoing)
        except Exception:
            log.exception("a reply could not be sent now; the sweep tries again")

    async def sweep(self) -> int:
        due = await texts.claim(self.ctx)
        for outgoing in due:
            await self.send(outgoing)
        return len(due)

    async def send(self, out: texts.Outgoing) -> None:
        data: dict[str, str | list[str]] = {"From": out.from_address, "To": out.to_address,
                                            "StatusCallback": self.twilio.url(f"{BASE}/status")}
        if out.template:
            data["ContentSid"] = out.template
        else:
            data["Body"] = out.body
        try:
            answer = await self.twilio.api("Messages.json", data)
        except ApiError as exc:
            # Twilio refused it (a 4xx with its code): for good. Unreachable or a 5xx: again later.
            await texts.not_sent(self.ctx, out.message_id, exc.message, retry=exc.passing)
            log.warning("a reply was not sent (attempt %d): %s", out.attempts, exc.message)
            return
        message_sid = answer.get("sid")
        if not isinstance(message_sid, str) or not message_sid:
            await texts.not_sent(self.ctx, out.message_id, "Twilio's answer has no message SID", retry=True)
            return
        for attempt in range(5):  # Twilio has it now: losing that would send it a second time
            try:
                await texts.sent(self.ctx, out.message_id, message_sid[:64], str(answer.get("status") or "queued"))
                return
            except Unavailable as exc:
                log.warning("Twilio took a reply but the console could not store it yet (%s); trying again",
                            exc.message)
                await asyncio.sleep(1.0 + attempt)
        log.error("a reply Twilio took (%s) could not be stored; it may be sent again in a minute", message_sid[:64])

    async def run(self) -> None:
        """Send what is due, on every node (each reply is claimed by one)."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Unavailable as exc:
                log.warning("replies wait for the database (%s)", exc.message)
            except Exception:
                log.exception("the replies' sweep failed; trying again")

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def routes(messaging: Messaging) -> list[Route]:
    return [Route(BASE, webhook(messaging.incoming), methods=["POST"]),
            Route(f"{BASE}/status", webhook(messaging.status), methods=["POST"])]
