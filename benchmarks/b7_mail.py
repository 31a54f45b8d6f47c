"""B7 mail: 1,000 mails delivered to the IMAP server at once.

One node on PostgreSQL with the Redis bus reads a Dovecot mailbox (a throwaway server, as the
tests start it) and waits in IDLE. AGENTS agents who take MAILS_EACH mails at once are available
with their page's socket open. MAILS mails from known and unknown senders are then appended to
the mailbox as fast as one IMAP client can, and the clock runs from the first append until every
mail is a stored conversation (in the database) and until every one has popped (its offer frame,
recognised by the subject's marker, reached an agent's socket). Mails per second stored is over
the span from the first mail stored to the last. CPU is the node's from the first append until
every mail has popped.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from benchmarks.client import AgentSocket, close_sockets, open_sockets
from benchmarks.common import (
    PhaseResult,
    cpu_seconds,
    delete_redis_keys,
    drop_database,
    loadavg,
    mint_session,
    pg_admin,
    rss_bytes,
    sa_url,
    start_node,
    wait_healthy,
)

MAILS = 1000
AGENTS = 100
MAILS_EACH = 10
MARK = re.compile(r"bm7-(\d+)\b")


def _mail(n: int) -> bytes:
    sender = f"klant{n % 400}@bench.example" if n % 5 else f"onbekend{n}@elders.example"
    return (f"From: Klant {n} <{sender}>\r\nTo: service@bench.example\r\nSubject: bm7-{n} Vraag over mijn "
            f"bestelling\r\nMessage-ID: <bm7-{n}@bench.example>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Goedendag,\r\n\r\nWaar blijft bestelling {n}? Ik heb al twee keer gebeld.\r\n\r\n"
            f"Met vriendelijke groet,\r\nKlant {n}\r\n").encode()


async def _prepare(url: str) -> None:
    """Agents who take MAILS_EACH mails, available; the queue of the mailbox; the known senders."""
    from benchmarks.dataset import available_agents
    from console import config
    from console.models import ContactKind, ContactPoint, Customer

    async def senders(session: Any) -> None:
        # Nobody answers in the benchmark: the offers ring long enough for every mail to pop
        # before any rings out (a ring-out twice in a row sets an agent away).
        await config.configure_queue(session, "mail", config.QueueSettings(offer_seconds=900))
        for n in range(400):
            customer = Customer(name=f"Klant {n}")
            session.add(customer)
            await session.flush()
            address = f"klant{n}@bench.example"
            session.add(ContactPoint(customer_id=customer.id, kind=ContactKind.EMAIL, value=address,
                                     normalized=address))

    await available_agents(url, AGENTS, "mail", MAILS_EACH, senders)


async def _stored(database: str) -> tuple[int, float | None, float | None]:
    """Mails stored, and the first and last store's time (epoch seconds)."""
    rows = await pg_admin("SELECT count(*), extract(epoch FROM min(created_at)), extract(epoch FROM max(created_at)) "
                          "FROM mails", database=database)
    count, first, last = rows[0]
    return int(count), float(first) if first is not None else None, float(last) if last is not None else None


async def run(result: PhaseResult, work: Path, run_id: str, mails: int = MAILS) -> None:
    from tests.integrations.email.dovecot import DOVECOT, Dovecot

    if not DOVECOT.exists():
        raise RuntimeError("B7 needs Debian's dovecot-imapd (apt-get install dovecot-imapd)")
    database = f"bench_{run_id}_b7"
    prefix = f"bench-{run_id}-b7:"
    await pg_admin(f'CREATE DATABASE "{database}"')
    url = sa_url(database)
    server = Dovecot()
    node = None
    agents: list[AgentSocket] = []
    popped: dict[int, float] = {}

    def on_frame(sock: AgentSocket, text: str, now: float) -> None:
        if "pop-state" in text:
            for found in MARK.findall(text):
                popped.setdefault(int(found), now)

    try:
        await asyncio.to_thread(server.start)
        await _prepare(url)
        node = start_node(url, work / "b7", redis_prefix=prefix,
                          CONSOLE_MAILBOX_BENCH=server.url(poll=600) + "&address=service@bench.example&queue=mail")
        await wait_healthy(node.base, node.process)
        pid = node.process.pid
        logins = [mint_session(i) for i in range(1, AGENTS + 1)]
        agents = await open_sockets(logins, [node.ws], [node.base], parallel=50, on_frame=on_frame)
        await asyncio.sleep(3)  # the poller's first read (an empty folder), then IDLE
        rss0, cpu0 = rss_bytes(pid), cpu_seconds(pid)
        began, epoch0 = time.perf_counter(), time.time()
        await asyncio.to_thread(server.deliver, *(_mail(n) for n in range(mails)))
        delivered = time.perf_counter() - began
        result.note(f"{mails} mails appended to the IMAP mailbox in {delivered:.1f} s (one client, one after another)")
        stored_at = None
        deadline = time.perf_counter() + 600
        while time.perf_counter() < deadline:
            count, _, _ = await _stored(database)
            if count >= mails and stored_at is None:
                stored_at = time.perf_counter() - began
            if stored_at is not None and len(popped) >= mails:
                break
            await asyncio.sleep(0.2)
        cpu = cpu_seconds(pid) - cpu0  # until all popped (or the deadline)
        count, first, last = await _stored(database)
        all_popped = max(popped.values()) - began if len(popped) >= mails else None
        rate = (count - 1) / (last - first) if first is not None and last is not None and last > first else 0.0
        result.figures["B7 mails stored"] = count
        result.figures["B7 all stored s"] = round(stored_at, 1) if stored_at is not None else "not within 600 s"
        result.figures["B7 all popped s"] = round(all_popped, 1) if all_popped is not None else \
            f"{len(popped)} of {mails} within 600 s"
        result.figures["B7 mails stored per s"] = round(rate, 1)
        result.figures["B7 CPU ms per mail"] = round(1000 * cpu / max(count, 1), 1)
        first_store = (first - epoch0) if first is not None else float("nan")
        result.note(f"first mail stored {first_store:.1f} s after the first append; {count} stored at "
                    f"{rate:.0f} mails/s; {len(popped)} pops reached the agents' sockets; node CPU {cpu:.1f} s "
                    f"({1000 * cpu / max(count, 1):.1f} ms a mail), resident memory {rss0 / 2**20:.0f} → "
                    f"{rss_bytes(pid) / 2**20:.0f} MiB; load average {loadavg()}")
    finally:
        if node is not None:
            node.stop()
        await close_sockets(agents)
        await asyncio.to_thread(server.close)
        await drop_database(database)
        await delete_redis_keys(prefix)
