"""What one worked call costs the database, per step: a budget a change must not exceed unnoticed.

The counts come from benchmarks.statements (the console's services and pushes, counted on the
engine); benchmarks/RESULTS.md reports them with the CPU they cost. A step that needs one more
statement or transaction is a decision: raise its budget here and say why in RESULTS.md.
"""

from __future__ import annotations

import pytest

from benchmarks.statements import STEPS, worked_calls

# (statements, transactions) per step. PostgreSQL reads in autocommit (no BEGIN, no COMMIT), and
# SQLite runs a presence change as three statements where PostgreSQL runs one.
BUDGET = {
    "postgresql": {"newCall": (15, 1), "answer": (8, 1), "hangup": (8, 1), "wrap-up": (9, 1)},
    "sqlite": {"newCall": (16, 2), "answer": (10, 1), "hangup": (10, 2), "wrap-up": (11, 1)},
}


@pytest.fixture(autouse=True)
def _restore_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # worked_calls configures the console through the environment, as a node is configured.
    for name in ("CONSOLE_DATABASE_URL", "CONSOLE_SECRET_KEY", "CONSOLE_CTI_TOKEN", "CONSOLE_REDIS_URL"):
        monkeypatch.setenv(name, "")


async def test_a_worked_call_stays_within_its_statements_and_transactions(database_url: str) -> None:
    totals = await worked_calls(database_url, calls=3)
    budget = BUDGET["sqlite" if database_url.startswith("sqlite") else "postgresql"]
    spent = {step: (round(totals[step]["statements"]), round(totals[step]["transactions"])) for step in STEPS}
    over = {step: (spent[step], budget[step]) for step in STEPS
            if spent[step][0] > budget[step][0] or spent[step][1] > budget[step][1]}
    assert not over, f"over budget (spent, budget) per step: {over}"
    # Every step talks to the database: a count of zero would mean the counter saw nothing.
    assert all(statements > 0 for statements, _ in spent.values()), spent
    frames = sum(totals[step]["frame_bytes"] for step in STEPS)
    assert frames > 0, "the pushes published nothing"
