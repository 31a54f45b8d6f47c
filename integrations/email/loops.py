"""Telling a machine's mail from a person's, so that the console never answers a machine.

The classic mail loop: a customer's out-of-office answers the console's acknowledgement, the
console acknowledges the out-of-office, and the two write to each other until a mailbox is full.
RFC 3834 asks automatic mail to say what it is (Auto-Submitted); much of the world says it with
older headers instead (Precedence, X-Autoreply, Exchange's X-Auto-Response-Suppress), with the
headers of a mailing list, with a null return path, or only with the subject of an out-of-office.
`automatic` reads all of these and names the first it finds. It is a judgement on headers alone;
a mail it names is still stored and shown, only never answered or routed as new work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email.message import Message

# Subjects Exchange, Outlook and others give an out-of-office (English, Dutch, German), as a prefix
# before the subject it answers. "Auto:" alone is not among them: in Dutch an "auto" is a car, and
# "Auto: schade aan de deur" is a customer's mail. It counts only before a reply's own prefix.
_OUT_OF_OFFICE = re.compile(
    r"(?:automatic reply|autoreply|auto reply|auto-reply|out of (?:the )?office(?: autoreply)?|"
    r"automatisch antwoord|automatisch bericht|afwezig|afwezigheidsmelding|abwesenheitsnotiz|"
    r"automatische antwort|auto:\s*(?:re|aw|antw|fw|fwd)):",
    re.IGNORECASE,
)
# The same, as a whole subject (a vacation responder whose owner typed only this).
_OUT_OF_OFFICE_SUBJECTS = frozenset({
    "automatic reply", "out of office", "out of the office", "automatisch antwoord", "afwezigheidsmelding",
    "abwesenheitsnotiz",
})
# Subjects of the bounces of Postfix, Exim, qmail, Sendmail, Gmail and Exchange (English, Dutch, German).
BOUNCE_SUBJECT = re.compile(
    r"\s*(?:undelivered mail returned to sender|undeliver(?:ed|able)\b|delivery status notification \(|"
    r"mail delivery failed|delivery failure|failure notice|returned mail\b|mail delivery (?:system|subsystem)|"
    r"message not delivered|delivery has failed|onbestelbaar|niet bezorgd|unzustellbar|non remis)",
    re.IGNORECASE,
)
# Local parts of senders that are machines: bounces, and the no-reply senders of systems.
_MACHINE_SENDER = re.compile(
    r"(?:mailer-daemon|postmaster|no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?(?:[+=-].*)?)", re.IGNORECASE)
_SUPPRESSING = frozenset({"all", "oof", "autoreply", "dr", "ndr", "rn", "nrn"})


def _fields(headers: Message | Mapping[str, str]) -> dict[str, list[str]]:
    """Every header by its lower-cased name. A Message is read through raw_items(), as received:
    its parsed header objects can raise on a header no client should have sent."""
    items = headers.raw_items() if isinstance(headers, Message) else headers.items()
    found: dict[str, list[str]] = {}
    for name, value in items:
        found.setdefault(str(name).strip().lower(), []).append(" ".join(str(value).split()))
    return found


def automatic(headers: Message | Mapping[str, str], subject: str, sender: str) -> str | None:
    """Why this mail was sent by a machine, in a word or two, or None for a person's mail.

    The reasons: "out of office", "auto-replied", "auto-generated", "bulk", "list", "junk",
    "loop" (another system's loop guard, X-Loop) and "bounce" (a null return path under a bounce's
    subject; parse names the bounces it can read itself). `sender` is the From address.
    """
    fields = _fields(headers)

    def first(name: str) -> str:
        return fields.get(name, [""])[0].strip().lower()

    shown = " ".join(subject.split()).lower()
    if _OUT_OF_OFFICE.match(shown) or shown in _OUT_OF_OFFICE_SUBJECTS:
        return "out of office"
    submitted = first("auto-submitted").split(";")[0].strip()
    if submitted and submitted != "no":  # RFC 3834: auto-replied, auto-generated, auto-notified
        return "auto-replied" if submitted == "auto-replied" else "auto-generated"
    if first("x-autoreply") not in ("", "no", "false", "0") or "x-autorespond" in fields:
        return "auto-replied"
    precedence = first("precedence")
    if precedence == "auto_reply":
        return "auto-replied"
    suppress = {value.strip() for value in first("x-auto-response-suppress").split(",")}
    if suppress & _SUPPRESSING:  # Exchange: the sender asks for no auto-replies, as systems do
        return "auto-generated"
    if precedence in ("bulk", "list", "junk"):
        return precedence
    if "list-id" in fields or "list-unsubscribe" in fields:
        return "list"
    if "x-loop" in fields:
        return "loop"
    if "".join(first("return-path").split()) == "<>":  # the null sender of bounces and auto-replies
        return "bounce" if BOUNCE_SUBJECT.match(shown) else "auto-generated"
    local = sender.strip().rpartition("@")[0] if "@" in sender else sender.strip()
    if _MACHINE_SENDER.fullmatch(local):
        return "auto-generated"
    return None
