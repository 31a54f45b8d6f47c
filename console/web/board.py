"""The supervisors' wallboard: one node renders it, once a second at most and only when it changed,
once per language, and publishes it once on a broadcast stream that every node fans out to its
supervisors' sockets (`/ws?view=wallboard`).

Which node renders is decided by a lease in the database (console.leases): the holder also keeps
the hourly statistics (console.rollups), so the board's figures for today are counted just before
it is read. The board is read only while supervisors watch somewhere (each node with wallboard
sockets marks it in the database every few seconds); nobody watching, a busy node spends nothing
on it. Every node keeps the last board published in each language (republished every 30 s while
unchanged, so a copy younger than that is current); a socket that connects gets that one, then
every board published.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from console import i18n, leases, rollups, wallboard
from console.db import Database
from console.errors import ConsoleError
from console.models import utcnow
from console.web.render import Renderer
from realtime import Bus, Frame

log = logging.getLogger("console.web.board")

LEASE = "wallboard"
LEASE_SECONDS = 10.0  # a node that stops renewing: another takes over within this long
ROUND_SECONDS = 1.0  # at most one board a second
WATCHED = "wallboard watched"  # marked by every node while supervisors watch there
WATCHED_SECONDS = 15.0
MARK_EVERY = 5.0
# Without supervisors watching, the board is not read at all, and the statistics are counted only
# every this many rounds (reports may lag by as much): a busy node's seconds go to its calls.
UNWATCHED_SWEEP_ROUNDS = 10
# A board unchanged this long is published again, so a node's copy of it (what a socket that
# connects gets first) is known to be current when it is younger than SNAPSHOT_AGE.
REPUBLISH_SECONDS = 30.0
SNAPSHOT_AGE = REPUBLISH_SECONDS + 5.0


def wallboard_stream(language: str) -> str:
    """Published once for every supervisor's wallboard in this language, on every node."""
    return f"broadcast:wallboard:{language}"


class Wallboard:
    def __init__(self, db: Database, bus: Bus, renderer: Renderer, zone: str) -> None:
        self.db, self.bus, self.renderer = db, bus, renderer
        self.zone_name, self.zone = zone, ZoneInfo(zone)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.leading = False
        self._published: wallboard.Board | None = None
        self._published_at = 0.0
        # The last board published, per language, as every node heard it (and when): what a
        # socket that connects gets first, so versions all come from the node that publishes.
        self._latest: dict[str, tuple[float, str]] = {}
        self.watchers = 0  # wallboard sockets open on this node
        self._marked_at = 0.0
        self._rounds = 0

    async def read(self) -> wallboard.Board:
        async with self.db.reading() as session:
            return await wallboard.board(session, self.zone, utcnow())

    def render(self, board: wallboard.Board, language: str) -> str:
        # The version is the time the publishing node read it: one node at a time, a second apart.
        return self.renderer.render("partials/wallboard.html", language, board=board, now=utcnow(),
                                    version=int(time.time() * 1000))

    async def snapshot(self, language: str) -> str:
        """The board for a socket that just connected: the last one published, or (before any was,
        since this node started) one read now."""
        latest = self._latest.get(language)
        if latest is not None and time.monotonic() - latest[0] < SNAPSHOT_AGE:
            return latest[1]
        return self.render(await self.read(), language)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """A wallboard socket is open on this node while inside."""
        self.watchers += 1
        try:
            yield
        finally:
            self.watchers -= 1

    async def follow(self) -> None:
        """Keep the last board published in each language, as the bus delivers them to this node."""
        while True:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    for language in i18n.LANGUAGES:
                        heard = await stack.enter_async_context(self.bus.subscribe(wallboard_stream(language), 16))
                        heard.listen(functools.partial(self._heard, language))
                    await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bus is away: snapshots are read from the database meanwhile
                self._latest.clear()
                log.info("the wallboard's follower waits for the bus (%s)", exc)
                await asyncio.sleep(LEASE_SECONDS)

    def _heard(self, language: str, frame: Frame | None) -> None:
        if frame is None:  # overflow: the next board will come
            return
        self._latest[language] = (time.monotonic(), frame.payload)

    async def round(self) -> None:
        """One round on this node: say whether supervisors watch here; take or keep the lease; its
        holder counts the statistics and, while anyone watches, publishes the board."""
        now = time.monotonic()
        if self.watchers and now - self._marked_at >= MARK_EVERY:
            await leases.mark(self.db, WATCHED, WATCHED_SECONDS)
            self._marked_at = now
        self.leading = await leases.hold(self.db, LEASE, self.holder, LEASE_SECONDS)
        if not self.leading:
            self._published = None  # publish at once when this node takes over
            return
        self._rounds += 1
        watched = bool(self.watchers) or await leases.marked(self.db, WATCHED)
        if watched or self._rounds % UNWATCHED_SWEEP_ROUNDS == 0:
            try:
                await rollups.sweep(self.db, self.zone_name)
            except ConsoleError as exc:
                log.warning("the statistics wait for the database (%s)", exc.message)
        if not watched:
            self._published = None  # the first supervisor to come gets a board at once
            return
        board = await self.read()
        if board == self._published and now - self._published_at < REPUBLISH_SECONDS:
            return
        for language in i18n.LANGUAGES:
            html = self.render(board, language)
            await self.bus.publish(wallboard_stream(language), html)
            self._latest[language] = (time.monotonic(), html)
        self._published, self._published_at = board, now

    async def run(self) -> None:
        failing = False
        while True:
            started = time.monotonic()
            try:
                await self.round()
                if failing:
                    log.warning("the wallboard is published again")
                    failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failing:
                    log.warning("the wallboard could not be published (%s); trying again each second", exc,
                                exc_info=not isinstance(exc, ConsoleError))
                failing = True
                self._published = None
            await asyncio.sleep(max(0.0, ROUND_SECONDS - (time.monotonic() - started)))

    async def close(self) -> None:
        if self.leading:
            try:
                await leases.release(self.db, LEASE, self.holder)
            except Exception as exc:  # the lease runs out by itself
                log.info("could not give up the wallboard lease (%s)", exc)


