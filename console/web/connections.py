"""The admin page of the connections (admins only): mailboxes and the phone systems, read-only.

They are settings of the server (CONSOLE_MAILBOX_<NAME>, CONSOLE_SMTP_URL, CONSOLE_CTI_TOKEN,
CONSOLE_TWILIO_*, CONSOLE_ASTERISK_URL), shown here without their secrets, with the setting that
changes them and, for Twilio and Asterisk, how the connector fares on this node.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from console.web.admin import Admin, admins_only, console_url, render
from console.web.pages import wiring
from integrations.connectors import ConnectorState
from integrations.email.pipeline import mailbox_setting

SECRET_WORDS = ("pass", "secret", "token", "key")


@dataclass(frozen=True)
class MailboxView:
    name: str
    kind: str
    address: str
    queue: str | None
    server: str
    options: list[tuple[str, str]]
    problem: str = ""


def mailbox_view(name: str, url: str) -> MailboxView:
    """One CONSOLE_MAILBOX_<NAME> as an admin may read it: never its password."""
    try:
        setting = mailbox_setting(name, url)
    except ValueError as exc:  # a node refuses to start with it; say why, without the URL
        return MailboxView(name, "", "", None, "", [], str(exc))
    parts = urlsplit(setting.reader_url)
    userinfo, at, host = parts.netloc.rpartition("@")
    user = unquote(userinfo.partition(":")[0])
    server = f"{parts.scheme}://{user + at if user else ''}{host}{parts.path}"
    box = setting.box
    options = [("on_reply", box.on_reply_to_closed), ("subaddress", "1" if box.subaddress else "0"),
               ("acknowledge", "1" if box.acknowledge else "0"), ("language", box.language)]
    options += [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)
                if not any(word in key.lower() for word in SECRET_WORDS)]
    return MailboxView(box.name, setting.scheme, box.address, box.queue, server, options)


def masked(token: str) -> str:
    """Enough of the CTI token to tell which one is set, not enough to use it."""
    return "•" * 8 + token[-4:] if len(token) >= 16 else "•" * 8


@dataclass(frozen=True)
class TwilioView:
    state: ConnectorState
    voice: str
    status: str
    messaging: str
    account: str  # masked
    templates: list[str]


@dataclass(frozen=True)
class AsteriskView:
    state: ConnectorState
    url: str  # without the secret


@admins_only
async def connections(request: Request, who: Admin) -> Response:
    w = wiring(request)
    settings = w.settings
    boxes = [mailbox_view(name, url) for name, url in settings.mailboxes]
    cti = f"{console_url(request)}/integrations/cti/{masked(settings.cti_token)}" if settings.cti_token else ""
    twilio = None
    if settings.twilio_auth_token:
        public = settings.twilio_public_url
        account = settings.twilio_account_sid
        twilio = TwilioView(w.twilio.state, f"{public}/integrations/twilio/voice",
                            f"{public}/integrations/twilio/voice/status", f"{public}/integrations/twilio/messaging",
                            account[:2] + "…" + account[-4:] if account else "",
                            [name for name, _ in settings.twilio_whatsapp_templates])
    asterisk = AsteriskView(w.asterisk.state, w.asterisk.url.display) if w.asterisk is not None else None
    return render(request, who, "admin/connections.html", boxes=boxes, cti=cti, smtp=bool(settings.smtp_url),
                  twilio=twilio, asterisk=asterisk)
