"""Reading a received mail: MIME bytes in, the plain values of console.mailtypes out.

A mail comes from anyone, and a mailbox must keep being read whatever arrives in it, so `parse`
never raises: a broken part, an unknown charset, a header no client should have sent are read as
far as they go, and what could not be read is named in `problems`, in a sentence for the log and
the agent. Headers are read as received (raw_items) and decoded here: the email package's parsed
header objects are convenient, but raise on some malformed headers, and decode an unknown
charset into unprintable escapes where a fallback charset reads it right.

The text is what the sender wrote now; the quoted history and the signature under it are folded
away into `quoted` (never dropped: when folding would leave nothing, the whole text stays). HTML
is sanitised with nh3, and its remote images (trackers, mostly) are not loaded until the agent
asks: `html` has them without their address, `remote_html` with it (None when the mail has no
remote image, so that there is nothing to ask for).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.errors
import email.parser
import email.policy
import email.utils
import hashlib
import html as htmllib
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from html.parser import HTMLParser
from typing import TypeVar

import nh3

from console.mailtypes import Bounce, IncomingMail, MailAddress, MailFile
from integrations.email.loops import BOUNCE_SUBJECT, automatic

log = logging.getLogger("integrations.email")

MAX_ID = 250  # characters of a message id; a longer one is no id a client made
MAX_REFERENCES = 50  # ids kept of a References chain, its newest end
MAX_SUBJECT = 500
MAX_NAME = 255  # characters of a file name
MAX_DISPLAY_NAME = 200
MAX_DEPTH = 20  # multiparts in multiparts; deeper is no mail a client made
MAX_PARTS = 1000
MAX_DIAGNOSTIC = 1000
# Blocks in blocks in an HTML body. Sanitising takes time in the square of this depth (the HTML
# parser looks through every open block for each new one): 50,000 nested <div>s took seconds.
MAX_HTML_NESTING = 2000
KEPT_HEADERS = ("Auto-Submitted", "Precedence", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress",
                "X-Loop", "List-Id", "Return-Path")
FALLBACKS = ("utf-8", "windows-1252")  # then latin-1, which reads any byte

# The HTML a mail may show: formatting, links, tables and images; no style, no forms, no frames.
HTML_TAGS = frozenset({
    "p", "br", "div", "span", "b", "i", "u", "strong", "em", "a", "ul", "ol", "li", "blockquote", "table",
    "tr", "td", "th", "thead", "tbody", "img", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "code", "hr",
})
HTML_ATTRIBUTES = {"a": {"href"}, "img": {"src", "alt", "width", "height"}, "td": {"colspan", "rowspan"},
                   "th": {"colspan", "rowspan"}}
URL_SCHEMES = frozenset({"http", "https", "mailto", "cid"})
LINK_REL = "noopener noreferrer nofollow"
# Removed with their content: a mail's head and title are no text to show, script and style no text at all.
HTML_DROPPED = frozenset({"script", "style", "head", "title"})

# Control characters (C0 and C1 but tab and line feed), the Unicode line and paragraph separators,
# halves of surrogate pairs and the bidirectional overrides that make "fdp.exe" read "exe.pdf".
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\u202a-\u202e\u2066-\u2069]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]*)\?=")
_ANGLED_ID = re.compile(r"<([^<>\s]*)>")
_URL_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*):")
_IMG_TAG = re.compile(r'<img((?: [^\s"=<>/]+="[^"]*")*)>')  # an <img> as nh3 writes it out
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)
_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d]|\.\d)")
_SMTP_CODE = re.compile(r"(?<!\d)([45][0-5]\d)[ -]")
_BOUNCED_TO = re.compile(r"<([^\s<>@]{1,200}@[^\s<>@]{1,200})>:")
_TEXT_MESSAGE_ID = re.compile(r"^\s*message-id:\s*<([^\s<>]{1,250})>", re.IGNORECASE | re.MULTILINE)
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster")
_RECIPIENT_FIELDS = frozenset({"final-recipient", "original-recipient", "action", "status"})

_T = TypeVar("_T")


def parse(raw: bytes, *, max_file: int = 10 * 1024 * 1024) -> IncomingMail:
    """The mail in `raw` as IncomingMail; never raises, whatever the bytes.

    A file (attachment, inline image, forwarded mail) larger than `max_file` bytes once decoded
    is left out and named in `problems`; the rest of the mail is kept.
    """
    try:
        return _parse(raw, max_file)
    except Exception as error:  # the net under the net: every step below already catches its own
        log.warning("a mail of %d bytes could not be read (%s); only its headers are kept", len(raw),
                    type(error).__name__)
        return _headers_only(raw, f"The mail's structure could not be read ({type(error).__name__}); "
                                  "only its headers and raw body are shown.")


def _parse(raw: bytes, max_file: int) -> IncomingMail:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    reading = _Reading(max_file)
    head = _head(message, raw, reading)
    reading.walk(message, 0)
    text = _joined(reading.texts)
    html: str | None = None
    remote_html: str | None = None
    if reading.htmls:
        whole = "\n".join(reading.htmls)
        if _nesting(whole) <= MAX_HTML_NESTING:
            remote_html, html = _sanitised(whole)
        else:
            reading.problem(f"The HTML nests more than {MAX_HTML_NESTING} blocks deep, which no mail client "
                            "writes; only its text is shown.")
        if not text.strip():
            text = _html_text(whole)
    text, quoted = fold(text)
    bounce = _bounce(message, reading, head)
    reason = "bounce" if bounce is not None else automatic(message, head.subject, head.sender_email)
    if reason is None and reading.reports:  # a read receipt or abuse report: a machine wrote it too
        reason = "auto-generated"
    return IncomingMail(
        message_id=head.message_id, subject=head.subject, sender=head.sender, reply_to=head.reply_to,
        to=head.to, cc=head.cc, in_reply_to=head.in_reply_to, references=head.references, date=head.date,
        text=text, quoted=quoted, html=html, remote_html=remote_html if remote_html != html else None,
        files=tuple(reading.files), automatic=reason, bounce=bounce, problems=tuple(reading.problems),
        size=len(raw), headers=head.kept)


def _headers_only(raw: bytes, problem: str) -> IncomingMail:
    """What is left when the structure could not be read: the headers, and the body as text."""
    reading = _Reading(0)
    reading.problem(problem)
    try:
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(raw, headersonly=True)
        head = _head(message, raw, reading)
        header_end = re.search(rb"\r?\n\r?\n", raw)
        body = raw[header_end.end():] if header_end else b""
        text = _clean_text(_decoded(body, None, "the body", reading))
    except Exception:
        return IncomingMail(message_id=_synthetic_id(raw), subject="", sender=None,
                            problems=tuple(reading.problems), size=len(raw))
    return IncomingMail(
        message_id=head.message_id, subject=head.subject, sender=head.sender, reply_to=head.reply_to,
        to=head.to, cc=head.cc, in_reply_to=head.in_reply_to, references=head.references, date=head.date,
        text=text, problems=tuple(reading.problems), size=len(raw), headers=head.kept)


def _attempt(read: Callable[[], _T], default: _T) -> _T:
    """read(), or `default` when the email package raises on what a mail holds."""
    try:
        return read()
    except Exception:
        return default


def _items(message: Message) -> list[tuple[str, str]]:
    """The headers as received: (name, value) with 8-bit bytes as surrogate escapes."""
    try:
        return [(str(name), str(value)) for name, value in message.raw_items()]
    except Exception:
        return []


def _children(part: Message) -> list[Message]:
    """The parts of a multipart, or the mail of a message/rfc822 part."""
    try:
        payload = part.get_payload()
    except Exception:
        return []
    return [child for child in payload if isinstance(child, Message)] if isinstance(payload, list) else []


# Headers ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Head:
    message_id: str
    subject: str
    sender: MailAddress | None
    sender_email: str
    reply_to: tuple[MailAddress, ...]
    to: tuple[MailAddress, ...]
    cc: tuple[MailAddress, ...]
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date: datetime | None
    kept: dict[str, str]


def _raw_header(message: Message, name: str) -> str | None:
    """The first `name` header as received, 8-bit bytes (UTF-8 sent raw) decoded; None when absent."""
    wanted = name.lower()
    for key, value in _items(message):
        if key.lower() == wanted:
            return _unraw(value)
    return None


def _unraw(value: str) -> str:
    """A header as the email package holds it, raw bytes (as surrogate escapes) made characters:
    RFC 6532 allows UTF-8 in headers, and older clients sent their own charset raw."""
    if not _SURROGATES.search(value):
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", value)
    for charset in FALLBACKS:
        try:
            return data.decode(charset)
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1")


def _unfold(value: str) -> str:
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())


def _clean_line(value: str) -> str:
    """One line to show: no control characters, no runs of white space."""
    return " ".join(_UNPRINTABLE.sub(" ", value).split())


def _decode_words(value: str, reading: _Reading | None = None, what: str = "a header") -> str:
    """RFC 2047 encoded words decoded. Adjacent words of one charset are decoded together (some
    clients split a character over two), a word that does not decode stays as it was written."""
    out: list[str] = []
    pending = bytearray()
    pending_charset = ""
    position = 0
    after_word = False
    for match in _ENCODED_WORD.finditer(value):
        between = value[position:match.start()]
        charset = match.group(1).split("*")[0].lower()  # RFC 2231 adds a language after a *
        data = _word_bytes(match.group(2), match.group(3))
        joined = after_word and not between.strip() and data is not None
        if pending and not (joined and charset == pending_charset):
            out.append(_decoded(bytes(pending), pending_charset, what, reading))
            pending = bytearray()
        if not joined:
            out.append(between)  # white space between two encoded words is no text (RFC 2047)
        if data is None:
            out.append(match.group())
            if reading is not None:
                reading.problem(f"{what[:1].upper()}{what[1:]} had a damaged encoded word; it is shown as it was sent.")
        else:
            pending += data
            pending_charset = charset
        after_word = data is not None
        position = match.end()
    if pending:
        out.append(_decoded(bytes(pending), pending_charset, what, reading))
    out.append(value[position:])
    return "".join(out)


def _word_bytes(encoding: str, text: str) -> bytes | None:
    data = text.encode("utf-8", "replace")
    try:
        if encoding in "qQ":
            return binascii.a2b_qp(data, header=True)
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def _header_text(message: Message, name: str, reading: _Reading) -> str | None:
    raw = _raw_header(message, name)
    return None if raw is None else _clean_line(_decode_words(_unfold(raw), reading, f"the {name} header"))


def _ids(value: str | None) -> list[str]:
    """The message ids in a header, without <>, in order, each once; ids over MAX_ID are dropped.
    A header without angle brackets (some clients) is read as ids separated by white space."""
    if not value:
        return []
    found = _ANGLED_ID.findall(value) or [token.strip(",;") for token in value.split() if "@" in token]
    ids = (_UNPRINTABLE.sub("", one).strip() for one in found)
    return list(dict.fromkeys(one for one in ids if one and len(one) <= MAX_ID))


def _synthetic_id(raw: bytes) -> str:
    """A Message-ID for a mail without one: the same bytes get the same id, so a mail read twice
    is still recognised as one."""
    return f"missing-{hashlib.sha256(raw).hexdigest()}@console.invalid"


def _addresses(message: Message, name: str, reading: _Reading) -> tuple[MailAddress, ...]:
    raw = _raw_header(message, name)
    if raw is None:
        return ()
    value = _unfold(raw)
    try:
        pairs = email.utils.getaddresses([value])
    except Exception:
        pairs = []
    found: list[MailAddress] = []
    for display, address in pairs:
        cleaned = _clean_address(address)
        if cleaned:
            shown = _clean_line(_decode_words(display, reading, f"a name in the {name} header"))[:MAX_DISPLAY_NAME]
            found.append(MailAddress(shown, cleaned))
    if not found and "@" in value:
        reading.problem(f"The {name} header could not be read as addresses: {_clean_line(value)[:200]!r}.")
    return tuple(dict.fromkeys(found))


def _clean_address(address: str) -> str:
    """The address as written, its domain in lower case (a local part may be case-sensitive)."""
    address = "".join(_UNPRINTABLE.sub("", address).split()).strip("<>")
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > 320:
        return ""
    return f"{local}@{domain.lower()}"


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        found = email.utils.parsedate_to_datetime(value)
    except Exception:
        return None
    if found.tzinfo is None:  # "-0000": the time is UTC, the zone where it was written unknown
        found = found.replace(tzinfo=UTC)
    return _attempt(lambda: found.astimezone(UTC), None)


def _head(message: Message, raw: bytes, reading: _Reading) -> _Head:
    ids = _ids(_raw_header(message, "Message-ID"))
    if ids:
        message_id = ids[0]
    else:
        message_id = _synthetic_id(raw)
        reading.problem("The mail has no usable Message-ID; it was given one made from its content.")
    subject = (_header_text(message, "Subject", reading) or "")[:MAX_SUBJECT]
    senders = _addresses(message, "From", reading)
    if not senders:
        reading.problem("The mail names no sender (From); a reply has no address to go to.")
    date_header = _raw_header(message, "Date")
    date = _date(date_header)
    if date_header and date is None:
        reading.problem(f"The mail's date could not be read: {_clean_line(date_header)[:100]!r}.")
    kept = {}
    for name in KEPT_HEADERS:
        value = _raw_header(message, name)
        if value is not None:
            kept[name] = _clean_line(value)[:500]
    return _Head(
        message_id=message_id, subject=subject, sender=senders[0] if senders else None,
        sender_email=senders[0].email if senders else "", reply_to=_addresses(message, "Reply-To", reading),
        to=_addresses(message, "To", reading), cc=_addresses(message, "Cc", reading),
        in_reply_to=tuple(_ids(_raw_header(message, "In-Reply-To"))),
        references=tuple(_ids(_raw_header(message, "References"))[-MAX_REFERENCES:]),
        date=date, kept=kept)


# Charsets ---------------------------------------------------------------------------------------

# Labels that mean another charset in practice (as browsers read them, WHATWG's encoding standard):
# text labelled Latin-1 is written on Windows, where 0x80 is the euro sign.
_CHARSET_ALIASES = {
    "iso-8859-1": "windows-1252", "iso8859-1": "windows-1252", "latin1": "windows-1252",
    "latin-1": "windows-1252", "l1": "windows-1252", "gb2312": "gb18030", "gbk": "gb18030",
    "ks_c_5601-1987": "cp949", "iso-8859-8-i": "iso-8859-8", "utf8": "utf-8",
}


def _codec(charset: str | None) -> str | None:
    """The Python codec of a declared charset, or None when there is no such text encoding."""
    if not charset:
        return None
    name = _CHARSET_ALIASES.get(charset.strip().lower(), charset.strip().lower())
    try:
        info = codecs.lookup(name)
        "".encode(info.name)  # base64, zlib and rot13 are codecs too, but of no text
    except (LookupError, ValueError, TypeError):
        return None
    return info.name


def _decoded(data: bytes, charset: str | None, what: str, reading: _Reading | None) -> str:
    """Bytes as text: in the declared charset; else UTF-8, Windows-1252, Latin-1, in that order.

    A declared charset that does not fit the bytes is still used (with replacement characters)
    when UTF-8 does not fit either: one wrong byte in a long Shift-JIS text should not turn all
    of it into Windows-1252. US-ASCII is read as no declaration: 8-bit text so labelled is
    almost always UTF-8 or Windows-1252 sent by a client that did not say so.
    """
    codec = _codec(charset)
    declared = codec is not None and codec != "ascii"
    if declared:
        try:
            return data.decode(str(codec))
        except Exception:  # UnicodeError, or what an odd codec (idna, punycode) raises
            log.debug("the declared codec %s does not fit", codec)
    subject = what[:1].upper() + what[1:]
    for fallback in FALLBACKS:
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        if reading is not None and charset and codec != "ascii":
            label = _clean_line(charset)[:40]
            why = f"was not in the charset it declared ({label!r})" if declared \
                else f"declared the unknown charset {label!r}"
            reading.problem(f"{subject} {why}; it was read as {fallback}, so some characters may be wrong.")
        return text
    used = "latin-1"
    text = data.decode("latin-1")
    if declared:
        try:
            text, used = data.decode(str(codec), "replace"), str(codec)
        except Exception:
            log.debug("codec %s failed even with replacement characters", codec)
    if reading is not None:
        reading.problem(f"{subject} was in no charset it could be read in; it was read as {used}, "
                        "so some characters may be wrong.")
    return text


def _clean_text(text: str) -> str:
    """A body's text: one kind of line break, no control characters but the tab."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNPRINTABLE.sub(_keep_separators, text).rstrip()


def _keep_separators(match: re.Match[str]) -> str:
    char = match.group()
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"
    return "\n" if char in "\u2028\u2029" else ""


# The MIME tree -----------------------------------------------------------------------------------

_DEFECTS: dict[type[email.errors.MessageDefect], str] = {
    email.errors.NoBoundaryInMultipartDefect:
        "A multipart part has no boundary; its parts could not be told apart and it was read as text.",
    email.errors.StartBoundaryNotFoundDefect:
        "A multipart part's boundary was never found; its parts could not be told apart and it was read as text.",
    email.errors.CloseBoundaryNotFoundDefect:
        "The mail ends before its last part is closed (the end boundary is missing); that part may be cut short.",
    email.errors.InvalidBase64PaddingDefect: "A base64-encoded part was damaged; what could be decoded is shown.",
    email.errors.InvalidBase64CharactersDefect: "A base64-encoded part was damaged; what could be decoded is shown.",
    email.errors.InvalidBase64LengthDefect: "A base64-encoded part was damaged; what could be decoded is shown.",
    email.errors.MissingHeaderBodySeparatorDefect:
        "A part's headers run into its body; the first line that is no header was read as body.",
    email.errors.MultipartInvariantViolationDefect:
        "A part claims to be multipart but holds no parts; it was read as text.",
}
_EXTENSIONS = {
    "application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif",
    "image/webp": ".webp", "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics",
    "text/csv": ".csv", "text/rfc822-headers": ".txt", "message/rfc822": ".eml", "application/zip": ".zip",
}


@dataclass
class _Reading:
    """What the walk over the MIME tree has found so far."""

    max_file: int
    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    files: list[MailFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    reports: list[Message] = field(default_factory=list)  # multipart/report parts (bounces, receipts)
    forwards: list[Message] = field(default_factory=list)  # the mails of message/rfc822 parts
    parts: int = 0

    def problem(self, sentence: str) -> None:
        if sentence not in self.problems:
            self.problems.append(sentence)

    def walk(self, part: Message, depth: int) -> None:
        """Read `part`: a multipart by its parts, a text as the body, anything else as a file."""
        self.parts += 1
        if self.parts > MAX_PARTS or depth > MAX_DEPTH:
            self.problem(f"The mail has more than {MAX_PARTS} parts or {MAX_DEPTH} levels of them; "
                         "the rest was not read.")
            return
        content_type = _content_type(part, self)
        maintype = content_type.partition("/")[0]
        if maintype == "message":
            self._message(part, content_type)
        elif part.is_multipart():
            children = _children(part)
            if content_type == "multipart/alternative":
                self._alternative(children, depth)
            else:
                if content_type == "multipart/report":
                    self.reports.append(part)
                for child in children:
                    self.walk(child, depth + 1)
        elif maintype == "multipart":  # no parts could be found in it: read it as the text it is
            self.texts.append(_clean_text(_decoded(_payload(part, self), None, "a broken multipart part", self)))
        elif content_type in ("text/plain", "text/html") and _is_body(part):
            self._body(part, content_type)
        else:
            self._file(part, content_type)
        for defect in getattr(part, "defects", []):  # read after the payload: decoding it finds some
            sentence = _DEFECTS.get(type(defect))
            if sentence:
                self.problem(sentence)

    def _alternative(self, children: list[Message], depth: int) -> None:
        """The plain text and the HTML of the same content; other renderings (text/enriched,
        Apple's text/watch-html) are left out, but an invite sent along is kept as a file."""
        plain: Message | None = None
        rich: Message | None = None
        for child in children:
            content_type = _content_type(child, self)
            if content_type == "text/plain":
                plain = child  # the last is the best (RFC 2046)
            elif content_type == "text/html":
                rich = child
            elif content_type.startswith("multipart/") or content_type == "text/calendar":
                self.walk(child, depth + 1)
        for chosen in (plain, rich):
            if chosen is not None:
                self.walk(chosen, depth + 1)

    def _body(self, part: Message, content_type: str) -> None:
        data = _payload(part, self)
        charset = _attempt(part.get_content_charset, None)
        if content_type == "text/html":
            if charset is None:  # an HTML part may name its charset in a <meta> only
                declared = _META_CHARSET.search(data[:4096])
                charset = declared.group(1).decode("ascii") if declared else None
            self.htmls.append(_clean_text(_decoded(data, charset, "the HTML", self)))
            return
        text = _clean_text(_decoded(data, charset, "the text", self))
        params = {key.lower(): value.lower() for key, value in _params(part)}
        if params.get("format") == "flowed":
            text = _unflowed(text, delete_space=params.get("delsp") == "yes")
        self.texts.append(text)

    def _message(self, part: Message, content_type: str) -> None:
        """A mail in the mail: a forward (or a bounce's returned mail) is kept as a .eml file and
        its text is not mixed into this one's; a delivery status is read by _bounce."""
        if content_type in ("message/delivery-status", "message/global-delivery-status"):
            return
        nested = _children(part)
        if nested:
            self.forwards.extend(nested)
            data = b"\n".join(_serialised(one) for one in nested)
            subject = _header_text(nested[0], "Subject", self) or ""
        else:
            data = _payload(part, self)
            subject = ""
        name = _clean_file_name(subject)
        name = f"{name[:MAX_NAME - 4]}.eml" if name else _file_name(part, "message/rfc822", len(self.files) + 1)
        self._add(name, "message/rfc822", data, None, inline=False)

    def _file(self, part: Message, content_type: str) -> None:
        content_id = _ids(_raw_header(part, "Content-ID"))
        disposition = _attempt(part.get_content_disposition, None)
        inline = bool(content_id) and disposition != "attachment"
        name = _file_name(part, content_type, len(self.files) + 1)
        self._add(name, content_type, _payload(part, self), content_id[0] if content_id else None, inline)

    def _add(self, name: str, content_type: str, data: bytes, content_id: str | None, inline: bool) -> None:
        if len(data) > self.max_file:
            self.problem(f"The file {name!r} ({_megabytes(len(data))}) is larger than the "
                         f"{_megabytes(self.max_file)} a file may be; it was left out.")
            return
        found = MailFile(name=name, content_type=content_type, data=data, content_id=content_id, inline=inline)
        if found not in self.files:  # Gmail sends an invite twice: as the alternative and as a file
            self.files.append(found)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _content_type(part: Message, reading: _Reading) -> str:
    found = _attempt(part.get_content_type, None)
    if found is None:
        reading.problem("A part's Content-Type could not be read; it was read as plain text.")
        return "text/plain"
    return found


def _params(part: Message) -> list[tuple[str, str]]:
    found = _attempt(lambda: part.get_params(header="content-type"), None) or []
    return [(str(key), value if isinstance(value, str) else "") for key, value in found]


def _is_body(part: Message) -> bool:
    """A text part is the mail's text unless it is sent as a file (attachment, or with a name)."""
    if _attempt(part.get_content_disposition, None) == "attachment":
        return False
    return not _attempt(part.get_filename, None)


def _payload(part: Message, reading: _Reading) -> bytes:
    """A part's bytes, its transfer encoding (base64, quoted-printable) undone."""
    try:
        found = part.get_payload(decode=True)
        if isinstance(found, bytes):
            return found
        raw = part.get_payload()
    except Exception:
        raw = None
    if isinstance(raw, str):
        reading.problem("A part's transfer encoding could not be undone; it is kept as it was sent.")
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _serialised(message: Message) -> bytes:
    """A nested mail as bytes for its .eml file; compat32 writes its headers back as received."""
    for policy in (email.policy.compat32, email.policy.default):
        data = _attempt(lambda: message.as_bytes(policy=policy), None)  # noqa: B023 (called at once)
        if data is not None:
            return data
    return str(message).encode("utf-8", "replace")


def _clean_file_name(raw: str) -> str:
    """A name to show and save under: no folders, no control or invisible characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    name = " ".join(name.split()).strip(" .")
    if len(name) > MAX_NAME:
        stem, dot, extension = name.rpartition(".")
        name = stem[:MAX_NAME - len(extension) - 1] + dot + extension if dot and len(extension) < 16 \
            else name[:MAX_NAME]
    return name


def _file_name(part: Message, content_type: str, number: int) -> str:
    """The file's own name (RFC 2231 and, as Outlook writes it, RFC 2047), or one made up."""
    raw = _attempt(part.get_filename, None)
    name = _clean_file_name(_decode_words(_unraw(raw))) if isinstance(raw, str) else ""
    if name:
        return name
    if content_type == "text/calendar":
        return "invite.ics"
    return f"attachment-{number}{_EXTENSIONS.get(content_type, '.bin')}"


def _joined(texts: list[str]) -> str:
    return "\n\n".join(text for text in texts if text.strip())


def _unflowed(text: str, *, delete_space: bool) -> str:
    """format=flowed (RFC 3676) lines joined back into paragraphs: a line ending in a space goes
    on in the next line of the same quote depth; "-- " is the signature line, never joined."""
    lines: list[str] = []
    joining = False
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        if joining and lines and depth == _depth(lines[-1]) and content != "-- ":
            lines[-1] += content
        else:
            lines.append(">" * depth + (" " if depth and content else "") + content)
        joining = content.endswith(" ") and content != "-- "
        if joining and delete_space:
            lines[-1] = lines[-1][:-1]
    return "\n".join(lines)


def _depth(line: str) -> int:
    return len(line) - len(line.lstrip(">"))


# HTML --------------------------------------------------------------------------------------------

def _keep_url(element: str, attribute: str, value: str) -> str | None:
    """An address survives only with a scheme of URL_SCHEMES: a relative one would load from the
    console's own origin."""
    if attribute not in ("href", "src"):
        return value
    found = _URL_SCHEME.match(value.strip())
    return value if found and found.group(1).lower() in URL_SCHEMES else None


def _block_remote(element: str, attribute: str, value: str) -> str | None:
    """As _keep_url, and an image loads only from the mail itself (cid:), never from outside."""
    if element == "img" and attribute == "src" and not value.strip().lower().startswith("cid:"):
        return None
    return _keep_url(element, attribute, value)


def _clean_html(html: str, attribute_filter: Callable[[str, str, str], str | None]) -> str:
    return nh3.clean(html, tags=set(HTML_TAGS), clean_content_tags=set(HTML_DROPPED),
                     attributes=HTML_ATTRIBUTES, attribute_filter=attribute_filter, link_rel=LINK_REL,
                     url_schemes=set(URL_SCHEMES), strip_comments=True)


def _placeholder(match: re.Match[str]) -> str:
    """An <img> of nh3's output, its remote address dropped and an alt text given when it had none."""
    attributes = dict(re.findall(r' ([^\s"=<>/]+)="([^"]*)"', match.group(1)))
    source = htmllib.unescape(attributes.get("src", "")).strip().lower()
    if source.startswith("cid:"):
        return match.group()
    attributes.pop("src", None)
    attributes.setdefault("alt", "[image]")
    return "<img" + "".join(f' {key}="{value}"' for key, value in attributes.items()) + ">"


_NESTING_TAG = re.compile(
    r"<(/?)(?:div|blockquote|ul|ol|dl|table|section|article|aside|nav|header|footer|main|center|figure|"
    r"address|fieldset|details|form)[\s/>]", re.IGNORECASE)


def _nesting(html: str) -> int:
    """How deep the HTML's blocks nest, counted from its tags (those a parser never closes itself)."""
    depth = deepest = 0
    for match in _NESTING_TAG.finditer(html):
        depth = max(0, depth - 1) if match.group(1) else depth + 1
        deepest = max(deepest, depth)
    return deepest


def _sanitised(html: str) -> tuple[str, str]:
    """(remote_html, html): the HTML sanitised, with its remote images, and without them.

    The placeholders are written into nh3's own output, whose <img> tags have one regular shape,
    and the result goes through nh3 once more, which also drops any remote address left.
    """
    remote = _clean_html(html, _keep_url).strip()
    blocked = _clean_html(_IMG_TAG.sub(_placeholder, remote), _block_remote).strip()
    return remote, blocked


_BLOCKS = frozenset({
    "p", "div", "br", "li", "tr", "table", "ul", "ol", "blockquote", "pre", "hr", "h1", "h2", "h3", "h4",
    "h5", "h6", "section", "article", "header", "footer", "address", "dd", "dt", "dl", "center", "form",
})
_PARAGRAPHS = frozenset({"p", "table", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "hr"})
_INVISIBLE = frozenset({"script", "style", "head", "title", "noscript", "template", "xml"})


class _TextOfHTML(HTMLParser):
    """The text an HTML mail shows: block elements end lines, the rest flows; no script or style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0
        self.preformatted = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self.hidden += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append("  ")
        elif tag in _BLOCKS:
            self.out.append("\n\n" if tag in _PARAGRAPHS else "\n")
        if tag == "pre":
            self.preformatted += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _INVISIBLE:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS and tag not in ("br", "li"):  # an item's line starts at the next <li>
            self.out.append("\n\n" if tag in _PARAGRAPHS else "\n")
        if tag == "pre":
            self.preformatted = max(0, self.preformatted - 1)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        self.out.append(data if self.preformatted else re.sub(r"[ \t\r\n\f]+", " ", data))


def _html_text(html: str) -> str:
    """Plain text of an HTML body, for mails that have no text/plain part."""
    try:
        parser = _TextOfHTML()
        parser.feed(html)
        parser.close()
        text = "".join(parser.out)
    except Exception:  # html.parser raises on a few malformed declarations; nh3 reads anything
        text = htmllib.unescape(nh3.clean(html, tags=set(), clean_content_tags=set(HTML_DROPPED)))
    lines = [line.replace("\xa0", " ").strip() for line in text.split("\n")]
    return _clean_text(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n"))


# Quoted history and signatures ------------------------------------------------------------------------

_SEPARATOR = re.compile(
    r"-{2,}\s*(?:original message|oorspronkelijk bericht|oorspronkelijk e-mailbericht|"
    r"urspr(?:ü|ue)ngliche nachricht|message d'origine)\s*-{2,}", re.IGNORECASE)
_FORWARD = re.compile(
    r"(?:-{2,}\s*(?:forwarded message|doorgestuurd bericht|weitergeleitete nachricht|message transf[ée]r[ée])\s*-{2,}|"
    r"begin (?:forwarded message|doorgestuurd bericht):)", re.IGNORECASE)
_HEADER_START = re.compile(r"\*?(?:from|van|von|de)\*?:\*?\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"\*?(?:sent|date|to|subject|cc|verzonden|datum|aan|onderwerp|gesendet|an|betreff|envoy[ée]|à|objet)\*?:",
    re.IGNORECASE)
_SENT_FROM = re.compile(
    r"(?:sent from my|sent from outlook|get outlook for|verzonden (?:vanaf|met|van) mijn|verstuurd (?:vanaf|met) mijn|"
    r"von meinem .{1,60} gesendet|envoy[ée] de mon)", re.IGNORECASE)
_ATTRIBUTION_WORDS = ("on ", "op ", "am ", "le ")


def _attribution(line: str) -> bool:
    """The line a client writes above what it quotes: "On ... wrote:" (Gmail, Apple, Thunderbird),
    "Op ... schreef ...:" and "Op ... heeft ... geschreven:" (Dutch), "Am ... schrieb ...:",
    "Le ... a écrit :". Read with plain string tests: they cost nothing on a long line."""
    line = line.strip().lower()
    if not line.endswith(":") or len(line) > 400 or not line.startswith(_ATTRIBUTION_WORDS):
        return False
    head = line[:-1].rstrip()
    return ((head.startswith("on ") and head.endswith(" wrote"))
            or (head.startswith("op ") and (" schreef" in head or head.endswith(" geschreven")))
            or (head.startswith("am ") and " schrieb" in head)
            or (head.startswith("le ") and (head.endswith(" a écrit") or head.endswith(" a ecrit"))))


def _header_block(lines: list[str], index: int) -> bool:
    """An Outlook header block starts here: From:/Van: and, in the next lines, Sent:/Verzonden:,
    To:/Aan:, Subject:/Onderwerp: (bold in Outlook's text: *From:*)."""
    if not _HEADER_START.match(lines[index].strip()):
        return False
    following = (line.strip() for line in lines[index + 1:index + 6])
    return any(_HEADER_NEXT.match(line) for line in following)


def _quote_start(lines: list[str]) -> int | None:
    """The first line of the "> " quote that runs to the end (blank lines aside); an answer written
    between quoted lines is no trailing quote, and stays in the text."""
    start = None
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index].strip()
        if line.startswith(">"):
            start = index
        elif line:
            break
    return start


def _cut(lines: list[str]) -> int:
    """The index of the first line of what is folded away; len(lines) when nothing is."""
    quote = _quote_start(lines)
    end = len(lines) if quote is None else quote
    for index in range(end):
        line = lines[index]
        stripped = line.strip()
        if line in ("-- ", "--"):  # the signature line (RFC 3676); "--" as clients trim it
            return index
        if _FORWARD.fullmatch(stripped):  # what was forwarded is read, not folded
            return end
        if _SEPARATOR.fullmatch(stripped) or _header_block(lines, index):
            return index
        if stripped.startswith("_" * 10) and not stripped.strip("_"):
            following = next((n for n in range(index + 1, min(index + 4, len(lines))) if lines[n].strip()), None)
            if following is not None and _header_block(lines, following):
                return index
        if _attribution(stripped):
            return index
        if (stripped.lower().startswith(_ATTRIBUTION_WORDS) and index + 1 < len(lines)
                and _attribution(stripped + " " + lines[index + 1].strip())):
            return index  # a long attribution wrapped over two lines
    return end


def fold(text: str) -> tuple[str, str]:
    """(text, quoted): what the sender wrote now, and the history and signature under it.

    Folded away from the first of: a "-- " signature line, an attribution line ("On ... wrote:",
    "Op ... schreef ...:"), a separator ("-----Original Message-----", "-----Oorspronkelijk
    bericht-----"), an Outlook header block ("Van: ... Verzonden: ..."), a "> " quote that runs to
    the end; and a "Sent from my iPhone" line just above it. A forward is not folded: what was
    forwarded is what the customer wants read. When nothing would be left, nothing is folded.
    """
    lines = text.split("\n")
    cut = _cut(lines)
    above = cut - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    if above >= 0 and len(lines[above]) < 120 and _SENT_FROM.match(lines[above].strip()):
        cut = above
    new = "\n".join(lines[:cut]).rstrip()
    if not new.strip():
        return text, ""
    return new, "\n".join(lines[cut:]).strip("\n")


# Bounces -------------------------------------------------------------------------------------------

def _bounce(message: Message, reading: _Reading, head: _Head) -> Bounce | None:
    """The delivery failure this mail reports: from a DSN (RFC 3464) when it is one, else from the
    text of the bounce shapes MTAs wrote before DSNs (Postfix's, qmail's "failure notice")."""
    for report in reading.reports:
        params = dict(_params(report))
        kind = next((value for key, value in params.items() if key.lower() == "report-type"), "")
        if kind.lower() == "delivery-status":
            found = _dsn(report, reading)
            if found is not None:
                return found
    local = head.sender_email.partition("@")[0].lower()
    null_sender = "".join(head.kept.get("Return-Path", "").split()) == "<>"
    if (local in _BOUNCE_SENDERS or null_sender) and BOUNCE_SUBJECT.match(head.subject):
        return _text_bounce(reading)
    return None


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """The fields of a message/delivery-status: one block for the message, one per recipient."""
    blocks: list[dict[str, str]] = []
    payload = _attempt(part.get_payload, None)
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, Message):
                blocks.append({key.lower(): _clean_line(_unraw(value)) for key, value in _items(block)})
    elif isinstance(payload, str):  # sent as one text: read it field by field
        fields: dict[str, str] = {}
        for line in _unraw(payload).splitlines():
            if not line.strip():
                if fields:
                    blocks.append(fields)
                fields = {}
            key, colon, value = line.partition(":")
            if colon and key.strip():
                fields.setdefault(key.strip().lower(), _clean_line(value))
        if fields:
            blocks.append(fields)
    return blocks


def _returned_id(part: Message, reading: _Reading) -> str | None:
    """The Message-ID of the mail a report returns (whole, or its headers only)."""
    content_type = _content_type(part, reading)
    if content_type in ("message/rfc822", "message/global"):
        for nested in _children(part):
            ids = _ids(_raw_header(nested, "Message-ID"))
            if ids:
                return ids[0]
    elif content_type in ("text/rfc822-headers", "message/global-headers"):
        headers = _attempt(lambda: email.message_from_bytes(_payload(part, reading), policy=email.policy.compat32),
                           None)
        ids = _ids(_raw_header(headers, "Message-ID")) if headers is not None else []
        if ids:
            return ids[0]
    return None


def _dsn(report: Message, reading: _Reading) -> Bounce | None:
    children = _children(report)
    recipients: list[str] = []
    statuses: list[str] = []
    diagnostics: list[str] = []
    failed = False
    original: str | None = None
    for child in children:
        content_type = _content_type(child, reading)
        if content_type in ("message/delivery-status", "message/global-delivery-status"):
            for block in _status_blocks(child):
                if not _RECIPIENT_FIELDS.intersection(block):
                    continue  # the block about the message, not about one recipient
                action = block.get("action", "failed").lower()
                if action not in ("failed", "delayed"):
                    continue  # delivered, relayed, expanded: a success notice, no bounce
                failed = failed or action == "failed"
                recipient = block.get("final-recipient") or block.get("original-recipient") or ""
                address = _clean_address(recipient.rpartition(";")[2])
                if address:
                    recipients.append(address)
                code = _STATUS.search(block.get("status", ""))
                if code:
                    statuses.append(code.group(1))
                diagnostic = block.get("diagnostic-code", "")
                if diagnostic:
                    diagnostics.append(diagnostic.partition(";")[2].strip() or diagnostic)
        else:
            original = original or _returned_id(child, reading)
    if not recipients and not statuses and not failed:
        return None
    if original is None:
        found = _TEXT_MESSAGE_ID.search(_joined(reading.texts))
        original = found.group(1) if found else None
    status = next((one for one in statuses if one.startswith("5")), statuses[0] if statuses else "")
    return Bounce(original_message_id=original, recipients=tuple(dict.fromkeys(recipients)), status=status,
                  permanent=status.startswith("5") if status else failed,
                  diagnostic=diagnostics[0][:MAX_DIAGNOSTIC] if diagnostics else "")


def _text_bounce(reading: _Reading) -> Bounce:
    """What a bounce without a DSN says in its text: whom it failed for, why, and (when it copies
    the returned mail's headers) which mail it was."""
    text = _joined(reading.texts) or _html_text("\n".join(reading.htmls))
    original = next((_ids(_raw_header(one, "Message-ID")) for one in reading.forwards), [])
    found_id = _TEXT_MESSAGE_ID.search(text)
    original_id = original[0] if original else found_id.group(1) if found_id else None
    recipients = [_clean_address(match.group(1)) for match in _BOUNCED_TO.finditer(text)]
    found_status = _STATUS.search(text)
    status = found_status.group(1) if found_status else ""
    code = _SMTP_CODE.search(text)
    diagnostic = ""
    first = _BOUNCED_TO.search(text)
    if first:  # Postfix and qmail: "<address>: the reason", up to the next blank line
        diagnostic = _clean_line(text[first.end():].split("\n\n", 1)[0])
    permanent = (status.startswith("5") if status
                 else bool(code and code.group(1).startswith("5")) or "permanent" in text.lower())
    return Bounce(original_message_id=original_id, recipients=tuple(dict.fromkeys(r for r in recipients if r)),
                  status=status, permanent=permanent, diagnostic=diagnostic[:MAX_DIAGNOSTIC])
