"""The pusher when the bus is away: what it could not tell a visitor's widget is sent once it is back."""

from __future__ import annotations

from typing import Any

from console.web.push import Pusher
from realtime import BusUnavailable, make_bus


class Outage:
    """The memory bus, refusing every publish while `down`."""

    def __init__(self) -> None:
        self.bus = make_bus("memory://")
        self.down = False

    async def publish(self, stream: str, payload: str) -> str:
        if self.down:
            raise BusUnavailable("redis is away")
        return await self.bus.publish(stream, payload)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bus, name)


async def test_a_visitors_frames_published_while_the_bus_was_away_follow_once_it_is_back() -> None:
    outage = Outage()
    pusher = Pusher(None, outage, None, "NL", file_secret="x")  # type: ignore[arg-type]
    start = await outage.bus.last_id("chat:1")
    await pusher._send_visitor("chat:1", "one")
    outage.down = True
    await pusher._send_visitor("chat:1", "two")
    outage.down = False
    await pusher._send_visitor("chat:1", "three")  # must not overtake "two"
    await pusher._heal()  # what the worker does every second while something waits
    assert [f.payload for f in await outage.bus.replay("chat:1", start, 10) or []] == ["one", "two", "three"]
