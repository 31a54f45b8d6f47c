"""The Redis bus: a Redis Stream per recipient keeps the replay; live frames travel by pub/sub.

Publishing is one script: XADD to the stream (trimmed with MAXLEN ~) and PUBLISH of the frame to
that stream's channel, atomically, so the channel carries frames in stream order. A node
subscribes to the channel of each stream it holds a socket for, and only while it does: what a
node reads follows the frames its sockets need, not how many sockets it holds. XRANGE is used
only to replay a reconnecting socket from its cursor.

Cursors are Redis stream ids ("1700000000000-0"), so a cursor handed out by one node is
understood by every other. The reader fans frames out to bounded per-socket subscriptions; a
socket that falls behind overflows and is closed by its owner so it reconnects and replays.
Pub/sub delivers at most once: when the reader's connection breaks, every subscription fails,
and its socket reconnects and replays from its cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from realtime.bus import BusUnavailable, Frame, Subscribers, Subscription

log = logging.getLogger("realtime.redis")

MAX_BACKOFF = 5.0
SOCKET_TIMEOUT = 5.0  # a Redis that stopped answering (frozen, or its host gone) counts as lost
IDLE_PING = 5.0  # the reader asks Redis for a sign of life after this long without a message
JOIN_TIMEOUT = 5.0

# XADD and PUBLISH in one step: subscribers get exactly what the stream holds, in its order.
PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'p', ARGV[2])
redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[2])
return id
"""


def _retry_once() -> Retry:
    """One more try on a fresh connection when a pooled one turns out dead.

    After Redis restarts, every connection the pool kept leads to the old server, and redis-py
    notices only when it uses one; without a retry, the first command on each of them fails.
    Connection errors only: a timeout repeated would keep a request waiting several times over.
    A write retried after its reply was lost can publish one frame twice; frames are idempotent,
    so a page shows the same thing, and nothing is missed.
    """
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def parse_id(cursor: str) -> tuple[int, int] | None:
    ms, sep, seq = cursor.partition("-")
    if not sep or not ms.isdecimal() or not seq.isdecimal() or len(cursor) > 40:
        return None
    return int(ms), int(seq)


def _frame(stream: str, entry_id: str, payload: str) -> Frame:
    return Frame(stream, entry_id, parse_id(entry_id) or (0, 0), payload)


class RedisBus:
    def __init__(self, url: str, *, backlog: int = 1000, prefix: str = "console:") -> None:
        self.url = url
        self.backlog = backlog
        self.prefix = prefix
        self.reconnects = 0
        self._client: aioredis.Redis | None = None
        self._reader_client: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribers = Subscribers()
        self._joined: dict[str, asyncio.Future[None]] = {}  # channel -> confirmed by Redis
        self._unconfirmed: dict[str, int] = {}  # channel -> SUBSCRIBEs sent and not yet confirmed
        self._listening = asyncio.Event()
        # One SUBSCRIBE or UNSUBSCRIBE at a time: redis-py's PubSub is not safe for concurrent
        # commands (two first ones would each open a connection of their own).
        self._membership = asyncio.Lock()
        self._script: Any = None

    def _key(self, stream: str) -> str:
        return f"{self.prefix}stream:{stream}"

    def _channel(self, stream: str) -> str:
        return f"{self.prefix}live:{stream}"

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.from_url(self.url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT,
                                             socket_connect_timeout=SOCKET_TIMEOUT, health_check_interval=15,
                                             retry=_retry_once())
            self._script = self._client.register_script(PUBLISH)
        return self._client

    async def start(self) -> None:
        # The reader never reconnects by itself: frames published while it was away are not
        # delivered, so its subscribers must resync instead of silently missing them.
        self._reader_client = aioredis.from_url(self.url, decode_responses=True, socket_timeout=SOCKET_TIMEOUT,
                                                socket_connect_timeout=SOCKET_TIMEOUT,
                                                retry=Retry(NoBackoff(), 0))
        self._reader = asyncio.create_task(self._read_forever(), name="redis bus reader")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._drop_pubsub()
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
        client = self.client
        try:
            frame_id: Any = await self._script(keys=[self._key(stream), self._channel(stream)],
                                               args=[self.backlog, payload], client=client)
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unreachable: {exc}") from exc
        return str(frame_id)

    async def last_id(self, stream: str) -> str:
        try:
            newest: Any = await self.client.xrevrange(self._key(stream), count=1)
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unreachable: {exc}") from exc
        return str(newest[0][0]) if newest else "0-0"

    async def replay(self, stream: str, since: str, limit: int | None = None) -> list[Frame] | None:
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
            entries: Any = await self.client.xrange(key, min=f"({since}", max="+",
                                                    count=None if limit is None else limit + 1)
        except (RedisError, OSError) as exc:
            raise BusUnavailable(f"redis unreachable: {exc}") from exc
        if limit is not None and len(entries) > limit:
            return None  # so much was missed that a snapshot is cheaper than the replay
        return [_frame(stream, entry_id, fields["p"]) for entry_id, fields in entries]

    @asynccontextmanager
    async def subscribe(self, stream: str, maxsize: int) -> AsyncIterator[Subscription]:
        subscription = self._subscribers.add(stream, maxsize)
        try:
            await self._join(self._channel(stream))
            yield subscription
        finally:
            if self._subscribers.remove(subscription):
                await self._leave(self._channel(stream))

    async def _join(self, channel: str) -> None:
        """Subscribe to the channel, once per node, and wait until Redis confirmed it: from then
        on no frame of the stream passes this node by."""
        joined = self._joined.get(channel)
        if joined is None:
            joined = asyncio.get_running_loop().create_future()
            self._joined[channel] = joined
            try:
                async with self._membership:
                    # Counted before it is sent: the reader may take Redis's reply while the
                    # SUBSCRIBE is still on its way out, and a reply counted against nothing
                    # would leave the next join of the channel waiting for a reply that never comes.
                    self._unconfirmed[channel] = self._unconfirmed.get(channel, 0) + 1
                    await self._connected().subscribe(channel)
            except (RedisError, OSError) as exc:
                self._unconfirmed.pop(channel, None)
                self._joined.pop(channel, None)
                joined.set_exception(BusUnavailable(f"redis unreachable: {exc}"))
                joined.exception()  # others waiting for it get it; nobody else must see it unretrieved
                raise BusUnavailable(f"redis unreachable: {exc}") from exc
            self._listening.set()
        try:
            await asyncio.wait_for(asyncio.shield(joined), JOIN_TIMEOUT)
        except TimeoutError:
            raise BusUnavailable("redis did not confirm the subscription") from None

    async def _leave(self, channel: str) -> None:
        self._joined.pop(channel, None)
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                async with self._membership:
                    if channel not in self._joined:  # nobody joined again meanwhile
                        await self._pubsub.unsubscribe(channel)

    def _connected(self) -> PubSub:
        if self._pubsub is None:
            if self._reader_client is None:
                raise BusUnavailable("the bus was not started")
            self._pubsub = self._reader_client.pubsub()
        return self._pubsub

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped before redis-py 8.2

    async def _read_forever(self) -> None:
        backoff = 0.1
        while True:
            await self._listening.wait()
            try:
                await self._read()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError, RuntimeError, TimeoutError) as exc:
                self.reconnects += 1
                log.warning("redis bus reader lost its connection (%s); retrying in %.1f s", exc, backoff)
                # Frames may be lost meanwhile: every socket reconnects and resyncs from its cursor.
                self._subscribers.fail_all()
                for joined in self._joined.values():
                    if not joined.done():
                        joined.set_exception(BusUnavailable(f"redis unreachable: {exc}"))
                        joined.exception()  # retrieved: nobody may be waiting for it any more
                self._joined.clear()
                self._unconfirmed.clear()
                self._listening.clear()
                await self._drop_pubsub()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _read(self) -> None:
        """Deliver messages until the channels are all left (then wait) or the connection fails."""
        pubsub = self._connected()
        seen = time.monotonic()
        pinged: float | None = None
        while self._joined:
            message: Any = await pubsub.get_message(timeout=1.0)
            now = time.monotonic()
            if message is None:
                if pinged is not None and now - pinged > SOCKET_TIMEOUT:
                    raise TimeoutError("redis did not answer a ping")
                if pinged is None and now - seen > IDLE_PING:
                    await pubsub.ping()
                    pinged = now
                continue
            seen, pinged = now, None
            kind = message.get("type")
            if kind == "message":
                channel = str(message["channel"])
                entry_id, _, payload = str(message["data"]).partition(" ")
                self._subscribers.deliver(_frame(channel.removeprefix(f"{self.prefix}live:"), entry_id, payload))
            elif kind == "subscribe":
                # The newest SUBSCRIBE counts: a reply to one sent before the channel was left
                # and joined again must not let the new subscriber go ahead too early.
                channel = str(message["channel"])
                left = self._unconfirmed.get(channel, 1) - 1
                if left > 0:
                    self._unconfirmed[channel] = left
                    continue
                self._unconfirmed.pop(channel, None)
                joined = self._joined.get(channel)
                if joined is not None and not joined.done():
                    joined.set_result(None)
        self._listening.clear()
