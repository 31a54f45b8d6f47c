"""Mail in by IMAP: one poller per mailbox, each configured by a URL.

    imaps://user:password@imap.example.nl/INBOX                      TLS, flag stored mails \\Seen
    imaps://user:password@imap.example.nl/Support?move=Processed     move stored mails to Processed
    imap://user:password@mail.internal/INBOX?starttls=1              plain port 143, then STARTTLS
    imap://user:password@127.0.0.1:1143/INBOX?idle=0&poll=30         no IDLE: poll every 30 s
    imaps://user:password@10.0.0.5/INBOX?verify=0                    self-signed certificate (tests)

A / ? # @ or % in the user or password is written percent-encoded (%2F %3F %23 %40 %25).
`verify=0` skips every check of the server's certificate, so anyone on the way can read the
password and the mail: it is meant for a test server with a self-signed certificate only.

What the poller promises, and how:

* Nothing is fetched twice, nothing is missed. The domain keeps a cursor per mailbox: the
  folder's UIDVALIDITY and the highest UID it stored, advanced in the same transaction as the
  mail (Sink.store). Each pass asks the server for the UIDs above the cursor (UID SEARCH), never
  for "everything since yesterday", so a console that was down for a day fetches exactly what
  arrived meanwhile. A changed UIDVALIDITY (the server rebuilt or restored the folder) voids
  every UID: the cursor is reset (Sink.resync) and the folder fetched again from UID 1; the store
  knows each Message-ID it has, so nothing is stored twice. The first read of a folder (and the
  first after a renumbering) takes only its unread mails, then moves the cursor past the rest: a
  mailbox with years of read history does not flood the queues (in move mode, everything in the
  folder is taken).
* A mail is marked on the server (\\Seen, or moved) only after the store returned. The body is
  fetched with BODY.PEEK[], which leaves \\Seen alone. A mail whose store raised (the database is
  away) stops the pass there: it is neither marked nor skipped, and the next pass tries it again.
  If the console stops between storing and marking, the first pass of the next connection marks
  what the cursor says was stored (a stray unread mail in the folder would otherwise be left;
  in the \\Seen mode this also flags a stored mail that someone marked unread on the server).
* A new mail pops within seconds: the poller waits in IDLE where the server offers it (renewed
  at the poll interval, at most every 29 minutes as RFC 2177 asks, and each renewal is a poll
  too, as a safety net for a server that misses a push), and polls at the interval otherwise.
* Bad input and bad servers keep it running. Every failure is one log line naming the mailbox
  and what failed; the poller reconnects with exponential backoff (1 s doubling to 5 minutes,
  with jitter so that many consoles do not knock at once) and never ends on its own. Its state
  (MailboxState) is what /readyz and /metrics show per mailbox. No password reaches a log line,
  an error or the state.

aioimaplib 2.x carries the protocol. Four of its habits shape this module: a command waiting
for its answer does not notice a closed connection (so every call here also watches the
connection's own closed-event); it offers no STARTTLS (done here with loop.start_tls); after
LOGIN it merges the server's capabilities into those it had before login, which may announce
IDLE or MOVE that the logged-in session does not have (so CAPABILITY is asked again); and it
drops the "* n EXISTS" a server sends along with the answer to another command (so a pass
searches again until it finds nothing new, before it goes back to IDLE).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import re
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn, Protocol, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import aioimaplib

from console.logs import UNSAFE, safe
from integrations.email.pipeline import CONSOLE_PARAMETERS
from integrations.urls import credentials

log = logging.getLogger("integrations.email.imap")

T = TypeVar("T")
Tls = Literal["implicit", "starttls", "none"]
State = Literal["connecting", "idle", "polling", "fetching", "failing", "off"]

DEFAULT_PORTS = {"imaps": 993, "imap": 143}
OPTIONS = ("move", "poll", "idle", "starttls", "verify")
MAX_POLL = 24 * 3600
BATCH = 50  # mails per UID FETCH
BATCH_BYTES = 16 * 1024 * 1024  # and at most this much mail per UID FETCH (a bigger mail comes alone)
IDLE_RENEW = 29 * 60  # RFC 2177: a server may end an IDLE after 30 minutes
BODY = "(UID RFC822.SIZE BODY.PEEK[])"
SIZES = "(UID RFC822.SIZE)"
SEEN = r"+FLAGS.SILENT (\Seen)"
DELETED = r"+FLAGS.SILENT (\Deleted)"
MAX_ERROR = 300

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_FETCH_START = re.compile(rb"\d+ FETCH \(")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class ImapMailbox:
    """One mailbox as its URL describes it (see the module's docstring)."""

    name: str  # the console's name for the mailbox
    host: str
    port: int
    tls: Tls  # imaps: TLS from the start; imap: plain, or STARTTLS with ?starttls=1
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    after: str | None = None  # the folder stored mails are moved to; None: they are flagged \Seen
    poll_seconds: int = 60
    idle: bool = True
    insecure: bool = False  # ?verify=0: no certificate checks (a self-signed test server)

    @property
    def display(self) -> str:
        """The URL without the password, for log lines and the state pages."""
        scheme = "imaps" if self.tls == "implicit" else "imap"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{quote(self.user, safe='@')}@{host}:{self.port}/{quote(self.folder)}"


def _flag(setting: str, key: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"{setting}: ?{key}= must be 1 or 0, not {value!r}")


def parse_url(name: str, url: str) -> ImapMailbox:
    """Read a mailbox URL. ValueError names the setting (CONSOLE_MAILBOX_<NAME>) and what to change;
    it never holds the password, nor any part of the URL where a password could be."""
    setting = f"CONSOLE_MAILBOX_{name.upper()}"

    def fail(message: str) -> NoReturn:
        raise ValueError(f"{setting}: {message}")

    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        fail("an IMAP mailbox is a URL that starts with imaps:// (TLS) or imap://")
    user, password, host, port = credentials(parts, fail, shape="imaps://USER:PASSWORD@HOST/FOLDER",
                                             secret_word="password")
    port = port or DEFAULT_PORTS[scheme]
    if parts.fragment:
        fail("the URL holds a #: a # in the user or password is written %23")
    folder = unquote(parts.path).strip("/") or "INBOX"
    if UNSAFE.search(folder):
        fail("the folder name holds a control character")

    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in CONSOLE_PARAMETERS:  # the console's own (integrations.email.pipeline)
            continue
        if key not in OPTIONS:
            fail(f"unknown option ?{key}=; an IMAP mailbox knows {', '.join(OPTIONS)}")
        if key in options:
            fail(f"?{key}= is given twice")
        options[key] = value.strip()

    after = options.get("move")
    if after is not None:
        if not after or UNSAFE.search(after):
            fail("?move= must name the folder to move stored mails to, such as ?move=Processed")
        if after == folder:
            fail(f"?move= names the folder that is read ({folder}); name another one, such as ?move=Processed")
    poll_text = options.get("poll", "60")
    if not poll_text.isdigit() or not 1 <= int(poll_text) <= MAX_POLL:
        fail(f"?poll= must be the seconds between polls, a whole number from 1 to {MAX_POLL}, not {poll_text!r}")
    starttls = _flag(setting, "starttls", options.get("starttls", "0"))
    if starttls and scheme == "imaps":
        fail("?starttls=1 is for imap:// (plain, then TLS); imaps:// is TLS from the start")
    tls: Tls = "implicit" if scheme == "imaps" else ("starttls" if starttls else "none")
    return ImapMailbox(name=name, host=host, port=port, tls=tls, user=user, password=password, folder=folder,
                       after=after, poll_seconds=int(poll_text), idle=_flag(setting, "idle", options.get("idle", "1")),
                       insecure=not _flag(setting, "verify", options.get("verify", "1")))


class Sink(Protocol):
    """Where the mails go: the domain side (integrations.email.pipeline) implements it."""

    async def cursor(self, mailbox: str) -> tuple[int | None, int]:
        """(UIDVALIDITY, highest UID stored) of this mailbox; (None, 0) the first time."""

    async def store(self, mailbox: str, uidvalidity: int, uid: int, raw: bytes) -> None:
        """Store the mail and advance the cursor to `uid` in one transaction. Idempotent (the same
        Message-ID in one mailbox is stored once). Raises when it could not store (e.g. the
        database is down): then the poller retries later and does not flag the mail."""

    async def resync(self, mailbox: str, uidvalidity: int) -> None:
        """The server's UIDVALIDITY changed: the cursor becomes (uidvalidity, 0)."""

    async def advance(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        """Move the cursor to `uid` without storing anything (the read mails a first read skips)."""


@dataclass
class MailboxState:
    """How a mailbox's poller is doing, for /readyz and /metrics.

    `state` is what it does now: connecting, idle (waiting in IDLE), polling (waiting for the next
    poll), fetching, failing (the last attempt failed; it retries with backoff), off (not running).
    `last_error` is the latest failure, kept after a recovery so that an operator can still see
    what happened; `state` says whether it is failing now. `backlog` is what the last search found
    above the cursor and is not stored yet; `stored` and `failures` count since the start.
    """

    state: State = "off"
    last_fetch_at: datetime | None = None  # the end of the last complete pass, UTC
    last_error: str | None = None
    backlog: int = 0
    stored: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"state": self.state, "last_fetch_at": self.last_fetch_at.isoformat() if self.last_fetch_at else None,
                "last_error": self.last_error, "backlog": self.backlog, "stored": self.stored,
                "failures": self.failures}


class ImapError(Exception):
    """The server answered NO or BAD, or something the poller cannot work with."""


class _SinkFailed(Exception):
    """The sink raised; already logged and counted. The pass stops, the connection stays."""


def _quoted(text: str) -> str:
    """An IMAP quoted string (RFC 3501 section 4.3)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _folder_arg(name: str) -> str:
    """A folder name as IMAP wants it: modified UTF-7 (RFC 3501 section 5.1.3), quoted. Printable
    ASCII stays as it is (& becomes &-); any other run becomes &<base64 of its UTF-16>-."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            encoded = base64.b64encode("".join(run).encode("utf-16-be")).decode("ascii").rstrip("=")
            out.append("&" + encoded.replace("/", ",") + "-")
            run.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    flush()
    return _quoted("".join(out))


def _uid_set(uids: list[int]) -> str:
    """Sorted UIDs as an IMAP sequence set, runs written as ranges: [1, 2, 3, 7] -> '1:3,7'."""
    parts: list[str] = []
    start = previous = uids[0]
    for uid in [*uids[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        parts.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(parts)


def _fetched(lines: list[Any]) -> dict[int, tuple[int | None, bytes | None]]:
    """UID -> (RFC822.SIZE, body) from a UID FETCH's response lines.

    aioimaplib hands a FETCH back as lines: b'12 FETCH (UID 40 RFC822.SIZE 51 BODY[] {51}', the
    literal (the mail's bytes) as a bytearray of its own, then b')'; the last line is the tagged
    status text. Items may come in any order, so each message's non-literal lines are read
    together. A message without a literal has no body (None).
    """
    found: dict[int, tuple[int | None, bytes | None]] = {}
    text: bytes | None = None
    body: bytes | None = None

    def finish() -> None:
        if text is None:
            return
        uid = _FETCH_UID.search(text)
        size = _FETCH_SIZE.search(text)
        if uid:
            found[int(uid.group(1))] = (int(size.group(1)) if size else None, body)

    for line in lines[:-1]:
        if isinstance(line, bytearray):
            if text is not None and body is None:
                body = bytes(line)
        elif isinstance(line, bytes):
            if _FETCH_START.match(line):
                finish()
                text, body = line, None
            elif text is not None:
                text += b" " + line
    finish()
    return found


def _batches(sizes: list[tuple[int, int]]) -> list[list[int]]:
    """Split (UID, size) into UID lists of at most BATCH mails and BATCH_BYTES bytes each."""
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for uid, size in sizes:
        if current and (len(current) >= BATCH or total + size > BATCH_BYTES):
            batches.append(current)
            current, total = [], 0
        current.append(uid)
        total += size
    if current:
        batches.append(current)
    return batches


class ImapPoller:
    """Reads one mailbox into the sink until cancelled (see the module's docstring).

    `run` is the long-lived task; `fetch_once` does one pass on a connection of its own (made or
    reused) and is what tests and the benchmark drive. Use one or the other on a poller, not both
    at once. `backoff_first`/`backoff_max` may be lowered on an instance (tests).
    """

    backoff_first = 1.0
    backoff_max = 300.0

    def __init__(self, mailbox: ImapMailbox, sink: Sink, *, timeout: float = 30) -> None:
        self.mailbox = mailbox
        self.sink = sink
        self.timeout = timeout
        self.state = MailboxState()
        self._client: Any = None
        self._lost: asyncio.Event | None = None
        self._repaired = False  # this connection marked what an earlier one stored but did not mark
        self._step = "connecting"
        self._attempt = 0  # failures in a row, for the backoff

    # -- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the mailbox until cancelled; never returns otherwise, never raises."""
        box = self.mailbox
        log.info("IMAP mailbox %s: reading %s, new mail %s", box.name, box.display,
                 f"moved to {box.after}" if box.after else "flagged \\Seen once stored")
        try:
            while True:
                try:
                    await self._connect_if_needed()
                    complete = await self._pass()
                    await self._wait(self.mailbox.poll_seconds if complete
                                     else min(self._next_delay(), self.mailbox.poll_seconds))
                except Exception as exc:  # whatever it was, the poller goes on
                    delay = self._next_delay()
                    self._failed(exc, f"; trying again in {delay:.0f} s")
                    await asyncio.sleep(delay)
        finally:
            self._drop()
            self.state.state = "off"

    async def fetch_once(self) -> int:
        """One pass: connect (or reuse the connection), store what is new, mark it; the number of
        mails stored. A store that raised is logged and counted in the state, not raised (the
        pass just stops there); a connection or server error is, after it was logged and counted
        and the connection dropped."""
        before = self.state.stored
        try:
            await self._connect_if_needed()
            await self._pass()
        except Exception as exc:
            self._failed(exc, "")
            raise
        except BaseException:  # cancelled mid-command: the connection is in no state to be reused
            self._drop()
            raise
        return self.state.stored - before

    async def close(self) -> None:
        """Log out, if connected, and drop the connection (after fetch_once; run does it itself)."""
        client, lost = self._client, self._lost
        if client is not None and lost is not None and not lost.is_set():
            try:
                await self._call("logging out", client.logout(), limit=min(self.timeout, 5))
            except Exception as exc:
                log.debug("IMAP mailbox %s: logout failed: %s", self.mailbox.name, self._describe(exc))
        self._drop()
        self.state.state = "off"

    def _next_delay(self) -> float:
        delay = min(self.backoff_max, self.backoff_first * 2.0 ** min(self._attempt, 30))
        self._attempt += 1
        return delay * random.uniform(0.75, 1.25)

    # -- failures ----------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """The text as one safe line, without the password (in any of the forms it was sent or
        written in). A password of under 4 characters is not searched for: it would blank out
        parts of ordinary words."""
        password = self.mailbox.password
        if len(password) >= 4:
            for form in (_quoted(password), password, quote(password, safe="")):
                text = text.replace(form, "***")
        text = safe(text)
        return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, aioimaplib.CommandTimeout | TimeoutError):
            detail = f"no answer within {self.timeout:g} s"  # a CommandTimeout's text is the command
        elif isinstance(exc, ImapError):
            detail = str(exc)
        else:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return self._scrub(f"{self._step}: {detail}")

    def _failed(self, exc: Exception, then: str) -> None:
        """A connection or server failure: log it, show it, drop the connection."""
        self._drop()
        message = self._describe(exc)
        self.state.state = "failing"
        self.state.last_error = message
        self.state.failures += 1
        expected = isinstance(exc, OSError | TimeoutError | ImapError | aioimaplib.AioImapException)
        log.warning("IMAP mailbox %s: %s%s", self.mailbox.name, message, then, exc_info=None if expected else exc)

    def _sink_failed(self, what: str, exc: Exception) -> None:
        """The sink raised (the database is away, say): the mail stays on the server as it was.
        The traceback is logged with the first failure in a row, not with each retry."""
        message = self._scrub(f"{what}: {type(exc).__name__}: {exc}")
        first = self.state.state != "failing"
        self.state.state = "failing"
        self.state.last_error = message
        self.state.failures += 1
        log.error("IMAP mailbox %s: %s; the mail stays on the server as it is and is tried again",
                  self.mailbox.name, message, exc_info=exc if first else None)

    # -- the connection ----------------------------------------------------------------------------

    async def _call(self, step: str, awaitable: Awaitable[T], limit: float | None = None) -> T:
        """Await one IMAP exchange, giving up when the connection closes or after `limit` seconds
        (the poller's timeout and 5 s by default).

        aioimaplib leaves a command waiting for its answer when the server goes away; this waits
        for the answer or the connection's closed-event, whichever comes first.
        """
        self._step = step
        lost = self._lost
        if lost is None or lost.is_set():
            raise ConnectionError("the connection is closed")
        task = asyncio.ensure_future(awaitable)
        closed = asyncio.ensure_future(lost.wait())
        try:
            done, _ = await asyncio.wait({task, closed}, timeout=limit or self.timeout + 5,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not task.done():
                task.cancel()
        if task in done:
            return task.result()
        if closed in done:
            raise ConnectionError("the server closed the connection")
        raise TimeoutError

    def _ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.mailbox.insecure:  # ?verify=0, documented as for self-signed test servers only
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _connect_if_needed(self) -> None:
        if self._client is not None and self._lost is not None and not self._lost.is_set():
            return
        self._drop()
        box = self.mailbox
        if self.state.state != "failing":
            self.state.state = "connecting"
        lost = asyncio.Event()
        context = self._ssl_context() if box.tls != "none" else None
        self._client = aioimaplib.IMAP4(host=box.host, port=box.port, timeout=self.timeout,
                                        conn_lost_cb=lambda exc: lost.set(),
                                        ssl_context=context if box.tls == "implicit" else None)
        self._lost = lost
        self._repaired = False
        client = self._client
        await self._call(f"connecting to {box.host}:{box.port}", client.wait_hello_from_server())
        if box.tls == "starttls":
            assert context is not None
            await self._starttls(context)
        response = await self._call(f"logging in as {box.user}", client.login(_quoted(box.user), box.password))
        self._check(response)
        # The capabilities LOGIN returned are merged by aioimaplib into those from before login;
        # asking again gives the logged-in session's own (IDLE, MOVE, UIDPLUS).
        await self._call("asking the server's capabilities", client.protocol.capability())
        how = (f"IDLE, and a poll every {box.poll_seconds} s" if self._use_idle()
               else f"a poll every {box.poll_seconds} s" + ("" if not box.idle else " (the server offers no IDLE)"))
        log.info("IMAP mailbox %s: connected to %s:%s as %s; waiting for mail with %s", box.name, box.host,
                 box.port, box.user, how)

    async def _starttls(self, context: ssl.SSLContext) -> None:
        """STARTTLS (RFC 3501 6.2.1), which aioimaplib does not offer: the command, then the TLS
        handshake on the same connection, then the capabilities again (they may change)."""
        client = self._client
        protocol = client.protocol
        if not client.has_capability("STARTTLS"):
            raise ImapError("the server does not offer STARTTLS; use imaps:// if it offers TLS on its own port")
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        self._check(await self._call("STARTTLS", protocol.execute(command)))
        loop = asyncio.get_running_loop()
        protocol.transport = await self._call(
            "the TLS handshake after STARTTLS",
            loop.start_tls(protocol.transport, protocol, context, server_hostname=self.mailbox.host))
        await self._call("asking the server's capabilities", protocol.capability())

    def _check(self, response: Any) -> None:
        if response.result != "OK":
            last = response.lines[-1] if response.lines else b""
            text = bytes(last).decode("utf-8", "replace") if isinstance(last, bytes | bytearray) else str(last)
            raise ImapError(f"the server answered {response.result} {text}".rstrip())

    def _use_idle(self) -> bool:
        return self.mailbox.idle and self._client is not None and bool(self._client.has_capability("IDLE"))

    def _drop(self) -> None:
        """Close the connection without a word to the server, and everything aioimaplib left running."""
        client, self._client, self._lost = self._client, None, None
        if client is None:
            return
        waiter = getattr(client, "_idle_waiter", None)
        if waiter is not None:
            waiter.cancel()
        for task in [*client.tasks, *client.protocol.tasks]:
            task.cancel()
        connecting = getattr(client, "_client_task", None)
        if connecting is not None:
            if not connecting.done():
                connecting.cancel()
            elif not connecting.cancelled():
                connecting.exception()  # seen here, so asyncio does not report it as never retrieved
        if client.protocol.transport is not None:
            client.protocol.transport.close()

    # -- one pass ----------------------------------------------------------------------------------

    async def _pass(self) -> bool:
        """Store what is above the cursor, in UID order, marking each batch once stored. False when
        the sink raised (the pass stopped at that mail)."""
        box = self.mailbox
        if self.state.state != "failing":
            self.state.state = "fetching"
        validity = await self._select()
        try:
            known, last = await self._sink("reading the cursor", self.sink.cursor(box.name))
            if known is not None and known != validity:
                log.warning("IMAP mailbox %s: the server's UIDVALIDITY of %s changed from %d to %d (the folder "
                            "was rebuilt or restored): reading it again from UID 1; mails stored before are "
                            "recognised by their Message-ID and not stored twice", box.name, box.folder, known,
                            validity)
                await self._sink("resetting the cursor", self.sink.resync(box.name, validity))
                last = 0
            if not self._repaired:
                await self._mark_leftovers(last)
                self._repaired = True
            if last == 0 and not box.after:
                last = await self._first_read(validity)
            # Until a search finds nothing new: a mail that came in during the pass is fetched now,
            # not after the next poll (a server reports it in the answer to some command of the
            # pass, and aioimaplib drops such reports, so the IDLE after it would not hear of it).
            while uids := [uid for uid in await self._search(f"UID {last + 1}:*", "searching for new mail")
                           if uid > last]:  # "UID n:*" also finds the highest UID when that is below n
                self.state.backlog = len(uids)
                for start in range(0, len(uids), BATCH):
                    chunk = uids[start:start + BATCH]
                    sizes = await self._fetch(chunk, SIZES, "reading the sizes of new mail")
                    for uid in chunk:
                        if uid not in sizes:
                            await self._vanished(uid)  # before the cursor passes it
                    for batch in _batches([(uid, sizes[uid][0] or 0) for uid in chunk if uid in sizes]):
                        await self._store_batch(validity, batch)
                last = uids[-1]
            self.state.backlog = 0
        except _SinkFailed:
            return False
        self.state.last_fetch_at = datetime.now(UTC)
        self.state.state = "idle" if self._use_idle() else "polling"
        self._attempt = 0
        return True

    async def _first_read(self, validity: int) -> int:
        """The first read of a folder (or the first after the server renumbered it) takes only its
        unread mails: those are the work; what was read on the server before was dealt with there,
        and a mailbox with years of history must not flood the queues. Mails the console stored
        before were flagged \\Seen by it, so after a renumbering they are skipped too. The cursor
        then moves past the whole folder. In move mode every mail in the folder is unprocessed,
        so everything is read. Returns the new cursor. When the sink raises, the pass stops and the
        next one reads from the cursor of the mails stored so far."""
        box = self.mailbox
        everything = await self._search("UID 1:*", "reading the folder")
        unread = await self._search("UID 1:* UNSEEN", "searching for unread mail")
        if everything and len(unread) < len(everything):
            log.info("IMAP mailbox %s: first read of %s: %d unread mail%s taken, %d read one%s left as they are",
                     box.name, box.folder, len(unread), "" if len(unread) == 1 else "s",
                     len(everything) - len(unread), "" if len(everything) - len(unread) == 1 else "s")
        self.state.backlog = len(unread)
        for start in range(0, len(unread), BATCH):
            chunk = unread[start:start + BATCH]
            sizes = await self._fetch(chunk, SIZES, "reading the sizes of unread mail")
            for batch in _batches([(uid, sizes[uid][0] or 0) for uid in chunk if uid in sizes]):
                await self._store_batch(validity, batch)
        if not everything:
            return 0
        await self._sink("moving the cursor past the read mails", self.sink.advance(box.name, validity, everything[-1]))
        return everything[-1]

    async def _sink(self, what: str, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except Exception as exc:
            self._sink_failed(what, exc)
            raise _SinkFailed from exc

    async def _select(self) -> int:
        """SELECT the folder (on every pass: it is how a changed UIDVALIDITY shows); its UIDVALIDITY."""
        folder = self.mailbox.folder
        response = await self._call(f"selecting the folder {folder}", self._client.select(_folder_arg(folder)))
        self._check(response)
        for line in response.lines:
            found = _UIDVALIDITY.search(bytes(line)) if isinstance(line, bytes | bytearray) else None
            if found:
                return int(found.group(1))
        raise ImapError(f"the server sent no UIDVALIDITY for the folder {folder}")

    async def _search(self, criteria: str, step: str) -> list[int]:
        response = await self._call(step, self._client.uid_search(criteria, charset=None))
        self._check(response)
        uids: set[int] = set()
        for line in response.lines[:-1]:
            if isinstance(line, bytes | bytearray):
                uids.update(int(word) for word in bytes(line).split() if word.isdigit())
        return sorted(uids)

    async def _fetch(self, uids: list[int], items: str, step: str) -> dict[int, tuple[int | None, bytes | None]]:
        # No overall deadline: aioimaplib's own timeout is reset by every piece that arrives, so a
        # big mail on a slow line is fine and a silent server still fails.
        response = await self._call(step, self._client.uid("fetch", _uid_set(uids), items), limit=24 * 3600)
        self._check(response)
        return _fetched(response.lines)

    async def _store_batch(self, validity: int, batch: list[int]) -> None:
        box = self.mailbox
        fetched = await self._fetch(batch, BODY, f"fetching UIDs {_uid_set(batch)}")
        stored: list[int] = []
        for uid in batch:
            if uid not in fetched:
                await self._vanished(uid)
                continue
            raw = fetched[uid][1]
            if raw is None:
                raise ImapError(f"the server sent UID {uid} without its body")
            try:
                await self.sink.store(box.name, validity, uid, raw)
            except Exception as exc:
                self._sink_failed(f"storing UID {uid} ({len(raw)} bytes)", exc)
                if stored:
                    await self._mark(stored)
                raise _SinkFailed from exc
            stored.append(uid)
            self.state.stored += 1
            self.state.backlog = max(0, self.state.backlog - 1)
        if stored:
            await self._mark(stored)
            log.info("IMAP mailbox %s: stored %d new mail%s (UID %s)", box.name, len(stored),
                     "" if len(stored) == 1 else "s", _uid_set(stored))

    async def _vanished(self, uid: int) -> None:
        """A UID that the search found and the fetch did not: gone, or not, from the server."""
        if uid in await self._search(f"UID {uid}", f"checking UID {uid}"):
            raise ImapError(f"the server did not send UID {uid}, which is in the folder; it is tried again")
        self.state.backlog = max(0, self.state.backlog - 1)
        log.warning("IMAP mailbox %s: UID %d was removed from %s by another program before it could be fetched; "
                    "there is nothing to store", self.mailbox.name, uid, self.mailbox.folder)

    async def _mark_leftovers(self, last: int) -> None:
        """Mark what the cursor says is stored but an earlier connection did not mark (it ended
        between the store and the flag or move)."""
        if last <= 0:
            return
        criteria = f"UID 1:{last}" if self.mailbox.after else f"UID 1:{last} UNSEEN"
        uids = [uid for uid in await self._search(criteria, "looking for stored mails not yet marked") if uid <= last]
        if not uids:
            return
        log.info("IMAP mailbox %s: %d mail%s stored before but not yet %s; doing that now", self.mailbox.name,
                 len(uids), "" if len(uids) == 1 else "s",
                 f"moved to {self.mailbox.after}" if self.mailbox.after else "flagged \\Seen")
        for start in range(0, len(uids), BATCH):
            await self._mark(uids[start:start + BATCH])

    async def _mark(self, uids: list[int]) -> None:
        """Flag stored mails \\Seen, or move them (MOVE, or COPY + \\Deleted + EXPUNGE without it)."""
        client = self._client
        uid_set = _uid_set(uids)
        after = self.mailbox.after
        if after is None:
            self._check(await self._call(f"flagging UIDs {uid_set} \\Seen", client.uid("store", uid_set, SEEN)))
            return
        target = _folder_arg(after)
        if client.has_capability("MOVE"):
            await self._to_folder(f"moving UIDs {uid_set} to {after}", "move", uid_set, target)
            return
        await self._to_folder(f"copying UIDs {uid_set} to {after}", "copy", uid_set, target)
        self._check(await self._call(f"flagging UIDs {uid_set} \\Deleted", client.uid("store", uid_set, DELETED)))
        if client.has_capability("UIDPLUS"):
            self._check(await self._call(f"expunging UIDs {uid_set}", client.uid("expunge", uid_set)))
        else:  # also removes what another program flagged \Deleted in this folder: EXPUNGE takes all
            self._check(await self._call(f"expunging UIDs {uid_set}", client.expunge()))

    async def _to_folder(self, step: str, command: str, uid_set: str, target: str) -> None:
        """UID MOVE or UID COPY; a missing target folder ([TRYCREATE]) is created once."""
        client = self._client
        response = await self._call(step, client.uid(command, uid_set, target))
        if response.result == "NO" and b"TRYCREATE" in bytes(response.lines[-1]):
            log.info("IMAP mailbox %s: creating the folder %s", self.mailbox.name, self.mailbox.after)
            self._check(await self._call(f"creating the folder {self.mailbox.after}", client.create(target)))
            response = await self._call(step, client.uid(command, uid_set, target))
        self._check(response)

    # -- waiting -----------------------------------------------------------------------------------

    async def _wait(self, seconds: float) -> None:
        """Until new mail may be there: IDLE where offered, else a sleep; at most `seconds`."""
        if self._use_idle():
            await self._idle(seconds)
            return
        lost = self._lost
        assert lost is not None
        self._step = "waiting for the next poll"
        try:
            await asyncio.wait_for(lost.wait(), seconds)
        except TimeoutError:
            return
        raise ConnectionError("the server closed the connection")

    async def _idle(self, seconds: float) -> None:
        """IDLE (RFC 2177) until the server reports a new mail, or `seconds` are over (at most 29
        minutes), then DONE. Other news (flags, expunges) does not end the wait."""
        client, lost = self._client, self._lost
        assert lost is not None
        queue = client.protocol.idle_queue
        while not queue.empty():  # pushes that came in after the last DONE
            queue.get_nowait()
        idling = await self._call("starting IDLE", client.idle_start(timeout=IDLE_RENEW))
        self._step = "waiting in IDLE"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(seconds, IDLE_RENEW)
        closed = asyncio.ensure_future(lost.wait())
        push: asyncio.Future[Any] | None = None
        try:
            while (remaining := deadline - loop.time()) > 0:
                push = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({push, closed}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if push not in done:
                    if closed in done:
                        raise ConnectionError("the server closed the connection")
                    break
                lines = [bytes(line) for line in push.result() if isinstance(line, bytes | bytearray)]
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                bye = next((line for line in lines if line.startswith(b"BYE")), None)
                if bye is not None:
                    raise ConnectionError(f"the server ended the session: {bye.decode('utf-8', 'replace')}")
                if any(line.endswith(b"EXISTS") for line in lines):
                    break
        finally:
            closed.cancel()
            if push is not None and not push.done():
                push.cancel()
        if client.has_pending_idle():
            client.idle_done()
        self._check(await self._call("ending IDLE", idling))
