"""The load generator's side: a lean HTTP/1.1 keep-alive client and agent sockets that timestamp frames.

httpx costs about a millisecond of CPU per request; at hundreds of requests a second on a shared
2-core machine that would be the client measuring itself. This client writes a request and reads
a Content-Length (or chunked) answer on kept-alive connections, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from websockets.asyncio.client import ClientConnection, connect

from benchmarks.common import Login


class HttpError(Exception):
    pass


IDLE_SECONDS = 4.0  # uvicorn closes kept-alive connections idle for 5 s; never reuse one that old


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = time.monotonic()

    def close(self) -> None:
        self.writer.close()


class HttpPool:
    """Up to `size` kept-alive connections to one origin; requests wait for a free one."""

    def __init__(self, base: str, size: int = 64) -> None:
        parts = urlsplit(base)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.origin = base.rstrip("/")
        self.size = size
        self._idle: list[_Connection] = []
        self._open = 0
        self._freed = asyncio.Condition()

    async def _acquire(self) -> _Connection:
        async with self._freed:
            now = time.monotonic()
            while self._idle and now - self._idle[0].used > IDLE_SECONDS:
                self._idle.pop(0).close()
                self._open -= 1
            while not self._idle and self._open >= self.size:
                await self._freed.wait()
            if self._idle:
                conn = self._idle.pop()
                if time.monotonic() - conn.used <= IDLE_SECONDS:
                    return conn
                conn.close()
            else:
                self._open += 1
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
        except BaseException:
            async with self._freed:
                self._open -= 1
                self._freed.notify()
            raise
        return _Connection(reader, writer)

    async def _release(self, conn: _Connection | None) -> None:
        async with self._freed:
            if conn is None:
                self._open -= 1
            else:
                conn.used = time.monotonic()
                self._idle.append(conn)
            self._freed.notify()

    async def request(self, method: str, path: str, form: dict[str, str] | None = None,
                      headers: dict[str, str] | None = None,
                      on_send: Callable[[], None] | None = None) -> tuple[int, bytes]:
        """Send one request; `on_send` is called right before its bytes are written."""
        body = urlencode(form).encode() if form is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if form is not None:
            lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        conn = await self._acquire()
        try:
            if on_send is not None:
                on_send()
            conn.writer.write(raw)
            status, payload, keep = await self._read(conn.reader)
        except BaseException:
            conn.close()
            await self._release(None)
            raise
        if keep:
            await self._release(conn)
        else:
            conn.close()
            await self._release(None)
        return status, payload

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        chunked = False
        keep = True
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                keep = False
        if status in (204, 304) or 100 <= status < 200:
            return status, b"", keep  # no body by definition (RFC 9112, 6.3): never wait for one
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            return status, b"".join(parts), keep
        if length is None:
            return status, await reader.read(), False
        return status, await reader.readexactly(length), keep

    async def close(self) -> None:
        async with self._freed:
            for conn in self._idle:
                conn.close()
            self._idle.clear()


class AgentSocket:
    """One agent page's websocket, read continuously; every frame is handed to `on_frame` with its arrival time."""

    def __init__(self, login: Login, ws_base: str, origin: str,
                 on_frame: Callable[[AgentSocket, str, float], None] | None = None, path: str = "/ws") -> None:
        self.login = login
        self.url = ws_base + path
        self.origin = origin
        self.on_frame = on_frame
        self.conn: ClientConnection | None = None
        self.frames = 0
        self.first = asyncio.get_running_loop().create_future()  # the snapshot frame
        self.closed_code: int | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, compression: str | None = "deflate") -> None:
        # Browsers offer permessage-deflate, and uvicorn accepts it: the sockets do too, unless told not to.
        self.conn = await connect(self.url, origin=self.origin,  # type: ignore[arg-type]
                                  additional_headers={"Cookie": self.login.cookie}, max_size=None,
                                  compression=compression, ping_interval=None, open_timeout=60)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.conn is not None
        try:
            async for message in self.conn:
                now = time.perf_counter()
                self.frames += 1
                text = message if isinstance(message, str) else message.decode()
                if not self.first.done():
                    self.first.set_result(text)
                if self.on_frame is not None:
                    self.on_frame(self, text, now)
        except Exception:
            pass
        finally:
            self.closed_code = self.conn.close_code
            if not self.first.done():
                self.first.set_exception(ConnectionError(f"socket closed ({self.closed_code})"))

    async def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.conn.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader


async def open_sockets(logins: list[Login], ws_bases: list[str], origins: list[str], *, parallel: int = 50,
                       on_frame: Callable[[AgentSocket, str, float], None] | None = None,
                       compression: str | None = "deflate",
                       progress: Callable[[int], None] | None = None, path: str = "/ws") -> list[AgentSocket]:
    """Open a socket per login (round-robin over nodes) and wait for each one's first (snapshot) frame.
    `path`: the agent page's socket, or the wallboard's (`/ws?view=wallboard`)."""
    gate = asyncio.Semaphore(parallel)
    done = 0

    async def one(index: int, login: Login) -> AgentSocket:
        nonlocal done
        node = index % len(ws_bases)
        sock = AgentSocket(login, ws_bases[node], origins[node], on_frame, path)
        async with gate:
            for attempt in range(3):
                try:
                    await sock.open(compression)
                    await asyncio.wait_for(sock.first, 60)
                    break
                except (OSError, TimeoutError, ConnectionError):
                    await sock.close()
                    if attempt == 2:
                        raise
                    sock = AgentSocket(login, ws_bases[node], origins[node], on_frame, path)
                    await asyncio.sleep(0.5)
        done += 1
        if progress is not None:
            progress(done)
        return sock

    outcomes = await asyncio.gather(*(one(i, login) for i, login in enumerate(logins)), return_exceptions=True)
    sockets = [s for s in outcomes if isinstance(s, AgentSocket)]
    failed = [e for e in outcomes if isinstance(e, BaseException)]
    if failed:
        await close_sockets(sockets)
        raise failed[0]
    return sockets


async def close_sockets(sockets: list[AgentSocket]) -> None:
    for offset in range(0, len(sockets), 500):
        await asyncio.gather(*(s.close() for s in sockets[offset:offset + 500]))
