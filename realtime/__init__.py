"""Transport only: per-recipient streams of HTML frames with cursors, and pumping them to sockets.

Nothing here knows about agents or customers; it moves strings.
"""

from realtime.bus import (
    Bus,
    BusUnavailable,
    Frame,
    Overflow,
    StreamClosed,
    Subscription,
    close_frame,
    make_bus,
)

__all__ = ["Bus", "BusUnavailable", "Frame", "Overflow", "StreamClosed", "Subscription", "close_frame",
           "make_bus"]
