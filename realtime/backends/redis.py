"""The Redis bus: a Redis Stream per recipient, trimmed with MAXLEN ~, read by one reader per node.

Cursors are Redis stream ids ("1700000000000-0"), so a cursor handed out by one node is
understood by every other. The reader fans frames out to bounded per-socket subscriptions;
a socket that falls behind overflows and is closed by its owner so it reconnects and replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from realtime.bus import BusUnavailable, Frame, Subscribers, Subscription

log = logging.getLogger("realtime.redis")

BLOCK_MS = 100  # a stream subscribed meanwhile joins the read after at most this long
BATCH = 200
MAX_BACKOFF = 5.0
SOCKET_TIMEOUT = 5.0  # a Redis that stopped answering (frozen, or its host gone) counts as lost


def _retry_once() -> Retry:
    """One more try on a fresh connection when a pooled one turns out dead.

    After Redis restarts, every connection the pool kept leads to the old server, and redis-py
    notices only when it uses one; without a retry, the first command on each of them fails.
    Connection errors only: a timeout repeated would keep a request waiting several times over.
    A write retried after its reply was lost can publish one frame twice; frames are whole
    views, so a page shows the same thing twice, and nothing is missed.
    """
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def parse_id(cursor: str) -> tuple[int, int] | None:
    ms, sep, seq = cursor.partition("-")
    if not sep or not ms.isdecimal() or not seq.isdecimal() or len(cursor) > 40:
        return None
    return int(ms), int(seq)


def _frame(stream: str, entry_id: str, fields: dict[str, str]) -> Frame:
    return Frame(stream, entry_id, parse_id(entry_id) or (0, 0), fields["p"])


class RedisBus:
    def __init__(self, url: str, *, backlog: int = 1000, prefix: str = "console:") -> None:
        self.url = url
        self.backlog = backlog
        self.prefix = prefix
        self.reconnects = 0
        self._client: aioredis.Redis | None = None
        self._reader_client: aioredis.Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribers = Subscribers()
        self._positions: dict[str, str] = {}  # stream -> last id read by this node

    def _key(self, stream: str) -> str:
        return f"{self.prefix}stream:{stream}"

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.from_url(self.url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT,
                                             socket_connect_timeout=SOCKET_TIMEOUT, health_check_interval=15,
                                             retry=_retry_once())
        return self._client

    async def start(self) -> None:
        # The reader never retries by itself: a reconnect it did not notice could be to a Redis
        # that restarted empty, and the frames lost with the old one would never be healed.
        self._reader_client = aioredis.from_url(self.url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT,
                                                socket_connect_timeout=SOCKET_TIMEOUT,
                                                retry=Retry(NoBackoff(), 0))
        self._reader = asyncio.create_task(self._read_forever(), name="redis bus reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for client in (self._client, self._reader_client):
            if client is not None:
                await client.aclose()
        self._subscribers.clear()

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unreachable: {exc}") from exc

    def order(self, cursor: str) -> tuple[int, ...] | None:
        return parse_id(cursor)

    async def publish(self, stream: str, payload: str) -> str:
        try:
            frame_id: Any = await self.client.xadd(self._key(stream), {"p": payload}, maxlen=self.backlog,
                                                   approximate=True)
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unreachable: {exc}") from exc
        return str(frame_id)

    async def last_id(self, stream: str) -> str:
        try:
            newest: Any = await self.client.xrevrange(self._key(stream), count=1)
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unreachable: {exc}") from exc
        return str(newest[0][0]) if newest else "0-0"

    async def replay(self, stream: str, since: str) -> list[Frame] | None:
        position = parse_id(since)
        if position is None:
            return None
        key = self._key(stream)
        try:
            newest: Any = await self.client.xrevrange(key, count=1)
            newest_id = (parse_id(str(newest[0][0])) or (0, 0)) if newest else (0, 0)
            if position > newest_id:
                return None  # a cursor from the future: Redis lost the stream, or it is not ours
            if newest:
                info: Any = await self.client.xinfo_stream(key)
                first = info.get("first-entry")
                oldest = (parse_id(str(first[0])) or (0, 0)) if first else (0, 0)
                trimmed = int(info.get("entries-added", 0)) > int(info.get("length", 0))
                if trimmed and position < oldest:
                    return None  # frames after the cursor may have been trimmed away
            entries: Any = await self.client.xrange(key, min=f"({since}", max="+")
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unreachable: {exc}") from exc
        return [_frame(stream, entry_id, fields) for entry_id, fields in entries]

    @asynccontextmanager
    async def subscribe(self, stream: str, maxsize: int) -> AsyncIterator[Subscription]:
        if stream not in self._subscribers.by_stream:
            # Read from what exists now: the pump replays or snapshots up to here itself.
            self._positions[stream] = await self.last_id(stream)
        subscription = self._subscribers.add(stream, maxsize)
        try:
            yield subscription
        finally:
            if self._subscribers.remove(subscription):
                self._positions.pop(stream, None)

    async def _read_forever(self) -> None:
        backoff = 0.1
        while True:
            streams = {self._key(s): self._positions[s] for s in self._subscribers.by_stream if s in self._positions}
            if not streams:
                await asyncio.sleep(BLOCK_MS / 1000)
                continue
            try:
                assert self._reader_client is not None
                batches: Any = await self._reader_client.xread(streams, count=BATCH, block=BLOCK_MS)  # type: ignore[arg-type]
                backoff = 0.1
            except (RedisError, OSError) as exc:
                self.reconnects += 1
                log.warning("redis bus read failed (%s); retrying in %.1f s", exc, backoff)
                # Frames may be lost meanwhile: every socket reconnects and resyncs from its cursor.
                self._subscribers.fail_all()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            for key, entries in batches or []:
                stream = key.removeprefix(f"{self.prefix}stream:")
                for entry_id, fields in entries:
                    self._subscribers.deliver(_frame(stream, entry_id, fields))
                    if stream in self._positions:
                        self._positions[stream] = entry_id
