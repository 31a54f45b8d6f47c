"""What /readyz and /metrics say of a connector to a phone system or a messaging provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from console.models import utcnow

# off: not configured; standby: another node holds the connection; connecting; connected; ready
# (webhooks: set up, and the last call to the provider went through); failing: the last attempt
# failed, last_error says why.
STATES = ("off", "standby", "connecting", "connected", "ready", "failing")


@dataclass
class ConnectorState:
    name: str
    state: str = "off"
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_event_at: datetime | None = None
    events: int = 0  # events or requests taken
    failures: int = 0  # failed connections, refused requests and failed calls to the provider

    def seen(self) -> None:
        """An event or request was taken."""
        self.events += 1
        self.last_event_at = utcnow()

    def failed(self, error: str, *, state: str = "failing") -> None:
        self.failures += 1
        self.last_error = error[:500]
        self.last_error_at = utcnow()
        self.state = state

    def as_json(self) -> dict[str, object]:
        return {"state": self.state, "last_error": self.last_error,
                "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
                "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
                "events": self.events, "failures": self.failures}
