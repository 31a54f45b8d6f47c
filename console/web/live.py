"""The websocket: a socket per agent page, carrying pushes of the agent's stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from sqlalchemy import select
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from console import auth, presence, supervising
from console.errors import Forbidden, NotFound
from console.models import Agent
from console.web.board import wallboard_stream
from console.web.render import agent_stream, cursor_frame
from console.web.security import SESSION_VERSION, origin_allowed, session_seconds_left, signed_in_as
from console.web.wiring import HeldSocket, Wiring
from realtime import BusUnavailable, Overflow, StreamClosed
from realtime.hub import Feed, catch_up, listen_broadcast

log = logging.getLogger("console.web.live")

POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
MAX_CURSOR = 120
CURSOR_SEPARATOR = "."


async def live_socket(websocket: WebSocket) -> None:
    w: Wiring = websocket.app.state.wiring
    if not origin_allowed(websocket, w.settings.allowed_origins):
        await _refuse(websocket, "origin not allowed")
        return
    found = await signed_in_as(websocket, w.ctx.db)
    if found is None:
        await _refuse(websocket, "not signed in")
        return
    agent_id, role = found
    supervises = role in auth.SUPERVISING
    view = websocket.query_params.get("view")
    if view == "wallboard":
        await _wallboard(websocket, w, agent_id, supervises)
        return
    watched = agent_id
    if view == "watch":  # a supervisor's silent view of another agent's live screen
        raw = websocket.query_params.get("agent", "")
        if not supervises or not (raw.isascii() and raw.isdigit() and len(raw) <= 10):
            await _refuse(websocket, "the silent view is for supervisors")
            return
        watched = int(raw)
    # Cursors name the agent whose stream they count: a page left open from another login
    # must not be fed this agent's frames.
    owner, _, since = websocket.query_params.get("since", "")[:MAX_CURSOR].partition(CURSOR_SEPARATOR)
    if since and owner != str(watched):
        await _refuse(websocket, "signed in as someone else")
        return
    if view == "watch":
        try:  # every watching socket is audited; the agent is told when a view opens, not on reconnects
            await supervising.watch(w.ctx, agent_id, watched, tell_agent=not since)
        except (NotFound, Forbidden) as exc:
            await _refuse(websocket, exc.message)
            return
        # No presence: the watched agent's page is theirs; the supervisor is not at work here.
        await _serve(websocket, w, watched, since, f"watch-{secrets.token_hex(8)}", viewer=agent_id)
        return
    await websocket.accept()
    socket_id = await presence.opened(w.ctx, agent_id)
    try:
        await _serve(websocket, w, agent_id, since, socket_id)
    finally:
        with contextlib.suppress(Exception):
            await presence.closed(w.ctx, socket_id)


class SessionDue(Exception):
    """The session that opened the socket reaches its lifetime or idle time: the page reconnects,
    and the handshake checks the session (as it is then) again."""


async def close_ended_sessions(w: Wiring) -> None:
    """Close the sockets whose session has ended since they opened (a logout everywhere, a new
    role, a new second factor): one query for all the sockets of this process."""
    held = list(w.sockets.values())
    if not held:
        return
    async with w.ctx.db.reading() as session:
        current = await auth.session_versions(session, (s.agent_id for s in held))
    for socket in held:
        if current.get(socket.agent_id) != socket.session_version:
            socket.stop(StreamClosed(POLICY_VIOLATION, "signed out"))


async def _wallboard(websocket: WebSocket, w: Wiring, agent_id: int, supervises: bool) -> None:
    """The wallboard page's socket: the board in the supervisor's language, published once for all
    of them. It is no presence (a supervisor watching is not at work on contacts)."""
    if not supervises:
        await _refuse(websocket, "the wallboard is for supervisors")
        return
    async with w.ctx.db.reading() as session:
        language = await session.scalar(select(Agent.language).where(Agent.id == agent_id)) or "en"
    with w.wallboard.watching():  # while anyone watches, the board is read and published
        await _serve(websocket, w, agent_id, "", f"wallboard-{secrets.token_hex(8)}", wallboard=language)


async def _serve(websocket: WebSocket, w: Wiring, agent_id: int, since: str, socket_id: str, *,
                 wallboard: str | None = None, viewer: int | None = None) -> None:
    """Accept the socket (if the caller has not), count it while it is open, and feed it."""
    if websocket.client_state is WebSocketState.CONNECTING:
        await websocket.accept()
    w.metrics.open_sockets.inc()
    try:
        await _feed(websocket, w, agent_id, since, socket_id, wallboard=wallboard, viewer=viewer)
    finally:
        w.metrics.open_sockets.dec()
        w.sockets.pop(socket_id, None)


async def _feed(websocket: WebSocket, w: Wiring, agent_id: int, since: str, socket_id: str, *,
                wallboard: str | None = None, viewer: int | None = None) -> None:
    """Feed the socket until the browser goes or the feed stops, in this one task.

    The agent page's socket follows the agent's stream (a supervisor's silent view, `viewer`, the
    watched agent's); the wallboard's (`wallboard`: its language) the board's broadcast stream.
    The socket's task reads from the browser; frames are handed to the socket's feed as the bus
    delivers them, and a sender task exists only while some wait to be sent. A feed that stops
    (overflow, a close frame, the bus gone, a failed send, the session's end) cancels the read to
    close the socket.
    """
    task = asyncio.current_task()
    assert task is not None
    reading = False

    def stop_reading(_error: BaseException) -> None:
        if reading:
            task.cancel()

    async def snapshot() -> str:
        return await w.notifier.live_html(agent_id)

    async def send(text: str) -> None:
        await websocket.send_text(text)
        w.metrics.frames_sent.inc()

    size = w.settings.socket_queue_size
    feed = Feed(send, size, on_stop=stop_reading)
    # The session checked is the one that opened the socket: the watching supervisor's, if any.
    w.sockets[socket_id] = HeldSocket(viewer or agent_id, websocket.session.get(SESSION_VERSION), feed.stop)
    due = asyncio.get_running_loop().call_later(session_seconds_left(websocket) + 1, feed.stop, SessionDue())
    error: BaseException | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            if wallboard is None:
                own = await stack.enter_async_context(w.bus.subscribe(agent_stream(agent_id), size))
                await catch_up(w.bus, own, feed, since=since or None, snapshot=snapshot, wrap=lambda payload, cursor:
                               cursor_frame(payload, f"{agent_id}{CURSOR_SEPARATOR}{cursor}"))
            else:
                board = await stack.enter_async_context(w.bus.subscribe(wallboard_stream(wallboard), size))
                await listen_broadcast(board, feed, snapshot=lambda: w.wallboard.snapshot(wallboard))
            if feed.running():
                reading = True
                try:
                    await _drain(websocket)
                except asyncio.CancelledError:
                    if feed.running() or task.uncancel() > 0:
                        raise  # cancelled from outside: the server is stopping
                finally:
                    reading = False
            error = feed.error
    except Exception as exc:
        error = exc
    finally:
        due.cancel()
        await feed.aclose()
    if error is not None:
        await _close_after(websocket, agent_id, error)


async def _close_after(websocket: WebSocket, agent_id: int, exc: BaseException | None) -> None:
    """Close the socket with the code that tells the page what to do after its feed stopped."""
    if isinstance(exc, StreamClosed):
        with contextlib.suppress(Exception):
            await websocket.close(exc.code, exc.reason)
    elif isinstance(exc, SessionDue):
        with contextlib.suppress(Exception):
            await websocket.close(TRY_AGAIN_LATER, "session check")
    elif isinstance(exc, Overflow):
        log.info("agent %s socket fell behind; closing it so it replays", agent_id)
        with contextlib.suppress(Exception):
            await websocket.close(TRY_AGAIN_LATER, "fell behind")
    elif isinstance(exc, BusUnavailable):
        # Redis is down: expected during an outage, and the page retries by itself.
        log.warning("bus unavailable for agent %s's socket: %s; the page will retry", agent_id, exc)
        with contextlib.suppress(Exception):
            await websocket.close(TRY_AGAIN_LATER, "bus unavailable")
    elif exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
        log.error("live socket of agent %s failed", agent_id, exc_info=exc)
        with contextlib.suppress(Exception):
            await websocket.close(1011, "server error")


async def _drain(websocket: WebSocket) -> None:
    """Read until the browser goes away; the console expects nothing on the socket."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _refuse(websocket: WebSocket, reason: str) -> None:
    # Accept first: a handshake refused with HTTP 403 reaches the browser as 1006, which htmx
    # retries forever; 1008 tells it to stop and show "signed out".
    await websocket.accept()
    await websocket.close(POLICY_VIOLATION, reason)
