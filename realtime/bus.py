"""The bus: publish a frame to a stream, replay a stream from a cursor, subscribe to new frames."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Frame:
    """One published payload; `id` is the opaque cursor, `order` sorts frames of one stream."""

    stream: str
    id: str
    order: tuple[int, ...]
    payload: str


CLOSE_PREFIX = "\x00close:"


def close_frame(code: int, reason: str) -> str:
    """A payload that makes every socket pumping the stream close with `code` (e.g. on logout)."""
    return f"{CLOSE_PREFIX}{code}:{reason}"


class StreamClosed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


class BusUnavailable(Exception):
    """The bus backend cannot be reached right now."""


class Overflow(Exception):
    """The subscriber fell behind and frames were dropped; it must reconnect and replay."""


@dataclass(eq=False)
class Subscription:
    """Frames of one stream for one socket, bounded; overflowing marks it broken, never blocks."""

    stream: str
    maxsize: int
    _queue: asyncio.Queue[Frame] = field(init=False)
    overflowed: bool = False

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(self.maxsize)

    def fail(self) -> None:
        """The bus lost frames for this subscriber (it fell behind, or the backend failed)."""
        if not self.overflowed:
            self.overflowed = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(Frame(self.stream, "", (), ""))

    def deliver(self, frame: Frame) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True
            # Wake the reader so it notices at once.
            self._queue.get_nowait()
            self._queue.put_nowait(frame)

    async def get(self) -> Frame:
        frame = await self._queue.get()
        if self.overflowed:
            raise Overflow(self.stream)
        return frame


class Subscribers:
    """The subscriptions of one node, by stream: what each backend's fan-out delivers to."""

    def __init__(self) -> None:
        self.by_stream: dict[str, set[Subscription]] = {}

    def add(self, stream: str, maxsize: int) -> Subscription:
        subscription = Subscription(stream, maxsize)
        self.by_stream.setdefault(stream, set()).add(subscription)
        return subscription

    def remove(self, subscription: Subscription) -> bool:
        """Forget `subscription`; True when its stream has no subscribers left."""
        subscribers = self.by_stream.get(subscription.stream)
        if subscribers is None:
            return False
        subscribers.discard(subscription)
        if subscribers:
            return False
        del self.by_stream[subscription.stream]
        return True

    def deliver(self, frame: Frame) -> None:
        for subscription in list(self.by_stream.get(frame.stream, ())):
            subscription.deliver(frame)

    def fail_all(self) -> None:
        for subscriptions in self.by_stream.values():
            for subscription in subscriptions:
                subscription.fail()

    def clear(self) -> None:
        self.by_stream.clear()


class Bus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise when the bus cannot be reached."""

    async def publish(self, stream: str, payload: str) -> str:
        """Append `payload` to `stream`; return its cursor."""

    async def replay(self, stream: str, since: str, limit: int | None = None) -> list[Frame] | None:
        """Frames after cursor `since`; None when the cursor is unknown or too old, or when more
        than `limit` frames were missed (a snapshot is then cheaper than the replay)."""

    async def last_id(self, stream: str) -> str:
        """The cursor of the newest frame of `stream` (a valid cursor also when it is empty)."""

    def order(self, cursor: str) -> tuple[int, ...] | None:
        """The sort key of a cursor of this bus, or None when it is not one."""

    def subscribe(self, stream: str, maxsize: int) -> AbstractAsyncContextManager[Subscription]: ...


def make_bus(url: str, *, backlog: int = 1000, prefix: str = "console:") -> Bus:
    """A bus chosen by URL: '' or memory:// in-process, redis:// or rediss:// shared by nodes."""
    if url in ("", "memory://"):
        from realtime.backends.memory import MemoryBus

        return MemoryBus(backlog=backlog)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from realtime.backends.redis import RedisBus

        return RedisBus(url, backlog=backlog, prefix=prefix)
    raise ValueError(f"unsupported bus URL {url!r}; use memory:// or redis://host:6379/0")

