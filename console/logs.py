"""Logging: one line per event, as text or JSON, carrying the request and conversation ids.

The ids live in context variables: the web layer sets the request id for each request, the
services set the conversation id while they work on one, and every log line picks both up.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime

request_id: ContextVar[str] = ContextVar("request_id", default="-")
conversation_id: ContextVar[str] = ContextVar("conversation_id", default="-")


# What a value from outside may not carry into a log line: control characters (C0 and C1, line
# breaks among them), the Unicode line and paragraph separators, and halves of surrogate pairs.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        return f"\\u{ord(char):04x}"  # unicode_escape cannot encode a lone surrogate
    return char.encode("unicode_escape").decode("ascii")


def safe(value: object) -> str:
    """`value` as one printable line, UNSAFE characters written as escapes, so a value from
    outside can neither forge a log line nor break the writer."""
    return UNSAFE.sub(_escaped, str(value))


class SafeFormatter(logging.Formatter):
    """Text lines whose message and ids are escaped by `safe`; a traceback keeps its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = safe(record.message)
        for name in ("request_id", "conversation_id"):
            if hasattr(record, name):
                setattr(record, name, safe(getattr(record, name)))
        return super().formatMessage(record)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.conversation_id = conversation_id.get()
        return True


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": safe(record.getMessage()),
            "request": getattr(record, "request_id", "-"),
            "conversation": getattr(record, "conversation_id", "-"),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        # JSON escapes line breaks itself; a lone surrogate cannot be written as UTF-8, so escape it.
        return json.dumps(entry, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


TEXT = "%(asctime)s %(levelname)s %(name)s request=%(request_id)s conversation=%(conversation_id)s %(message)s"


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Log to stderr as `text` or `json` lines; the ids are added to every record."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JSONFormatter() if fmt == "json" else SafeFormatter(TEXT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic", "httpx", "aioimaplib", "mail.log"):
        # httpx logs every request URL at INFO, and the CTI URL carries the secret token; aioimaplib
        # logs every answer it ignores at INFO, and at DEBUG the raw traffic with the mails in it
        # (aiosmtpd's "mail.log" too): personal data that does not belong in a log.
        logging.getLogger(noisy).setLevel(logging.WARNING)
