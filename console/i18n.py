"""Translations (English and Dutch) read from the gettext catalogs under console/locale/."""

from __future__ import annotations

import gettext
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime, get_timezone
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "nl")
TIMEZONE = "Europe/Amsterdam"


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where it is shown."""
    return message


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalog for `language`, compiled in memory from its .po file (no build step needed)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language not in LANGUAGES or not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def pick_language(accept_language: str, default: str = "en") -> str:
    """The first of our languages named in an Accept-Language header."""
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return default


def money(value: Decimal | float, language: str, currency: str = "EUR") -> str:
    return format_currency(value, currency, locale=Locale.parse(language))


def language_name(code: str | None, language: str) -> str:
    """A language code as people read it, in the reader's language (nl: "Nederlands" or "Dutch")."""
    if not code:
        return ""
    try:
        name = Locale.parse(code.strip().replace("-", "_")).get_display_name(Locale.parse(language))
    except (ValueError, TypeError, UnknownLocaleError):
        return code
    return name or code


def filesize(size: int, language: str) -> str:
    """A file's size as people read it: 830 bytes, 14 KB, 2.4 MB (2,4 MB in Dutch)."""
    if size < 1024:
        return f"{size} B"
    amount, unit = (size / 1024, "KB") if size < 1024 * 1024 else (size / (1024 * 1024), "MB")
    return f"{format_decimal(round(amount, 1), locale=Locale.parse(language))} {unit}"


def clock(seconds: float) -> str:
    """A duration as a timer shows it: 0:42, 12:03, 1:02:03."""
    total = max(int(seconds), 0)
    hours, minutes, rest = total // 3600, total // 60 % 60, total % 60
    return f"{hours}:{minutes:02d}:{rest:02d}" if hours else f"{minutes}:{rest:02d}"


def when(value: datetime | None, language: str, fmt: str = "medium", timezone: str = TIMEZONE) -> str:
    if value is None:
        return ""
    return format_datetime(value, fmt, tzinfo=get_timezone(timezone), locale=Locale.parse(language))


# Words the console stores as codes and shows in the agent's language: audit actions, the fields
# of a ticket's history, the dispositions it ships with, and what a conversation's events say.
LABELS = {
    # audit actions (console.audit)
    "view": N_("viewed"), "create": N_("created"), "update": N_("changed"), "merge": N_("merged"),
    "handoff": N_("handoff"), "note": N_("note"), "comment": N_("comment"), "export": N_("exported"),
    "erase": N_("erased"), "password": N_("password"), "deactivate": N_("deactivated"),
    "reactivate": N_("reactivated"), "second factor": N_("second factor"),
    # roles (console.models.Role)
    "agent": N_("agent"), "supervisor": N_("supervisor"), "admin": N_("admin"),
    # ticket fields (console.tickets.EDITABLE)
    "subject": N_("subject"), "description": N_("description"), "priority": N_("priority"),
    "status": N_("status"), "assignee_id": N_("assignee"), "queue_id": N_("queue"),
    # dispositions the console and its demo ship with (console.wrapup); a queue's own codes show as typed
    "resolved": N_("resolved"), "callback agreed": N_("callback agreed"), "sale": N_("sale"),
    "complaint": N_("complaint"), "information given": N_("information given"), "escalated": N_("escalated"),
    "wrap-up timeout": N_("wrap-up timeout"),
    # what a chat's system lines say (console.conversations)
    "chat ended": N_("The chat has ended."),
    "message left": N_("Left while nobody could answer: the visitor expects an answer by email."),
    "chat idle": N_("The chat has ended: the visitor answered nothing for a while."),
    "the visitor did not answer": N_("the visitor did not answer"),
    "chat ended by visitor": N_("The visitor ended the chat."),
    "ended by the visitor": N_("ended by the visitor"),
    "transcript mailed": N_("The visitor had the transcript mailed to them."),
    # what a mail thread's system lines say, and why a machine's mail was not routed (console.mail)
    "mail acknowledged": N_("The console confirmed to the customer that the mail arrived."),
    "mail reopened": N_("The customer wrote again after the conversation had ended: it was reopened."),
    "mail follows on": N_("The customer wrote again after the conversation had ended: this follows on from it."),
    "auto-replied": N_("an automatic reply"), "auto-generated": N_("sent automatically"), "bulk": N_("bulk mail"),
    "list": N_("a mailing list"), "junk": N_("junk"), "out of office": N_("out of office"),
    "bounce": N_("a bounce"), "loop": N_("a mail loop"),
    # what conversation events say (console.lifecycle, conversations, offers, handoffs, wrapup)
    "arrived": N_("arrived"), "answered": N_("answered"), "answered elsewhere": N_("answered elsewhere"),
    "offer withdrawn": N_("offer withdrawn"), "declined": N_("declined"), "rang out": N_("rang out"),
    "agent left": N_("agent left"), "closed by the agent": N_("closed by the agent"),
    "mail sent": N_("mail sent"),
    "wrapped up": N_("wrapped up"), "wrap-up time box ended": N_("wrap-up time box ended"),
    "nobody to wrap up": N_("nobody to wrap up"), "hangup": N_("hung up"),
    "handoff cancelled": N_("handoff cancelled"), "handoff not answered": N_("handoff not answered"),
    "took over by warm handoff": N_("took over by warm handoff"),
    "took over by cold handoff": N_("took over by cold handoff"),
    "handed off (warm)": N_("handed off (warm)"), "handed off (cold)": N_("handed off (cold)"),
}
# Events whose text goes on with a name, a cause or a reason: the start is translated, the rest shown as stored.
PREFIXES = (("hangup ", N_("hung up")), ("handed off to ", N_("handed off to")),
            ("warm handoff to ", N_("warm handoff to")), ("cold handoff to ", N_("cold handoff to")),
            ("handoff declined: ", N_("handoff declined:")), ("automatic: ", N_("sent by a machine:")))


def label(code: str | None, gettext: Callable[[str], str]) -> str:
    """A stored code or event text in the reader's language; what the catalog does not know, as stored."""
    if not code:
        return ""
    if code in LABELS:
        return gettext(LABELS[code])
    for start, text in PREFIXES:
        if code.startswith(start):
            return f"{gettext(text)} {code[len(start):]}"
    return gettext(code)  # a state or status value is a message of its own
