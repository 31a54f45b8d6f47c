"""Rendering with Jinja in the reader's language, and the notify port that pushes live views."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from console import i18n
from console.customers import format_phone
from console.db import Database
from console.i18n import N_
from console.screenpop import AgentView, agent_view
from console.web.assets import asset_dir
from realtime import Bus

log = logging.getLogger("console.web")

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


def agent_stream(agent_id: int) -> str:
    return f"agent:{agent_id}"


def cursor_frame(payload: str, cursor: str) -> str:
    """A frame as sent: the payload plus the stream cursor, swapped into the page by id."""
    return f'{payload}<meta id="ws-cursor" name="ws-cursor" content="{cursor}" hx-swap-oob="true">'


class Renderer:
    def __init__(self, *, timezone: str = i18n.TIMEZONE, region: str = "NL") -> None:
        self.env = Environment(
            loader=FileSystemLoader(asset_dir("templates")),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.timezone = timezone
        self.region = region

    def context(self, language: str) -> dict[str, Any]:
        catalog = i18n.translations(language)

        def when(value: datetime | None, fmt: str = "short") -> str:
            if value is None:
                return ""
            return i18n.when(value, language, fmt, self.timezone)

        def money(value: Decimal | float) -> str:
            return i18n.money(value, language)

        return {"_": catalog.gettext, "gettext": catalog.gettext, "ngettext": catalog.ngettext,
                "lang": language, "when": when, "money": money,
                "phone": lambda raw: format_phone(raw, self.region)}

    def render(self, template: str, language: str, **values: Any) -> str:
        return self.env.get_template(template).render(self.context(language), **values)

    def live(self, view: AgentView, *, oob: bool = True) -> str:
        """Every live component of the agent page, each an out-of-band swap by id."""
        language = view.agent.language
        return "".join(self.render(name, language, view=view, oob=oob) for name in LIVE_PARTIALS)


class WebNotifier:
    """The domain's notify port: render each agent's live view once and publish it to their stream.

    Two changes for one agent can commit in one order and finish rendering in the other, which
    would leave the older view on screen. So one render at a time runs per agent, and a change
    arriving meanwhile makes it render once more after it publishes: the last frame published
    was read after the last commit. (Across several nodes this needs the shared bus; issue 4.)
    """

    def __init__(self, db: Database, bus: Bus, renderer: Renderer, region: str,
                 away_reasons: tuple[str, ...] = ()) -> None:
        self.db = db
        self.bus = bus
        self.renderer = renderer
        self.region = region
        self.away_reasons = away_reasons
        self._rendering: set[int] = set()
        self._stale: set[int] = set()

    async def view(self, agent_id: int) -> AgentView:
        """What the agent's page shows now, read in one transaction."""
        async with self.db.transaction() as session:
            return await agent_view(session, agent_id, self.region, self.away_reasons)

    async def live_html(self, agent_id: int) -> str:
        return self.renderer.live(await self.view(agent_id))

    async def agents_changed(self, agent_ids: Iterable[int]) -> None:
        for agent_id in sorted(set(agent_ids)):
            self._stale.add(agent_id)
            if agent_id in self._rendering:
                continue  # the render under way goes round once more
            self._rendering.add(agent_id)
            try:
                while agent_id in self._stale:
                    self._stale.discard(agent_id)
                    await self._push(agent_id)
            finally:
                self._rendering.discard(agent_id)

    async def _push(self, agent_id: int) -> None:
        try:
            html = await self.live_html(agent_id)
            await self.bus.publish(agent_stream(agent_id), html)
        except Exception:
            # The change is committed; a lost push is healed by the snapshot on reconnect.
            log.exception("could not push the live view of agent %s", agent_id)
