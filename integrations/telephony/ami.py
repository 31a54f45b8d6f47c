"""The Asterisk Manager Interface (AMI): a small asyncio client of its protocol.

    ami://USER:SECRET@HOST:5038                       plain TCP (port 5038 when none is given)
    amis://USER:SECRET@HOST:5039                      TLS (port 5039 when none is given)
    amis://USER:SECRET@HOST?cafile=/etc/ssl/pbx.pem   TLS, trusting the CA (or the certificate) in that file
    amis://USER:SECRET@HOST?verify=off                TLS without checking the certificate (a test PBX only)

USER and SECRET are a [user] of manager.conf and its `secret`; a / ? # @ or % in them is written
percent-encoded (%2F %3F %23 %40 %25).

Our own reader, not a library's: panoramisk, the one asyncio AMI library, has had no release
since 2021 and targets Python 3.4 and 3.5. The protocol is small:

* Asterisk greets with one line, `Asterisk Call Manager/X.Y.Z`.
* A message is `Key: Value` lines ended by an empty line (lines end with CRLF; a bare LF is taken
  too). A message with `Response` answers an action, one with `Event` reports something.
* An action carries an `ActionID`, and its `Response` carries it back. A listing action (such as
  CoreShowChannels or QueueStatus) answers `Success`, then sends its items as events with the
  same ActionID, ended by an event whose name ends with `Complete`.

What a peer may do to us is bounded: a line longer than MAX_LINE, a message of more than
MAX_KEYS keys, or a line without a colon is a ProtocolError that ends the connection (the caller
reconnects), never a crash; the reader's buffer is bounded (asyncio's StreamReader limit), and
events the caller does not take fast enough end the connection once MAX_BACKLOG wait. The secret
is sent in the Login action only, never logged, never in an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import parse_qsl, quote, urlsplit

from console.logs import UNSAFE, safe
from integrations.urls import credentials

log = logging.getLogger("integrations.telephony.ami")

Message = dict[str, str]

DEFAULT_PORTS = {"ami": 5038, "amis": 5039}
OPTIONS = ("verify", "cafile")
BANNER = "Asterisk Call Manager"
MAX_LINE = 8 * 1024  # bytes in one line, its line break not counted
MAX_KEYS = 200  # keys in one message
MAX_BACKLOG = 10_000  # events read but not yet taken by the caller
MAX_LIST = 100_000  # items of one listing action's answer
_TRUE = ("1", "on", "yes", "true")
_FALSE = ("0", "off", "no", "false")


class AmiError(Exception):
    """Something on the connection failed; the text says what, for a log line and the state page."""


class ProtocolError(AmiError):
    """The peer sent what the protocol does not allow (or more of it than we take)."""


class ConnectionLost(AmiError):
    """The connection ended: closed by the peer, silent for too long, or closed by us."""


class ActionFailed(AmiError):
    """Asterisk answered an action with `Response: Error`; the text is its Message."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"Asterisk refused {action}: {message}")
        self.action = action
        self.message = message


class LoginFailed(ActionFailed):
    """Asterisk refused the user name or secret (or the address it is asked from)."""


@dataclass(frozen=True)
class AmiUrl:
    """Where the manager interface is and whom to log in as (see the module's docstring)."""

    host: str
    port: int
    username: str
    secret: str = field(repr=False)
    tls: bool = False
    verify: bool = True  # TLS: check the certificate and the host name
    cafile: str | None = None  # TLS: trust the CA (or the self-signed certificate) in this file

    @property
    def display(self) -> str:
        """The URL without the secret, for log lines and the state pages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'amis' if self.tls else 'ami'}://{quote(self.username, safe='')}@{host}:{self.port}"


def _flag(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"CONSOLE_ASTERISK_URL: ?verify= must be on or off, not {safe(value)!r}")


def parse_url(url: str) -> AmiUrl:
    """Read an Asterisk manager URL. ValueError says what is wrong in words a person can act on;
    it never holds the secret, nor any part of the URL where a secret could be."""

    def fail(message: str) -> NoReturn:
        raise ValueError(f"CONSOLE_ASTERISK_URL: {message}")

    shape = "ami://USER:SECRET@HOST:5038"
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        fail(f"an Asterisk manager URL starts with ami:// (plain TCP) or amis:// (TLS), such as {shape}")
    username, secret, host, port = credentials(
        parts, fail, shape=shape, secret_word="secret", user_hint="; the [user] of manager.conf",
        secret_hint="; the secret of that user in manager.conf",
        port_hint=" (Asterisk's default is 5038, 5039 for TLS)")
    if parts.path not in ("", "/"):
        fail(f"the URL ends after the host and port ({shape}); options go after a ?, such as ?cafile=/path")
    if parts.fragment:
        fail("the URL holds a #: a # in the user or secret is written %23")
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in OPTIONS:
            fail(f"unknown option ?{safe(key)}=; an Asterisk manager URL knows {', '.join(OPTIONS)}")
        if key in options:
            fail(f"?{key}= is given twice")
        options[key] = value.strip()
    tls = scheme == "amis"
    if options and not tls:
        fail("?verify= and ?cafile= are for amis:// (TLS); ami:// is plain TCP")
    verify = _flag(options.get("verify", "on"))
    cafile = options.get("cafile")
    if cafile is not None:
        if not cafile or UNSAFE.search(cafile):
            fail("?cafile= must name the file with the CA certificate (PEM), such as ?cafile=/etc/ssl/pbx-ca.pem")
        if not os.path.isfile(cafile):
            fail(f"?cafile= names {safe(cafile)}, which is not a file this process can read")
    return AmiUrl(host=host, port=port or DEFAULT_PORTS[scheme], username=username, secret=secret, tls=tls,
                  verify=verify, cafile=cafile)


def ssl_context(url: AmiUrl) -> ssl.SSLContext | None:
    if not url.tls:
        return None
    context = ssl.create_default_context(cafile=url.cafile)
    if not url.verify:  # ?verify=off, documented as for a test PBX with a self-signed certificate only
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def encode(fields: Mapping[str, str]) -> bytes:
    """One message as it goes on the wire. A key or value that could end a line is refused: it
    would let a value add keys (or a whole action) of its own."""
    lines = []
    for key, value in fields.items():
        if not key or ":" in key or UNSAFE.search(key) or UNSAFE.search(value):
            raise ValueError(f"AMI field {safe(key)!r} holds a colon or a control character")
        lines.append(f"{key}: {value}\r\n")
    return ("".join(lines) + "\r\n").encode("utf-8")


async def _line(reader: asyncio.StreamReader) -> bytes | None:
    """One line without its line break; None at the end of the stream (ConnectionLost when it
    ends inside a line), ProtocolError when it is longer than MAX_LINE."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ConnectionLost("Asterisk closed the connection in the middle of a line") from None
        return None
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"Asterisk sent a line longer than {MAX_LINE} bytes") from None
    line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    if len(line) > MAX_LINE:
        raise ProtocolError(f"Asterisk sent a line longer than {MAX_LINE} bytes")
    return line


async def read_message(reader: asyncio.StreamReader) -> Message | None:
    """The next message; None when the stream ended between messages. Empty lines before a message
    are skipped. A key given twice keeps its first value."""
    message: Message = {}
    keys = 0
    while True:
        raw = await _line(reader)
        if raw is None:
            if message:
                raise ConnectionLost("Asterisk closed the connection in the middle of a message")
            return None
        text = raw.decode("utf-8", errors="replace")
        if not text.strip():
            if message:
                return message
            continue
        key, colon, value = text.partition(":")
        key = key.strip()
        if not colon or not key:
            raise ProtocolError(f"Asterisk sent a line that is not 'Key: Value': {safe(text[:60])!r}")
        keys += 1
        if keys > MAX_KEYS:
            raise ProtocolError(f"Asterisk sent a message of more than {MAX_KEYS} keys")
        message.setdefault(key, value.strip())


@dataclass
class _Pending:
    """An action sent and not yet answered in full."""

    name: str
    response: asyncio.Future[Message]
    listing: bool
    items: list[Message] = field(default_factory=list)
    complete: asyncio.Future[None] | None = None


class Connection:
    """One logged-in (or logging-in) manager session: actions out, their answers and events in.

    A task of its own reads the connection: answers go to the action that waits for them, events
    queue for `event()`. Whatever ends the connection (the peer closing it, a protocol error, too
    many events waiting) is raised from every action waiting and from `event()` once the events
    read before it were taken.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, banner: str, *,
                 backlog: int = MAX_BACKLOG) -> None:
        self.banner = banner
        self.backlog = backlog
        self._reader = reader
        self._writer = writer
        self._pending: dict[str, _Pending] = {}
        self._events: deque[Message] = deque()
        self._wakeup = asyncio.Event()
        self._error: AmiError | None = None
        self._count = 0
        loop = asyncio.get_running_loop()
        self.last_heard = loop.time()  # loop time of the last message (or of the greeting)
        self._task = loop.create_task(self._read(), name="ami-reader")

    @classmethod
    async def open(cls, url: AmiUrl, *, within: float = 10.0, backlog: int = MAX_BACKLOG) -> Connection:
        """Connect (TLS for amis://) and read Asterisk's greeting, each `within` seconds. The
        buffer of the stream is bounded: a line longer than MAX_LINE is refused, not collected."""
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(url.host, url.port, ssl=ssl_context(url),
                                                           limit=MAX_LINE + 2)
        try:
            async with asyncio.timeout(within):
                greeting = await _line(reader)
            if greeting is None:
                raise ConnectionLost("Asterisk closed the connection before greeting")
            banner = greeting.decode("utf-8", errors="replace").strip()
            if not banner.startswith(BANNER):
                raise ProtocolError(f"the peer is not an Asterisk manager interface: it greeted with "
                                    f"{safe(banner[:60])!r}, not '{BANNER}/...'")
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, banner, backlog=backlog)

    @property
    def closed(self) -> bool:
        return self._error is not None

    # -- reading -----------------------------------------------------------------------------------

    async def _read(self) -> None:
        try:
            while True:
                message = await read_message(self._reader)
                if message is None:
                    raise ConnectionLost("Asterisk closed the connection")
                self.last_heard = asyncio.get_running_loop().time()
                self._take(message)
        except asyncio.CancelledError:
            self._end(ConnectionLost("the connection was closed"))
            raise
        except AmiError as exc:
            self._end(exc)
        except (OSError, ssl.SSLError) as exc:
            self._end(ConnectionLost(f"the connection broke: {type(exc).__name__}: {exc}"))

    def _take(self, message: Message) -> None:
        action_id = message.get("ActionID", "")
        pending = self._pending.get(action_id) if action_id else None
        if "Response" in message:
            if pending is None or pending.response.done():
                log.debug("Asterisk answered an action nobody waits for (%s)", safe(action_id))
                return
            pending.response.set_result(message)
            if not pending.listing or message["Response"].lower() != "success":
                self._pending.pop(action_id, None)
            return
        if "Event" not in message:
            log.debug("Asterisk sent a message that is neither a response nor an event; ignored")
            return
        if pending is not None and pending.listing and pending.complete is not None:
            name = message["Event"]
            if name.endswith("Complete") or message.get("EventList", "").lower() == "complete":
                self._pending.pop(action_id, None)
                if not pending.complete.done():
                    pending.complete.set_result(None)
                return
            if len(pending.items) >= MAX_LIST:
                raise ProtocolError(f"Asterisk's answer to {pending.name} has more than {MAX_LIST} items")
            pending.items.append(message)
            return
        if len(self._events) >= self.backlog:
            raise ProtocolError(f"more than {self.backlog} events from Asterisk wait to be stored (the console "
                                "cannot keep up); reconnecting to catch up")
        self._events.append(message)
        self._wakeup.set()

    def _end(self, error: AmiError) -> None:
        if self._error is None:
            self._error = error
        for pending in self._pending.values():
            for future in (pending.response, pending.complete):
                if future is not None and not future.done():
                    future.set_exception(self._error)
                    future.exception()  # retrieved: an action that gave up waiting leaves no warning
        self._pending.clear()
        self._wakeup.set()

    async def event(self) -> Message:
        """The next event that answers no action; raises what ended the connection once the events
        read before that were taken."""
        while True:
            if self._events:
                return self._events.popleft()
            if self._error is not None:
                raise self._error
            self._wakeup.clear()
            await self._wakeup.wait()

    # -- writing -----------------------------------------------------------------------------------

    async def action(self, name: str, fields: Mapping[str, str] | None = None, *, listing: bool = False,
                     within: float = 10.0) -> tuple[Message, list[Message]]:
        """Send an action; return its response and, for a listing action, the items that followed.

        ActionFailed when Asterisk answers Error; TimeoutError when the answer (all of it) takes
        longer than `within` seconds; the connection's error when it ends meanwhile.
        """
        if self._error is not None:
            raise self._error
        self._count += 1
        action_id = f"console-{self._count}"
        loop = asyncio.get_running_loop()
        pending = _Pending(name, loop.create_future(), listing, complete=loop.create_future() if listing else None)
        self._pending[action_id] = pending
        try:
            async with asyncio.timeout(within):
                await self._send({"Action": name, "ActionID": action_id, **(fields or {})})
                response = await pending.response
                if response.get("Response", "").lower() not in ("success", "pong", "follows"):
                    failed = LoginFailed if name == "Login" else ActionFailed
                    raise failed(name, safe(response.get("Message", "") or response.get("Response", "")))
                if pending.complete is not None:
                    await pending.complete
        finally:
            self._pending.pop(action_id, None)
        return response, pending.items

    async def _send(self, fields: Mapping[str, str]) -> None:
        self._writer.write(encode(fields))
        await self._writer.drain()

    async def login(self, username: str, secret: str, *, within: float = 10.0) -> None:
        """Log in with events on; LoginFailed carries Asterisk's Message (never the secret)."""
        await self.action("Login", {"Username": username, "Secret": secret, "Events": "on"}, within=within)

    async def keepalive(self, ping_seconds: float, silence_seconds: float) -> NoReturn:
        """Ping every `ping_seconds`; raise ConnectionLost once nothing (no answer to a Ping, no
        event) came for `silence_seconds`. Runs until cancelled or the peer goes silent."""
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + ping_seconds
        ping: asyncio.Task[tuple[Message, list[Message]]] | None = None
        try:
            while True:
                now = loop.time()
                silent = now - self.last_heard
                if silent >= silence_seconds:
                    raise ConnectionLost(f"no word from Asterisk for {silent:.0f} s (not even an answer to Ping)")
                if self._error is not None:
                    raise self._error
                if now >= next_ping:
                    if ping is None or ping.done():
                        ping = loop.create_task(self.action("Ping", within=silence_seconds))
                        ping.add_done_callback(_ignore_outcome)
                    next_ping = now + ping_seconds
                await asyncio.sleep(max(0.005, min(next_ping, self.last_heard + silence_seconds) - loop.time()))
        finally:
            if ping is not None:
                ping.cancel()

    async def close(self) -> None:
        """Drop the connection (no Logoff: a connection that may be broken is not waited on)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._end(ConnectionLost("the connection was closed"))
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._writer.wait_closed()


def _ignore_outcome(task: asyncio.Task[tuple[Message, list[Message]]]) -> None:
    """A Ping's answer only counts as word from Asterisk (Connection.last_heard); its failure shows
    through the connection itself."""
    if not task.cancelled():
        task.exception()
