"""Rendering with Jinja in the reader's language: pages, the live view's snapshot and its fragments."""

from __future__ import annotations

import logging
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from console import i18n, texts
from console.changes import ConversationInfo
from console.customers import format_phone
from console.i18n import N_
from console.mail import transcript_version
from console.screenpop import AgentView
from console.web.assets import Versions, asset_dir

log = logging.getLogger("console.web")

# The live view's containers, in page order: what a snapshot replaces.
LIVE_PARTIALS = ("partials/status.html", "partials/screen_pop.html", "partials/conversation.html",
                 "partials/customer_panel.html")


# Values stored in the database that are shown to people, translated through these entries.
LABELS = [
    N_("queued"), N_("offered"), N_("active"), N_("wrap_up"), N_("closed"), N_("abandoned"),
    N_("transferred"), N_("new"), N_("open"), N_("pending"), N_("solved"),
    N_("low"), N_("normal"), N_("high"), N_("urgent"), N_("postal"), N_("billing"), N_("delivery"),
    N_("quote"), N_("ended"), N_("cancelled"), N_("cold"), N_("warm"), N_("available"), N_("busy"), N_("away"),
    N_("offline"),
]


_LINK = re.compile(r"\bhttps?://[^\s<>\"']+", re.IGNORECASE)
LINK_REL = "noopener noreferrer nofollow ugc"


def linkify(text: str) -> Markup:
    """Text someone typed, escaped, with its http(s) links clickable (opening in a new tab, with
    no referrer and no say over the page that opened it). Nothing else of it becomes markup."""
    out, start = [], 0
    for found in _LINK.finditer(text):
        url = found.group(0).rstrip(".,;:!?)")
        end = found.start() + len(url)
        out.append(escape(text[start:found.start()]))
        out.append(Markup('<a href="{0}" target="_blank" rel="{1}">{0}</a>').format(url, LINK_REL))
        start = end
    out.append(escape(text[start:]))
    return Markup("").join(out)


def agent_stream(agent_id: int) -> str:
    return f"agent:{agent_id}"


# An agent switched their language in the page (the payload is their id): every node reads them
# again before it renders their next push, instead of using its cached copy for up to a minute.
# (A new role ends the agent's sessions; the command line's changes reach nodes within the minute.)
AGENTS_CHANGED_STREAM = "nodes:agents-changed"


def cursor_frame(payload: str, cursor: str) -> str:
    """A frame as sent: the payload plus the stream cursor, swapped into the page by id."""
    return f'{payload}<meta id="ws-cursor" name="ws-cursor" content="{cursor}" hx-swap-oob="true">'


def removal(element_id: str, version: int) -> str:
    """A fragment that takes an element off the page, unless the page shows a newer version of it."""
    return f'<div id="{element_id}" data-v="{version}" data-delete></div>'


def order(group: int, conversation: ConversationInfo) -> str:
    """Where an inserted element goes among its siblings: by group, then oldest first."""
    return f"{group}-{int(conversation.created_at.timestamp() * 1000):015d}-{conversation.id:012d}"


def channel_name(channel: object, address: str, gettext: Any) -> str:
    """The channel as agents call it; a text conversation is SMS or WhatsApp by its address."""
    kind = getattr(channel, "value", channel)
    if not kind:
        return "–"
    if kind == "sms":
        return "WhatsApp" if address.startswith("whatsapp:") else str(gettext("SMS"))
    return str(gettext(CHANNEL_NAMES.get(str(kind), str(kind))))


CHANNEL_NAMES = {"call": i18n.N_("Call"), "chat": i18n.N_("Chat"), "mail": i18n.N_("Mail")}


class Renderer:
    def __init__(self, *, timezone: str = i18n.TIMEZONE, region: str = "NL") -> None:
        self.env = Environment(
            loader=FileSystemLoader(asset_dir("templates")),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship with the package: no stat() of every template file on every render.
            auto_reload=False,
        )
        self.timezone = timezone
        self.region = region
        self.versions = Versions(asset_dir("static"))
        self._contexts: dict[str, dict[str, Any]] = {}
        self.whatsapp_templates: tuple[str, ...] = ()  # the names agents pick from (CONSOLE_TWILIO_WHATSAPP_TEMPLATES)

    def party(self, channel: object, address: str, gettext: Any) -> str:
        """Who is on the other side, as the agent reads it: a phone number as people write it, a
        chat's visitor by their number on the site, a mail address as it is."""
        kind = getattr(channel, "value", channel)
        if kind in ("call", "sms"):
            return format_phone(address.removeprefix("whatsapp:"), self.region)
        if kind == "chat":
            return str(gettext("visitor %(number)s") % {"number": address.rpartition(":")[2]})
        return address

    def context(self, language: str) -> dict[str, Any]:
        catalog = i18n.translations(language)

        def when(value: datetime | None, fmt: str = "short") -> str:
            if value is None:
                return ""
            return i18n.when(value, language, fmt, self.timezone)

        def money(value: Decimal | float) -> str:
            return i18n.money(value, language)

        return {"_": catalog.gettext, "gettext": catalog.gettext, "ngettext": catalog.ngettext,
                "lang": language, "when": when, "money": money, "order": order, "asset": self.versions.url,
                "phone": lambda raw: format_phone(raw, self.region),
                "language_name": lambda code: i18n.language_name(code, language), "clock": i18n.clock,
                "said": lambda reason: catalog.gettext(reason.text) % dict(reason.values),
                "label": lambda code: i18n.label(code, catalog.gettext), "linkify": linkify,
                "party": lambda channel, address: self.party(channel, address, catalog.gettext),
                "filesize": lambda size: i18n.filesize(size, language), "transcript_version": transcript_version,
                "channel_name": lambda channel, address="": channel_name(channel, address, catalog.gettext),
                "whatsapp_templates": self.whatsapp_templates, "text_version": texts.version}

    def render(self, template: str, language: str, **values: Any) -> str:
        # The helpers depend on the language only: built once per language, not per fragment.
        context = self._contexts.get(language)
        if context is None:
            context = self._contexts[language] = self.context(language)
        return self.env.get_template(template).render(context, **values)

    def live(self, view: AgentView) -> str:
        """The snapshot: every container of the live view, from the same partials the pushes use."""
        language = view.agent.language
        values = self.view_values(view)
        return "".join(self.render(name, language, **values) for name in LIVE_PARTIALS)

    @staticmethod
    def view_values(view: AgentView) -> dict[str, Any]:
        return {"view": view, "presence": view.presence, "away_reasons": view.away_reasons,
                "page": view.customer_page, "me": view.agent.id,
                "supervisor": view.agent.role.value in ("supervisor", "admin")}
