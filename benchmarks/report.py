"""RESULTS.md: the machine, the versions, the figures against the issue's targets, the details and the limits."""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

from benchmarks.common import PhaseResult
from benchmarks.limits import ANALYSIS

LABELS = {"redis": "redis-py"}
PHASE_FLAG = {"B1": "b1", "B2": "b2", "B1-SQLite": "b1-sqlite", "B3": "b3", "B4": "b4", "B5": "b5", "B6": "b6",
              "B7": "b7", "B8": "b8"}


def ms(value: Any, digits: int = 1) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}f} ms"


def ratio(a: Any, b: Any) -> str:
    if not all(isinstance(v, int | float) for v in (a, b)) or not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    if math.isinf(a):
        return "∞"
    return f"{a / b:.0f}" if a / b >= 10 else f"{a / b:.1f}"


def _find(results: list[PhaseResult], key: str) -> PhaseResult | None:
    return next((r for r in results if r.key == key), None)


def _pop_row(figures: dict[str, Any], name: str) -> str:
    f = figures.get(name)
    if not isinstance(f, dict):
        return "not measured"
    text = f"p50 {ms(f['p50 ms'])}, p95 {ms(f['p95 ms'])}, **p99 {ms(f['p99 ms'])}**"
    extra = f" ({f['calls']} calls"
    if f.get("without pop"):
        extra += f", {f['without pop']} without a pop within 15 s = ∞"
    if "pops per s" in f:
        extra += f"; {f['pops per s']} pops/s achieved, node CPU {f['node CPU ms per pop']:.0f} ms per call"
        if "node CPU ms per pop above idle" in f:
            extra += f", {f['node CPU ms per pop above idle']:.0f} above idle"
    return text + extra + ")"


def _above_idle(f: dict[str, Any]) -> str:
    above = f.get("node CPU ms per pop above idle")
    return "" if above is None else f" ({above:.0f} ms above the node's idle use)"


def _met(value: Any, limit: float, below: bool = True) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "n/a"
    ok = value <= limit if below else value >= limit
    return "yes" if ok else "**no**"


def table(results: list[PhaseResult], args: argparse.Namespace) -> list[str]:
    rows = ["| Benchmark | Target | Measured | Met |", "| --- | --- | --- | --- |"]
    rate, low = f"{args.rate:g}/s", f"{args.low_rate:g}/s"
    b1, b1s, b2 = _find(results, "B1"), _find(results, "B1-SQLite"), _find(results, "B2")
    for result, label in ((b1, "PostgreSQL 1M + Redis"), (b1s, "SQLite 10k + memory bus")):
        if result is None:
            continue
        for r, note in ((rate, "the issue's load"), (low, "low rate, for comparison")):
            f = result.figures.get(f"B1 {label} @{r}")
            limit = 20 if label.startswith("PostgreSQL") else 30
            target = f"p99 ≤ {limit} ms, no call without a pop" if r == rate else "(for comparison)"
            met = ""
            if isinstance(f, dict) and r == rate:
                met = "yes" if _met(f["p99 ms"], limit) == "yes" and not f.get("without pop") else "**no**"
            rows.append(f"| B1 screen-pop, {label}, newCall {r} ({note}) | {target} | "
                        f"{_pop_row(result.figures, f'B1 {label} @{r}')} | {met} |")
            if isinstance(f, dict) and r == rate and label.startswith("PostgreSQL") and "node CPU ms per pop" in f:
                rows.append(f"| B1 node CPU per worked call, {label}, {r} | ≤ 10 ms | "
                            f"**{f['node CPU ms per pop']:.0f} ms**{_above_idle(f)} | "
                            f"{_met(f['node CPU ms per pop'], 10)} |")
    if b1s is not None and "B1 SQLite 10k + memory bus sheds from" in b1s.figures:
        shed = b1s.figures["B1 SQLite 10k + memory bus sheds from"]
        rows.append(f"| B1 embedded: the rate where it starts to shed (503 + Retry-After) | (to show) | "
                    f"**{f'{shed:g}/s' if shed is not None else 'not reached'}** (rate sweep, 10 s per rate; "
                    f"details in B1-SQLite) | |")
    if b2 is not None:
        for r in (rate, low):
            f = b2.figures.get(f"B2 floor @{r}")
            if isinstance(f, dict):
                rows.append(f"| B2 floor, bare Starlette, {r} | (the floor) | p50 {ms(f['p50 ms'], 2)}, "
                            f"p95 {ms(f['p95 ms'], 2)}, **p99 {ms(f['p99 ms'], 2)}** ({f['calls']} triggers) | |")
        for result, label in ((b1, "PostgreSQL"), (b1s, "SQLite")):
            if result is None:
                continue
            for r in (rate, low):
                f1 = result.figures.get(f"B1 {label} 1M + Redis @{r}") if label == "PostgreSQL" else \
                    result.figures.get(f"B1 {label} 10k + memory bus @{r}")
                f2 = b2.figures.get(f"B2 floor @{r}")
                if isinstance(f1, dict) and isinstance(f2, dict):
                    p99 = f1["p99 ms"] / f2["p99 ms"] if f2["p99 ms"] else float("nan")
                    rows.append(f"| B1/B2, {label}, {r} | ≤ 3 | p50 {ratio(f1['p50 ms'], f2['p50 ms'])}, "
                                f"p95 {ratio(f1['p95 ms'], f2['p95 ms'])}, "
                                f"**p99 {ratio(f1['p99 ms'], f2['p99 ms'])}** | {_met(p99, 3) if r == rate else ''} |")
    b3 = _find(results, "B3")
    if b3 is not None:
        f = b3.figures
        rows.append(f"| B3 memory per idle agent socket | ≤ 40 KiB | **{f.get('B3 KiB per socket', 'n/a')} KiB** "
                    f"({f.get('B3 sockets open', '?')} sockets on one node, node RSS {f.get('B3 node RSS MiB', '?')} "
                    f"MiB, idle CPU {f.get('B3 idle node CPU %', '?')} %) | {_met(f.get('B3 KiB per socket'), 40)} |")
        rows.append(f"| B3 wallboard frame (32 KiB) to 1,000 supervisor sockets, until the last has it | ≤ 50 ms | "
                    f"**{ms(f.get('B3 wallboard last ms'), 0)}** (median of 3) | "
                    f"{_met(f.get('B3 wallboard last ms'), 50)} |")
    b4 = _find(results, "B4")
    if b4 is not None:
        for kind in ("phone", "email"):
            p99 = b4.figures.get(f"B4 {kind} p99 ms")
            parts = b4.figures.get(f"B4 {kind} parts p99 ms", {})
            rows.append(f"| B4 match by {kind} at 1,000,000 customers | p99 ≤ 1 ms | p50 "
                        f"{ms(b4.figures.get(f'B4 {kind} p50 ms'), 3)}, **p99 {ms(p99, 3)}** (bare indexed query "
                        f"p99 {ms(parts.get('bare query'), 3)}, normalising p99 {ms(parts.get('normalise'), 3)}) | "
                        f"{_met(p99, 1)} |")
    b5 = _find(results, "B5")
    if b5 is not None:
        value = b5.figures.get("B5 routed per s")
        reply = b5.figures.get("B5 newCall reply", {})
        rows.append(f"| B5 routing throughput, PostgreSQL, 2 nodes, 500 agents | ≥ 500/s | **{value}/s** (newCall "
                    f"reply p50 {ms(reply.get('p50 ms'))}, p99 {ms(reply.get('p99 ms'))}) | "
                    f"{_met(value, 500, below=False)} |")
    b6 = _find(results, "B6")
    if b6 is not None:
        f = b6.figures
        for side in ("visitor→agent", "agent→visitor"):
            for label in ("@20/s", "@100/s"):
                p99 = f.get(f"B6 {side} {label} p99 ms")
                rows.append(f"| B6 chat message {side}, 1,000 open chats, {label} in all | p99 ≤ 20 ms (at 100/s) | "
                            f"p50 {ms(f.get(f'B6 {side} {label} p50 ms'))}, **p99 {ms(p99)}** "
                            f"({f.get(f'B6 {side} {label} lost', '?')} not delivered) | "
                            f"{_met(p99, 20) if label == '@100/s' else ''} |")
        low, high = f.get("B6 CPU ms per message @20/s"), f.get("B6 CPU ms per message @100/s")
        rows.append(f"| B6 memory per idle visitor socket; node CPU per message at 20/s, 100/s | (measured) | "
                    f"**{f.get('B6 KiB per visitor socket', 'n/a')} KiB**; **{ms(low, 2)}**, {ms(high, 2)} | |")
    b7 = _find(results, "B7")
    if b7 is not None:
        f = b7.figures
        stored, popped = f.get("B7 all stored s"), f.get("B7 all popped s")
        seconds = [f"{v} s" if isinstance(v, int | float) else str(v) for v in (stored, popped)]
        rows.append(f"| B7 1,000 mails delivered to the IMAP server at once: until all are stored conversations; "
                    f"until all have popped | (measured) | **{seconds[0]}**; **{seconds[1]}** | |")
        rows.append(f"| B7 mails stored per second; node CPU per mail | (measured) | "
                    f"**{f.get('B7 mails stored per s', 'n/a')}/s**; {ms(f.get('B7 CPU ms per mail'))} | |")
    b8 = _find(results, "B8")
    if b8 is not None:
        f = b8.figures
        p50 = f.get("B8 report p50 ms")
        rows.append(f"| B8 30-day report over 1,000,000 conversations (per day, queue, channel, agent; dispositions) "
                    f"| ≤ 200 ms | **p50 {ms(p50)}**, max {ms(f.get('B8 report max ms'))}; equals a full recount: "
                    f"{f.get('B8 equals recount', 'n/a')} | {_met(p50, 200)} |")
        rows.append(f"| B8 statistics counted from that history (after an upgrade) | (measured) | "
                    f"**{f.get('B8 statistics counted s', 'n/a')} s** | |")
    return rows


def render(context: dict[str, Any], results: list[PhaseResult], args: argparse.Namespace) -> str:
    m, v = context["machine"], context["versions"]
    lines = [
        "# Benchmark results (issues 4, 9, 12 and 13)",
        "",
        f"Written by `{context['command']}` (what `make bench` runs) on {time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"run `{context['run']}`, {context['seconds'] / 60:.1f} minutes in all. How they are made: "
        "`benchmarks/*.py`, each module's docstring; README, section Benchmarks.",
        "",
        "**The numbers are noisy.** The machine is shared with another developer running test suites at the same "
        f"time: the load average was {context['load_before']} when the run started and {context['load_after']} when "
        "it ended, on 2 cores, so every process here got well under a core at times. Each phase prints the load "
        "average at its start and end, and CPU time per call, which depends less on the neighbours than wall time.",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory']}; {m['os']}, kernel {m['kernel']}",
        f"- Python {v['python']}; {v['postgresql']} ({v['postgresql settings']}); Redis {v['redis server']}; "
        f"SQLite {v['sqlite']}",
        "- " + ", ".join(f"{LABELS.get(name, name)} {v[name]}" for name in (
            "starlette", "uvicorn", "websockets", "sqlalchemy", "asyncpg", "aiosqlite", "redis", "hiredis", "jinja2",
            "httptools", "uvloop", "phonenumbers")),
        f"- App code measured: {context['git']}",
        "- Nodes: `python -m console serve --port N` (one uvicorn worker, httptools, websockets-sansio without "
        "permessage-deflate, access log on), each in its own process; the load generator is one more process "
        "(uvloop, a minimal HTTP/1.1 keep-alive client, the `websockets` client offering permessage-deflate as "
        "browsers do; the nodes decline it).",
    ]
    data = context.get("data")
    if data is not None:
        lines += ["", "## Data", ""]
        lines.append(f"- PostgreSQL template `{data.template}`: " + ", ".join(f"{n:,} {t}" for t, n in
                                                                             data.counts.items()))
        lines += [f"- {note}" for note in data.notes]
        lines.append("- See benchmarks/dataset.py for what is seeded by the console and what is generated in SQL.")
    lines += ["", "## Figures", "", *table(results, args), ""]
    lines += ["`∞`: calls whose pop had not arrived 15 s after the last call was sent count as infinitely late, "
              "so a percentile reaching them is ∞ (the node could not keep up). Ratios B1/B2 are of the same "
              "percentile at the same rate.", ""]
    for result in results:
        flag = PHASE_FLAG.get(result.key, result.key.lower())
        lines += [f"## {result.key}: {result.title}", "",
                  f"Command: `make bench` (all phases), or this phase alone: `.venv/bin/python -m benchmarks --only "
                  f"{flag}`. Took {result.seconds:.0f} s.", ""]
        if result.error:
            lines += [f"**Failed:** {result.error}", ""]
        lines += ["```", *result.details, "```", ""]
    lines += [ANALYSIS.strip(), ""]
    return "\n".join(lines)
