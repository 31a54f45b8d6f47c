"""Ports through which the domain tells the outside world, and the context services run in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from console.db import Database
from console.i18n import N_

DEFAULT_AWAY_REASONS = (N_("Break"), N_("Lunch"), N_("Meeting"), N_("Training"), N_("Coaching"),
                        N_("Missed offers"))


class Notifier(Protocol):
    """Told after a commit which agents' live views changed; the web layer renders and pushes."""

    async def agents_changed(self, agent_ids: Iterable[int]) -> None: ...


class NullNotifier:
    async def agents_changed(self, agent_ids: Iterable[int]) -> None:
        return None


@dataclass
class RecordingNotifier:
    """A real fake for tests of the services: remembers who was told."""

    calls: list[set[int]] = field(default_factory=list)

    async def agents_changed(self, agent_ids: Iterable[int]) -> None:
        self.calls.append(set(agent_ids))


@dataclass
class Context:
    """What a service needs: the database, the notify port and the phone region."""

    db: Database
    notify: Notifier
    region: str = "NL"
    away_reasons: tuple[str, ...] = DEFAULT_AWAY_REASONS
