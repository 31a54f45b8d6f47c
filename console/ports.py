"""Ports through which the domain tells the outside world, and the context services run in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from console import changes
from console.changes import Change
from console.db import Database
from console.i18n import N_

# The reasons an agent picks when going away; the console's own (console.offers.MISSED_REASON) is
# not one of them.
DEFAULT_AWAY_REASONS = (N_("Break"), N_("Lunch"), N_("Meeting"), N_("Training"), N_("Coaching"))


class Notifier(Protocol):
    """Told after a commit what changed; the web layer renders the fragments it touches and pushes.

    `publish` must not wait for rendering: the caller answers its request (the phone system, the
    agent's click) right after it, and the push follows.
    """

    def publish(self, changed: Sequence[Change]) -> None: ...


class NullNotifier:
    def publish(self, changed: Sequence[Change]) -> None:
        return None


class FanOut:
    """Several listeners told the same changes (the pushes, and a phone connector that acts on offers)."""

    def __init__(self, *notifiers: Notifier) -> None:
        self.notifiers = notifiers

    def publish(self, changed: Sequence[Change]) -> None:
        for notifier in self.notifiers:
            notifier.publish(changed)


@dataclass
class RecordingNotifier:
    """A real fake for tests of the services: remembers what it was told."""

    batches: list[list[Change]] = field(default_factory=list)

    def publish(self, changed: Sequence[Change]) -> None:
        self.batches.append(list(changed))

    @property
    def calls(self) -> list[set[int]]:
        """Per batch, the agents whose screen a change of it touches."""
        return [{agent for change in batch for agent in recipients(change)} for batch in self.batches]


def recipients(change: Change) -> set[int]:
    """The agents whose screen shows what `change` touches."""
    if isinstance(change, changes.NoteAdded | changes.CustomerChanged | changes.ChatMessage | changes.MailMessage
                           | changes.TextMessage):
        return set(change.agent_ids)
    if isinstance(change, changes.HandoffAsked | changes.HandoffAnswered):
        return {a for a in (change.from_agent_id, change.to_agent_id) if a is not None}
    return {change.agent_id}


@dataclass
class Context:
    """What a service needs: the database, the notify port and the phone region."""

    db: Database
    notify: Notifier
    region: str = "NL"
    away_reasons: tuple[str, ...] = DEFAULT_AWAY_REASONS

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A database transaction whose recorded changes are published once it committed."""
        async with self.db.transaction() as session:
            yield session
            makers = changes.pending(session)
        if makers:
            self.notify.publish(changes.built(makers))
