"""Statements and transactions per step of one worked call, and what the pushes cost.

    .venv/bin/python -m benchmarks.statements [--database-url URL] [--calls N]

One agent, one known caller, the console routing: newCall, answer (the phone system answers on
the agent's extension), hangup, wrap-up. Each step runs through the domain services with the web
layer's notify port, as a node runs them; SQL statements and transactions are counted on the
engine (the service's own and those of the pushes that follow), with the CPU time of the step and
the bytes of the frames it published. The first call warms caches and is not counted; the
figures are the mean over the calls after it.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import event

STEPS = ("newCall", "answer", "hangup", "wrap-up")


@dataclass
class Counter:
    """SQL statements and transactions seen on an engine while counting is on.

    A transaction is a BEGIN ... COMMIT: reads in autocommit (console.db, PostgreSQL) send none, so
    their statements count and they do not.
    """

    statements: int = 0
    transactions: int = 0
    on: bool = False
    texts: list[str] = field(default_factory=list)

    def attach(self, engine: Any) -> None:
        sync = engine.sync_engine

        @event.listens_for(sync, "before_cursor_execute")
        def _statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if self.on and not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT",
                                                                      "RELEASE")):
                self.statements += 1
                self.texts.append(" ".join(statement.split())[:120])

        @event.listens_for(sync, "begin")
        def _begin(conn: Any) -> None:
            if self.on and conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                self.transactions += 1

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.statements = self.transactions = 0
        self.texts = []
        self.on = True
        try:
            yield
        finally:
            self.on = False


async def worked_calls(database_url: str, calls: int, show: bool = False) -> dict[str, dict[str, float]]:
    from console import auth, routing
    from console.db import Database
    from console.migrations import upgrade
    from console.models import ContactKind, ContactPoint, Customer
    from console.search import reindex
    from console.settings import load
    from console.web.wiring import build
    from realtime import Bus

    await asyncio.to_thread(upgrade, database_url)
    import os

    os.environ.update({"CONSOLE_DATABASE_URL": database_url, "CONSOLE_SECRET_KEY": "x" * 32,
                       "CONSOLE_CTI_TOKEN": "t", "CONSOLE_REDIS_URL": ""})
    w = build(load())
    db: Database = w.ctx.db
    async with db.transaction() as session:
        agent = await auth.create_agent(session, email="anna@x.nl", name="Anna", password="p" * 12,
                                        extension="201")
        customer = Customer(name="Jan Jansen", lifetime_value=Decimal("10"))
        session.add(customer)
        await session.flush()
        session.add(ContactPoint(customer_id=customer.id, kind=ContactKind.PHONE, value="0612345678",
                                 normalized="+31612345678"))
        await reindex(session, [customer.id])
        agent_id = agent.id
    bus: Bus = w.bus
    await bus.start()
    sent: list[int] = []
    original = bus.publish

    async def publish(stream: str, payload: str) -> str:
        sent.append(len(payload.encode()))
        return await original(stream, payload)

    bus.publish = publish  # type: ignore[method-assign]
    counter = Counter()
    counter.attach(db.engine)

    async def settle() -> None:
        drain = getattr(w.notifier, "drain", None)
        if drain is not None:
            await drain()

    await routing.set_status(w.ctx, agent_id, "available")
    await settle()
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for n in range(calls + 1):
        for step, action in call_steps(w.ctx, f"call-{n}", agent_id).items():
            sent.clear()
            with counter.counting():
                cpu = time.process_time()
                await action()
                served = time.process_time()
                await settle()
                spent = time.process_time() - cpu
            if show and n == calls:
                print(f"-- {step}: {counter.statements} statements, {counter.transactions} transactions")
                print("\n".join(counter.texts))
            if n > 0:
                totals[step]["statements"] += counter.statements / calls
                totals[step]["transactions"] += counter.transactions / calls
                totals[step]["cpu_ms"] += 1000 * spent / calls
                totals[step]["service_ms"] += 1000 * (served - cpu) / calls
                totals[step]["frame_bytes"] += sum(sent) / calls
    close = getattr(w.notifier, "close", None)
    if close is not None:
        await close()
    await bus.close()
    await db.close()
    return totals


def call_steps(ctx: Any, call_id: str, agent_id: int) -> dict[str, Callable[[], Awaitable[object]]]:
    """The four steps of one worked call, each one service call as the endpoints make it."""
    from console import conversations, wrapup
    from console.models import Channel

    conversation: dict[str, int] = {}

    async def new_call() -> None:
        arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id=call_id,
                                             from_address="0612345678", to_address="0201234567")
        conversation["id"] = arrival.conversation_id

    return {
        "newCall": new_call,
        "answer": lambda: conversations.answer(ctx, Channel.CALL, call_id, ["201"]),
        "hangup": lambda: conversations.hang_up(ctx, Channel.CALL, call_id, "normalClearing"),
        "wrap-up": lambda: wrapup.finish(ctx, agent_id, conversation["id"], "resolved"),
    }


def table(totals: dict[str, dict[str, float]]) -> str:
    lines = ["| step | statements | transactions | CPU ms | of it the service | of it the pushes | frame bytes |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    whole: dict[str, float] = defaultdict(float)
    rows = [(step, totals[step]) for step in STEPS]
    for _, row in rows:
        for key, value in row.items():
            whole[key] += value
    for step, row in [*rows, ("whole call", whole)]:
        lines.append(f"| {step} | {row['statements']:.0f} | {row['transactions']:.0f} | {row['cpu_ms']:.1f} | "
                     f"{row['service_ms']:.1f} | {row['cpu_ms'] - row['service_ms']:.1f} | "
                     f"{row['frame_bytes']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a database to use (default: a new SQLite file)")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--show", action="store_true", help="print the statements of the last call's steps")
    args = parser.parse_args()
    url = args.database_url
    if url is None:
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'statements.db'}"
    print(table(asyncio.run(worked_calls(url, args.calls, args.show))))


if __name__ == "__main__":
    main()
