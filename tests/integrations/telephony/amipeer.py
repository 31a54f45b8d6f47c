"""A scripted Asterisk manager interface for the tests: a real asyncio TCP server on 127.0.0.1.

It greets like Asterisk, answers Login, Ping, CoreShowChannels and QueueStatus (from the
snapshot the test sets), and plays transcripts to every logged-in session: text files under
transcripts/ in the shape of Asterisk's documentation, one `Key: Value` per line, events apart
by an empty line. In a transcript `# ...` lines are comments and `--- name` starts a step that a
test plays on its own, so it can look at the console between two steps.

`stop()` ends the server and every connection (Asterisk restarting); `start()` again serves on
the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path

from integrations.telephony.ami import AmiUrl

TRANSCRIPTS = Path(__file__).parent / "transcripts"
SECRET = "s3cret-Passw0rd"
Message = dict[str, str]


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = "") -> None:
    """Wait until `check` holds (polled), failing after `timeout` seconds: the tests assert on
    state, never on how long it took."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        await asyncio.sleep(0.02)


def load(name: str) -> dict[str, list[Message]]:
    """A transcript's steps, each a list of messages (the part before the first step is '')."""
    steps: dict[str, list[Message]] = {"": []}
    current = steps[""]
    message: Message = {}
    for raw in (TRANSCRIPTS / f"{name}.txt").read_text(encoding="utf-8").splitlines():
        line = raw.rstrip()
        if line.startswith("#"):
            continue
        if line.startswith("--- "):
            if message:
                current.append(message)
                message = {}
            current = steps.setdefault(line[4:].strip(), [])
            continue
        if not line:
            if message:
                current.append(message)
                message = {}
            continue
        key, _, value = line.partition(":")
        message[key.strip()] = value.strip()
    if message:
        current.append(message)
    return steps


def wire(message: Mapping[str, str]) -> bytes:
    return ("".join(f"{key}: {value}\r\n" for key, value in message.items()) + "\r\n").encode()


class _Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.logged_in = False

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()


class AmiPeer:
    """One scripted Asterisk (see the module's docstring)."""

    def __init__(self, *, username: str = "console", secret: str = SECRET,
                 banner: str = "Asterisk Call Manager/9.0.0", tls: ssl.SSLContext | None = None) -> None:
        self.username = username
        self.secret = secret
        self.banner = banner
        self.tls = tls
        self.port = 0
        self.answer_pings = True
        self.channels: list[Message] = []  # what CoreShowChannels lists
        self.queue_status: list[Message] = []  # QueueParams, QueueMember and QueueEntry events
        self.actions: list[Message] = []  # every action received, in order
        self.logins = 0  # successful logins
        self.refused = 0  # refused logins
        self.sessions: list[_Session] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the server and every connection, as a stopping Asterisk does."""
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.writer.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self._server = None
        self.sessions.clear()

    def url(self, secret: str | None = None) -> AmiUrl:
        return AmiUrl(host="127.0.0.1", port=self.port, username=self.username,
                      secret=self.secret if secret is None else secret, tls=self.tls is not None)

    def snapshot(self, messages: Iterable[Message]) -> None:
        """What CoreShowChannels and QueueStatus list from now on: the CoreShowChannel events given
        are the channels, the Queue* ones the queue status."""
        messages = list(messages)
        self.channels = [m for m in messages if m.get("Event") == "CoreShowChannel"]
        self.queue_status = [m for m in messages if m.get("Event", "").startswith("Queue")]

    # -- serving -----------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        session = _Session(reader, writer)
        self.sessions.append(session)
        try:
            await session.send(f"{self.banner}\r\n".encode())
            while True:
                action = await self._read(reader)
                if action is None:
                    return
                self.actions.append(action)
                if not await self._answer(session, action):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            return
        finally:
            self._handlers.discard(task)
            if session in self.sessions:
                self.sessions.remove(session)
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Message | None:
        message: Message = {}
        while True:
            line = await reader.readline()
            if not line:
                return None
            text = line.decode().strip()
            if not text:
                if message:
                    return message
                continue
            key, _, value = text.partition(":")
            message[key.strip()] = value.strip()

    async def _answer(self, session: _Session, action: Message) -> bool:
        """Answer one action; False when the connection is to close."""
        name = action.get("Action", "").lower()
        reply: Message = {"Response": "Success"}
        if "ActionID" in action:
            reply["ActionID"] = action["ActionID"]
        if name == "login":
            if action.get("Username") != self.username or action.get("Secret") != self.secret:
                self.refused += 1
                await session.send(wire({"Response": "Error", **_id(action), "Message": "Authentication failed"}))
                return False  # Asterisk hangs up on a refused login
            self.logins += 1
            session.logged_in = True
            await session.send(wire({**reply, "Message": "Authentication accepted"})
                               + wire({"Event": "FullyBooted", "Privilege": "system,all", "Uptime": "1204",
                                       "LastReload": "1204", "Status": "Fully Booted"}))
        elif not session.logged_in:
            await session.send(wire({"Response": "Error", **_id(action), "Message": "Permission denied"}))
        elif name == "ping":
            if self.answer_pings:
                await session.send(wire({**reply, "Ping": "Pong", "Timestamp": f"{time.time():.6f}"}))
        elif name == "coreshowchannels":
            await self._listing(session, action, "Channels will follow", self.channels, "CoreShowChannelsComplete")
        elif name == "queuestatus":
            await self._listing(session, action, "Queue status will follow", self.queue_status,
                                "QueueStatusComplete")
        else:
            await session.send(wire({"Response": "Error", **_id(action), "Message": "Invalid/unknown command"}))
        return True

    async def _listing(self, session: _Session, action: Message, text: str, items: list[Message],
                       complete: str) -> None:
        data = wire({"Response": "Success", **_id(action), "EventList": "start", "Message": text})
        for item in items:
            data += wire({"Event": item["Event"], **_id(action), **{k: v for k, v in item.items() if k != "Event"}})
        data += wire({"Event": complete, **_id(action), "EventList": "Complete", "ListItems": str(len(items))})
        await session.send(data)

    # -- playing -----------------------------------------------------------------------------------

    async def send(self, messages: Iterable[Mapping[str, str]]) -> None:
        """Send events to every logged-in session."""
        data = b"".join(wire(message) for message in messages)
        await self.send_raw(data)

    async def send_raw(self, data: bytes) -> None:
        for session in list(self.sessions):
            if session.logged_in:
                await session.send(data)

    async def play(self, transcript: str, *steps: str) -> None:
        """Send the events of the named steps of a transcript (all of it when none are named)."""
        loaded = load(transcript)
        for step in steps or tuple(loaded):
            await self.send(loaded[step])

    async def logged_in(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until `count` sessions logged in since the peer was made."""
        deadline = time.monotonic() + timeout
        while self.logins < count:
            assert time.monotonic() < deadline, f"{self.logins} logins, waited for {count}"
            await asyncio.sleep(0.01)


def _id(action: Message) -> Message:
    return {"ActionID": action["ActionID"]} if "ActionID" in action else {}
