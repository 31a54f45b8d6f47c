"""Pumping streams to a socket.

`pump`: a socket's own stream, snapshot or replay first, then live frames, never twice.
`follow`: a broadcast stream shared by many sockets (published once, fanned out by each node to
the sockets it holds), live frames only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from realtime.bus import CLOSE_PREFIX, Bus, Frame, StreamClosed

Send = Callable[[str], Awaitable[None]]
Wrap = Callable[[str, str], str]
MAX_REPLAY = 50  # frames; a socket that missed more gets a snapshot instead


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
    """Send what the socket missed, then every new frame of `stream`, until cancelled.

    Subscribing happens before the replay or snapshot is read, so a frame published meanwhile is
    queued, and frames at or before what was already sent are skipped. A socket that missed more
    than `max_replay` frames gets a snapshot, not the replay. Raises realtime.Overflow
    when the socket cannot keep up (the caller closes it with 1013 so the browser replays), and
    realtime.StreamClosed when a close frame was published (the caller closes with its code).
    """
    async with bus.subscribe(stream, maxsize) as subscription:
        frames = await bus.replay(stream, since, max_replay) if since else None
        if frames is None:
            cursor = await bus.last_id(stream)
            html = await snapshot()
            await send(wrap(html, cursor))
            last = bus.order(cursor) or ()
        else:
            last = bus.order(since or "") or ()
            for frame in frames:
                await _deliver(frame, send, wrap)
                last = frame.order
        while True:
            frame = await subscription.get()
            if frame.order <= last:
                continue
            await _deliver(frame, send, wrap)
            last = frame.order


async def _deliver(frame: Frame, send: Send, wrap: Wrap) -> None:
    if frame.payload.startswith(CLOSE_PREFIX):
        code, _, reason = frame.payload.removeprefix(CLOSE_PREFIX).partition(":")
        raise StreamClosed(int(code), reason)
    await send(wrap(frame.payload, frame.id))


async def follow(bus: Bus, stream: str, send: Send, *, maxsize: int = 256,
                 snapshot: Callable[[], Awaitable[str]] | None = None) -> None:
    """Send every new frame of the broadcast `stream`, until cancelled.

    Broadcast frames carry views that are whole in each frame (a wallboard, a queue's figures),
    so there is no cursor and no replay: a socket that (re)connects starts from `snapshot` (the
    view as it is now, when there is one) and then gets what is published. Raises like `pump`.
    """
    async with bus.subscribe(stream, maxsize) as subscription:
        if snapshot is not None:
            html = await snapshot()
            if html:
                await send(html)
        while True:
            await _deliver(await subscription.get(), send, _as_is)


def _as_is(payload: str, _cursor: str) -> str:
    return payload
