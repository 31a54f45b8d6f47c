"""In-process bus: a bounded deque per stream and monotonic ids (single process only)."""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from realtime.bus import Frame, Subscribers, Subscription


class MemoryBus:
    def __init__(self, *, backlog: int = 1000) -> None:
        self.backlog = backlog
        # Cursors carry the boot token, so a cursor from before a restart is unknown, not misread.
        self._boot = secrets.token_hex(4)
        self._seq = 0
        self._streams: dict[str, deque[Frame]] = {}
        self._evicted: dict[str, int] = {}  # per stream: the newest seq that fell out of the backlog
        self._subscribers = Subscribers()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()

    async def ping(self) -> None:
        return None

    def _parse(self, cursor: str) -> int | None:
        boot, _, seq = cursor.rpartition("-")
        if boot != self._boot or not seq.isdigit():
            return None
        return int(seq)

    def order(self, cursor: str) -> tuple[int, ...] | None:
        seq = self._parse(cursor)
        return None if seq is None else (seq,)

    async def publish(self, stream: str, payload: str) -> str:
        self._seq += 1
        frame = Frame(stream, f"{self._boot}-{self._seq}", (self._seq,), payload)
        frames = self._streams.setdefault(stream, deque(maxlen=self.backlog))
        if len(frames) == frames.maxlen:
            self._evicted[stream] = frames[0].order[0]
        frames.append(frame)
        self._subscribers.deliver(frame)
        return frame.id

    async def replay(self, stream: str, since: str, limit: int | None = None) -> list[Frame] | None:
        seq = self._parse(since)
        if seq is None or seq > self._seq or seq < self._evicted.get(stream, 0):
            return None
        frames = [f for f in self._streams.get(stream, ()) if f.order[0] > seq]
        return None if limit is not None and len(frames) > limit else frames

    async def last_id(self, stream: str) -> str:
        frames = self._streams.get(stream)
        return frames[-1].id if frames else f"{self._boot}-0"

    @asynccontextmanager
    async def subscribe(self, stream: str, maxsize: int) -> AsyncIterator[Subscription]:
        subscription = self._subscribers.add(stream, maxsize)
        try:
            yield subscription
        finally:
            self._subscribers.remove(subscription)
