"""Presence from sockets: an agent with no open socket for the grace period goes offline.

Each node records the sockets it holds in live_sockets and refreshes them while they are open,
so a node that dies stops refreshing and its agents go offline after the grace period too.
The sweep is a query over the database that any node may run at the same time.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.sql import ColumnElement

from console.lifecycle import step_away
from console.models import Agent, AgentStatus, LiveSocket, utcnow
from console.ports import Context
from console.routing import release_offers

DEFAULT_GRACE = timedelta(seconds=30)
KEEP_CLOSED = timedelta(hours=1)


async def opened(ctx: Context, agent_id: int) -> str:
    """Record a new socket of the agent; returns its id for `refresh` and `closed`."""
    socket_id = secrets.token_hex(12)
    async with ctx.transaction() as session:
        session.add(LiveSocket(id=socket_id, agent_id=agent_id))
    return socket_id


async def closed(ctx: Context, socket_id: str) -> None:
    async with ctx.transaction() as session:
        now = utcnow()
        await session.execute(update(LiveSocket).where(LiveSocket.id == socket_id)
                              .values(closed_at=now, seen_at=now))


async def refresh(ctx: Context, socket_ids: Iterable[str]) -> None:
    """The node still holds these sockets."""
    ids = list(socket_ids)
    if ids:
        async with ctx.transaction() as session:
            await session.execute(update(LiveSocket).where(LiveSocket.id.in_(ids), LiveSocket.closed_at.is_(None))
                                  .values(seen_at=utcnow()))


def _gone(cutoff: datetime) -> ColumnElement[bool]:
    """Agents without a socket seen since `cutoff`, and who were not set present since then."""
    recent = exists().where(LiveSocket.agent_id == Agent.id, LiveSocket.seen_at >= cutoff)
    # An agent on a contact whose page went goes offline when the contact ends (noted once).
    offline_next = Agent.after_status.is_not(None) & (Agent.after_status == AgentStatus.OFFLINE)
    return and_(Agent.status != AgentStatus.OFFLINE, ~offline_next, ~recent, Agent.status_since < cutoff)


async def sweep(ctx: Context, grace: timedelta = DEFAULT_GRACE, limit: int = 100) -> int:
    """Agents whose sockets are all gone for `grace` go offline; their offers go to others."""
    cutoff = utcnow() - grace
    async with ctx.transaction() as session:
        gone = list(await session.scalars(select(Agent.id).where(_gone(cutoff)).limit(limit)))
        await session.execute(delete(LiveSocket).where(LiveSocket.closed_at < utcnow() - KEEP_CLOSED))
    offline = 0
    for agent_id in gone:
        async with ctx.transaction() as session:
            agent = await session.scalar(select(Agent).where(Agent.id == agent_id, _gone(cutoff))
                                         .with_for_update(skip_locked=True))
            if agent is None:
                continue  # came back meanwhile, or another node is on it
            await step_away(session, agent, AgentStatus.OFFLINE, "no connection")
        offline += 1
        # A transaction of its own: conversations are locked before agents everywhere else.
        async with ctx.transaction() as session:
            await release_offers(session, agent_id)
    return offline


