"""The bus: publish a frame to a stream, replay a stream from a cursor, subscribe to new frames."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
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
    """Frames of one stream for one socket, bounded; overflowing marks it broken, never blocks.

    Frames wait in the subscription until they are read with `get`, or, once a listener is set
    (`listen`), are handed to it as they arrive: how a socket takes them without a task of its
    own waiting on each stream.
    """

    stream: str
    maxsize: int
    overflowed: bool = False
    _frames: deque[Frame] = field(default_factory=deque, init=False, repr=False)
    _waiter: asyncio.Future[None] | None = field(default=None, init=False, repr=False)
    _listener: Callable[[Frame | None], None] | None = field(default=None, init=False, repr=False)

    def fail(self) -> None:
        """The bus lost frames for this subscriber (it fell behind, or the backend failed)."""
        if self.overflowed:
            return
        self.overflowed = True
        self._frames.clear()
        if self._listener is not None:
            self._listener(None)
        self._wake()

    def deliver(self, frame: Frame) -> None:
        if self.overflowed:
            return
        if self._listener is not None:
            self._listener(frame)
        elif len(self._frames) >= self.maxsize:
            self.fail()
        else:
            self._frames.append(frame)
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Frame:
        """The next frame; raises Overflow once frames were lost."""
        while not self._frames and not self.overflowed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.overflowed:
            raise Overflow(self.stream)
        return self._frames.popleft()

    def listen(self, listener: Callable[[Frame | None], None]) -> None:
        """Hand every frame to `listener` from now on, those waiting first; None means frames were lost."""
        self._listener = listener
        while self._frames and self._listener is listener:
            listener(self._frames.popleft())
        if self.overflowed:
            listener(None)


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

