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
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from realtime.bus import CLOSE_PREFIX, Bus, Frame, Overflow, StreamClosed, Subscription

Send = Callable[[str], Coroutine[Any, Any, None]]
Wrap = Callable[[str, str], str]
MAX_REPLAY = 50  # frames; a socket that missed more gets a snapshot instead


class Feed:
    """What one socket still has to send, in order.

    A frame is sent at once by whoever hands it over when nothing else is being sent and the
    socket can take it; a sender task lives only while frames must wait. The feed stops at the
    first error (a failed send, an overflow, a close frame, once what came before it was sent);
    then `error` says why, `on_stop` is told once, and nothing more is sent.
    """

    __slots__ = ("_busy", "_maxsize", "_on_stop", "_out", "_send", "_sender", "_stopped", "error")

    def __init__(self, send: Send, maxsize: int = 256,
                 on_stop: Callable[[BaseException], None] | None = None) -> None:
        self._send = send
        self._maxsize = maxsize
        self._on_stop = on_stop
        self._out: deque[str | StreamClosed] = deque()
        self._busy = False  # a send is under way (inline or in the sender task)
        self._sender: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self.error: BaseException | None = None

    def running(self) -> bool:
        return self.error is None

    def put(self, text: str) -> None:
        self._enqueue(text)

    def deliver(self, frame: Frame, wrap: Wrap) -> None:
        """Queue a frame of a stream; a close frame stops the feed with its code, after what came before."""
        if frame.payload.startswith(CLOSE_PREFIX):
            code, _, reason = frame.payload.removeprefix(CLOSE_PREFIX).partition(":")
            self._enqueue(StreamClosed(int(code), reason))
        else:
            self._enqueue(wrap(frame.payload, frame.id))

    def _enqueue(self, item: str | StreamClosed) -> None:
        if self.error is not None:
            return
        if self._busy or self._out:
            if len(self._out) >= self._maxsize:
                self.stop(Overflow("socket"))
            else:
                self._out.append(item)
            return
        self._send_inline(item)

    def _send_inline(self, item: str | StreamClosed) -> None:
        """Send now, in the caller's step, and what was queued meanwhile; hand over to a sender
        task as soon as a send has to wait (its transport is full)."""
        while True:
            if isinstance(item, StreamClosed):
                self.stop(item)
                return
            self._busy = True
            sending = self._send(item)
            try:
                waiting_for = sending.send(None)
            except StopIteration:
                self._busy = False
            except BaseException as exc:  # never into the bus that delivered the frame
                self._busy = False
                sending.close()
                self.stop(exc)
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                return
            else:
                self._sender = asyncio.get_running_loop().create_task(self._run(sending, waiting_for))
                return
            if not self._out or self.error is not None:
                return
            item = self._out.popleft()

    async def _run(self, sending: Coroutine[Any, Any, None], waiting_for: Any) -> None:
        try:
            await _finish(sending, waiting_for)
            while self._out and self.error is None:
                item = self._out.popleft()
                if isinstance(item, StreamClosed):
                    self.stop(item)
                    break
                await self._send(item)
        except BaseException as exc:  # the socket is gone or broken, or the feed was closed
            self.stop(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            sending.close()  # a no-op once it ran to its end
            self._busy = False
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
        """Send nothing more; end a send under way. A cancellation of the caller still propagates."""
        if self.error is None:
            self.error = ConnectionAbortedError("the feed was closed")
            self._out.clear()
        sender = self._sender
        if sender is not None:
            sender.cancel()
            await asyncio.wait([sender])


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
