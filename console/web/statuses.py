"""Which HTTP status each domain error becomes; the one table the web layer maps errors with."""

from __future__ import annotations

from console.errors import (
    Conflict,
    ConsoleError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooLarge,
    TooManyAttempts,
    Unavailable,
)

# A subclass before its base: the first match counts.
STATUS: dict[type[ConsoleError], int] = {TooLarge: 413, InvalidInput: 422, NotFound: 404, Conflict: 409,
                                         Forbidden: 403, TooManyAttempts: 429, Unavailable: 503}


def status_of(exc: ConsoleError) -> int:
    return next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
