"""Pumping one stream to one socket: snapshot or replay first, then live frames, never twice."""

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
