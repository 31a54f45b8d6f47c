"""Pumping streams to a socket, with no task of its own while the socket is idle.

A socket's frames go through one `Feed`: frames are handed to it as they arrive and sent at
once when the socket can take them; a sender task exists only while some must wait. An idle
socket costs its connection's own task and nothing more (ten thousand open agent pages are ten
thousand tasks, not thirty thousand).

`catch_up`: a socket's own stream, snapshot or replay first, then live frames, never
twice. `listen_broadcast`: a broadcast stream shared by many sockets (published once, fanned out
by each node to the sockets it holds), live frames only. `pump` and `follow` run either until
the feed stops, for callers that give a socket a task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from realtime.bus import CLOSE_PREFIX, Bus, Frame, Overflow, StreamClosed, Subscription

Send = Callable[[str], Coroutine[Any, Any, None]]
Wrap = Callable[[str, str], str]
MAX_REPLAY = 50  # frames; a socket that missed more gets a snapshot instead


class Feed:
    """What one socket still has to send, in order.

    A frame is sent at once by whoever hands it over when the socket can take it; a sender task
    lives only while frames must wait. The feed stops at the first error (a failed send, an
    overflow, a close frame); then `error` says why, `on_stop` is told once, and nothing more is
    sent.
    """

    __slots__ = ("_maxsize", "_on_stop", "_out", "_send", "_sender", "_stopped", "error")

    def __init__(self, send: Send, maxsize: int = 256,
                 on_stop: Callable[[BaseException], None] | None = None) -> None:
        self._send = send
        self._maxsize = maxsize
        self._on_stop = on_stop
        self._out: deque[str] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self.error: BaseException | None = None

    def running(self) -> bool:
        return self.error is None

    def put(self, text: str) -> None:
        if self.error is not None:
            return
        if len(self._out) >= self._maxsize:
            self.stop(Overflow("socket"))
            return
        if self._sender is not None:
            self._out.append(text)
            return
        # Nothing is being sent: start sending now, in the caller. A socket that can take the
        # frame (the usual case) is done before this returns, with no task made for it; one that
        # must wait (its transport is full) finishes in a sender task, the rest queued behind.
        sending = self._send(text)
        try:
            waiting_for = sending.send(None)
        except StopIteration:
            return
        except Exception as exc:
            self.stop(exc)
            return
        self._sender = asyncio.get_running_loop().create_task(self._run(sending, waiting_for))

    def deliver(self, frame: Frame, wrap: Wrap) -> None:
        """Queue a frame of a stream; a close frame stops the feed with its code instead."""
        if frame.payload.startswith(CLOSE_PREFIX):
            code, _, reason = frame.payload.removeprefix(CLOSE_PREFIX).partition(":")
            self.stop(StreamClosed(int(code), reason))
        else:
            self.put(wrap(frame.payload, frame.id))

    async def _run(self, sending: Coroutine[Any, Any, None], waiting_for: Any) -> None:
        try:
            await _finish(sending, waiting_for)
            while self._out and self.error is None:
                await self._send(self._out.popleft())
        except Exception as exc:  # the socket is gone or broken: the caller closes it
            self.stop(exc)
        finally:
            self._sender = None

    def stop(self, error: BaseException) -> None:
        if self.error is not None:
            return
        self.error = error
        self._out.clear()
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        if self._on_stop is not None:
            self._on_stop(error)

    async def stopped(self) -> BaseException:
        """Wait until the feed stops; return why."""
        if self.error is None:
            self._stopped = asyncio.get_running_loop().create_future()
            await self._stopped
        assert self.error is not None
        return self.error

    async def aclose(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


async def _finish(coroutine: Coroutine[Any, Any, None], waiting_for: Any) -> None:
    """Run a coroutine that was started outside a task to its end, as the task running it would:
    wait for what it waits for, then resume it with that outcome."""
    try:
        while True:
            try:
                if waiting_for is None:
                    await asyncio.sleep(0)  # it only yielded to the loop
                else:
                    await waiting_for
            except BaseException as exc:
                waiting_for = coroutine.throw(exc)
            else:
                waiting_for = coroutine.send(None)
    except StopIteration:
        return
    finally:
        coroutine.close()


async def catch_up(bus: Bus, subscription: Subscription, feed: Feed, *, since: str | None,
                   snapshot: Callable[[], Awaitable[str]], wrap: Wrap, max_replay: int = MAX_REPLAY) -> None:
    """Give the feed what the socket missed of the subscription's stream, then every new frame.

    Call it right after subscribing: a frame published meanwhile waits in the subscription, and
    frames at or before what the snapshot or replay covered are skipped. A socket that missed more
    than `max_replay` frames gets a snapshot, not the replay. Overflow of the subscription and close
    frames stop the feed (realtime.Overflow: the caller closes with 1013 so the browser replays;
    realtime.StreamClosed: the caller closes with its code).
    """
    stream = subscription.stream
    frames = await bus.replay(stream, since, max_replay) if since else None
    if frames is None:
        cursor = await bus.last_id(stream)
        feed.put(wrap(await snapshot(), cursor))
        last = bus.order(cursor) or ()
    else:
        last = bus.order(since or "") or ()
        for frame in frames:
            feed.deliver(frame, wrap)
            last = frame.order

    def live(frame: Frame | None) -> None:
        nonlocal last
        if frame is None:
            feed.stop(Overflow(stream))
        elif frame.order > last:
            last = frame.order
            feed.deliver(frame, wrap)

    subscription.listen(live)


async def listen_broadcast(subscription: Subscription, feed: Feed, *,
                           snapshot: Callable[[], Awaitable[str]] | None = None) -> None:
    """Give the feed every new frame of a broadcast stream.

    Broadcast frames carry views that are whole in each frame (a wallboard, a queue's figures), so
    there is no cursor and no replay: a socket that (re)connects starts from `snapshot` (the view
    as it is now, when there is one) and then gets what is published.
    """
    if snapshot is not None:
        html = await snapshot()
        if html:
            feed.put(html)
    stream = subscription.stream
    subscription.listen(lambda frame: feed.stop(Overflow(stream)) if frame is None else feed.deliver(frame, _as_is))


async def pump(
    bus: Bus,
    stream: str,
    send: Send,
    *,
    since: str | None,
    snapshot: Callable[[], Awaitable[str]],
    wrap: Wrap,
    maxsize: int = 256,
    max_replay: int = MAX_REPLAY,
) -> None:
    """`catch_up` on `stream` until the feed stops, then raise why (see there)."""
    feed = Feed(send, maxsize)
    try:
        async with bus.subscribe(stream, maxsize) as subscription:
            await catch_up(bus, subscription, feed, since=since, snapshot=snapshot, wrap=wrap, max_replay=max_replay)
            raise await feed.stopped()
    finally:
        await feed.aclose()


async def follow(bus: Bus, stream: str, send: Send, *, maxsize: int = 256,
                 snapshot: Callable[[], Awaitable[str]] | None = None) -> None:
    """`listen_broadcast` on `stream` until the feed stops, then raise why."""
    feed = Feed(send, maxsize)
    try:
        async with bus.subscribe(stream, maxsize) as subscription:
            await listen_broadcast(subscription, feed, snapshot=snapshot)
            raise await feed.stopped()
    finally:
        await feed.aclose()


def _as_is(payload: str, _cursor: str) -> str:
    return payload
