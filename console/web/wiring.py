"""The concrete pieces the app runs with, built once from the settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from console.auth import LoginPolicy
from console.db import Database
from console.errors import InvalidInput
from console.leases import node_name
from console.ports import Context, FanOut
from console.settings import Settings
from console.web.attachments import file_key
from console.web.board import Wallboard
from console.web.mailboxes import Mailboxes, read_sender, read_settings
from console.web.metrics import Metrics
from console.web.push import Pusher
from console.web.render import Renderer
from integrations.connectors import ConnectorState
from integrations.messaging.twilio import Messaging
from integrations.telephony import ami
from integrations.telephony.asterisk import AsteriskConnector
from integrations.telephony.twilio import Voice
from integrations.twilio_webhooks import Twilio
from realtime import Bus, make_bus


@dataclass(frozen=True)
class HeldSocket:
    """An agent socket this process holds: whose session opened it, and how to stop its feed."""

    agent_id: int
    session_version: object
    stop: Callable[[BaseException], None]


@dataclass
class Wiring:
    settings: Settings
    ctx: Context
    bus: Bus
    renderer: Renderer
    notifier: Pusher
    metrics: Metrics = field(default_factory=Metrics)
    # The agent sockets this process holds, by id: refreshed in the database while open, and
    # closed when the session that opened them ends (console.web.live.close_ended_sessions).
    sockets: dict[str, HeldSocket] = field(default_factory=dict)
    mailboxes: Mailboxes | None = None  # the mail readers, when mailboxes are set up
    wallboard: Wallboard = field(init=False)
    twilio: Twilio = field(init=False)  # Twilio's account (its state is "off" without a token)
    voice: Voice = field(init=False)
    messaging: Messaging = field(init=False)
    asterisk: AsteriskConnector | None = None  # follows Asterisk's manager interface when it is set up

    def connectors(self) -> list[ConnectorState]:
        """The phone and messaging connectors' states, for /readyz and /metrics."""
        return [self.twilio.state, self.asterisk.state if self.asterisk else ConnectorState("asterisk")]

    @property
    def file_key(self) -> str:
        """The key that signs visitors' links to chat files (derived from the secret once, at build)."""
        return self.notifier.file_secret

    @property
    def login_policy(self) -> LoginPolicy:
        s = self.settings
        return LoginPolicy(free_failures=s.login_free_failures, delay=s.login_delay, max_delay=s.login_max_delay,
                           address_ceiling=s.login_address_ceiling, window=s.login_window_seconds)


def build(settings: Settings) -> Wiring:
    db = Database(settings.database_url, write_wait=settings.write_wait)
    bus = make_bus(settings.redis_url, backlog=settings.stream_backlog, prefix=settings.redis_prefix)
    renderer = Renderer(timezone=settings.timezone, region=settings.default_region)
    metrics = Metrics()
    notifier = Pusher(db, bus, renderer, settings.default_region, settings.away_reasons,
                      observe=metrics.push_latency.observe, file_secret=file_key(settings.secret_key))
    ctx = Context(db=db, notify=notifier, region=settings.default_region, away_reasons=settings.away_reasons)
    twilio = Twilio(settings.twilio_auth_token, settings.twilio_public_url, settings.twilio_account_sid,
                    settings.twilio_api_url)
    voice = Voice(ctx, twilio, settings.twilio_dial, observe_pop=metrics.pop_latency.observe)
    if twilio.can_call_api:
        # Offers also move calls that Twilio holds (only then: other phone systems need no one told).
        ctx.notify = FanOut(notifier, voice)
    boxes = read_settings(settings)
    server, dkim = read_sender(settings)
    w = Wiring(settings=settings, ctx=ctx, bus=bus, renderer=renderer, notifier=notifier, metrics=metrics,
               mailboxes=Mailboxes(ctx, boxes, server, dkim) if boxes or server else None)
    w.wallboard = Wallboard(db, bus, renderer, settings.timezone)
    w.twilio, w.voice = twilio, voice
    w.messaging = Messaging(ctx, twilio, dict(settings.twilio_whatsapp_templates), settings.default_language)
    renderer.whatsapp_templates = tuple(name for name, _ in settings.twilio_whatsapp_templates)
    if settings.asterisk_url:
        try:
            url = ami.parse_url(settings.asterisk_url)
        except ValueError as exc:  # a node does not start with a setting it cannot use; it says why
            raise InvalidInput(str(exc), field="CONSOLE_ASTERISK_URL") from None
        w.asterisk = AsteriskConnector(ctx, url, node_name())
    return w
