"""Errors of the domain.

    ConsoleError
    ├── NotFound          a thing named by the caller does not exist
    ├── InvalidInput      a value the caller gave is malformed (carries the field)
    │   └── TooLarge      ... or bigger than what is taken (a file)
    ├── Conflict          the request contradicts the stored state
    ├── Forbidden         the agent's role does not allow this
    ├── TooManyAttempts   rate limit hit (carries seconds to wait)
    └── Unavailable       a backing service (database, bus) cannot be reached right now

Messages are gettext templates with %(name)s parameters, so the web layer can show them in the
reader's language; `str(error)` is the English text. Only the web layer maps these to HTTP
statuses or websocket close codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ConsoleError(Exception):
    def __init__(self, template: str, *, field: str | None = None, **params: Any) -> None:
        self.template = template
        self.params = params
        self.field = field
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return self.template % self.params if self.params else self.template

    def translated(self, gettext: Callable[[str], str]) -> str:
        text = gettext(self.template)
        return text % self.params if self.params else text


class NotFound(ConsoleError):
    pass


class InvalidInput(ConsoleError):
    pass


class TooLarge(InvalidInput):
    pass


class Conflict(ConsoleError):
    pass


class Forbidden(ConsoleError):
    pass


class TooManyAttempts(ConsoleError):
    def __init__(self, template: str, *, retry_after: int, **params: Any) -> None:
        super().__init__(template, field=None, **params)
        self.retry_after = retry_after


class Unavailable(ConsoleError):
    """Carries how many seconds the caller should wait before trying again."""

    def __init__(self, template: str, *, retry_after: int = 5, **params: Any) -> None:
        super().__init__(template, field=None, **params)
        self.retry_after = retry_after
