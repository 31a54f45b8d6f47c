"""Work one node does for all of them (the wallboard, the statistics): whoever holds the lease.

A lease is a row: its holder and until when. Holding it again before it runs out keeps it; a node
that stops renewing it (it crashed, it lost the database) loses it when it runs out, and another
node takes it over then.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from console.db import Database
from console.models import Lease, utcnow


def node_name() -> str:
    """This process, as leases name their holder (unique even for two workers of one machine)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


async def hold(db: Database, name: str, holder: str, seconds: float) -> bool:
    """Take or renew the lease `name` for `seconds`; False while another holder has it."""
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    async with db.transaction() as session:
        renewed = await session.execute(
            update(Lease).where(Lease.name == name, or_(Lease.holder == holder, Lease.until < now))
            .values(holder=holder, until=until).execution_options(synchronize_session=False))
        if getattr(renewed, "rowcount", 0):
            return True
    try:
        async with db.transaction() as session:
            await session.execute(insert(Lease).values(name=name, holder=holder, until=until))
    except IntegrityError:
        return False  # it exists and someone else holds it (or took it a moment ago)
    return True


async def release(db: Database, name: str, holder: str) -> None:
    """Give the lease up now (a node that stops), so another takes over at once."""
    async with db.transaction() as session:
        await session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder)
                              .execution_options(synchronize_session=False))


async def mark(db: Database, name: str, seconds: float) -> None:
    """Say that something holds for `seconds` from now (a node has supervisors watching), whoever
    says it; `marked` reads it."""
    until = utcnow() + timedelta(seconds=seconds)
    async with db.transaction() as session:
        done = await session.execute(update(Lease).where(Lease.name == name).values(holder="", until=until)
                                     .execution_options(synchronize_session=False))
        if getattr(done, "rowcount", 0):
            return
    try:
        async with db.transaction() as session:
            await session.execute(insert(Lease).values(name=name, holder="", until=until))
    except IntegrityError:
        pass  # another node marked it a moment ago


async def marked(db: Database, name: str) -> bool:
    async with db.reading() as session:
        until = await session.scalar(select(Lease.until).where(Lease.name == name))
    return until is not None and until > utcnow()
