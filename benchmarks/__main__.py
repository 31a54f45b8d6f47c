"""Run the benchmarks of issues 4, 9, 12, 13 and 14 and write benchmarks/RESULTS.md.

    python -m benchmarks                  # everything (what `make bench` runs), about 10 minutes
    python -m benchmarks --only b4,b5     # some of them; results go to benchmarks/out/RESULTS-partial.md
    python -m benchmarks --rebuild        # rebuild the cached 1,000,000-customer template database first

Needs PostgreSQL (CONSOLE_BENCH_POSTGRES_URL, else CONSOLE_TEST_POSTGRES_URL, else
postgresql+asyncpg://postgres@127.0.0.1:5432/postgres) and Redis (CONSOLE_BENCH_REDIS_URL, else
CONSOLE_TEST_REDIS_URL, else redis://127.0.0.1:6379/0). It creates databases named bench_* and
Redis keys under bench-<run>: and removes them afterwards, except the template bench_1m_template,
kept for the next run (drop it to free about 1.5 GB).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import traceback
from pathlib import Path

import uvloop

from benchmarks import report
from benchmarks.common import ROOT, PhaseResult, git_state, loadavg, machine, raise_fd_limit, run_id, versions

PHASES = ("b4", "b1", "b2", "b1-sqlite", "b5", "b3", "b6", "b7", "b8")
OUT = ROOT / "benchmarks" / "out"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help=f"comma-separated, from {', '.join(PHASES)}")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the 1M-customer template database")
    parser.add_argument("--rate", type=float, default=100.0, help="B1/B2 newCall rate per second (100)")
    parser.add_argument("--duration", type=float, default=60.0, help="B1 PostgreSQL window in seconds (60)")
    parser.add_argument("--sqlite-duration", type=float, default=20.0, help="B1 SQLite window in seconds (20)")
    parser.add_argument("--floor-duration", type=float, default=20.0, help="B2 window in seconds (20)")
    parser.add_argument("--low-rate", type=float, default=1.0, help="B1/B2 first window's rate, low (1)")
    parser.add_argument("--low-duration", type=float, default=30.0, help="that window's seconds (30)")
    parser.add_argument("--sockets", type=int, default=10_000, help="B3 idle sockets (10000)")
    parser.add_argument("--output", type=Path, default=None, help="where to write the results (Markdown)")
    return parser.parse_args(argv)


def command_line(argv: list[str]) -> str:
    return " ".join([".venv/bin/python -m benchmarks", *argv])


async def main(args: argparse.Namespace, argv: list[str]) -> int:
    from benchmarks import b1_pop, b2_floor, b3_sockets, b4_matching, b5_routing, b6_chat, b7_mail, b8_reports, dataset

    chosen = [p.strip() for p in args.only.split(",") if p.strip()] or list(PHASES)
    unknown = set(chosen) - set(PHASES)
    if unknown:
        print(f"unknown phase(s): {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    run = run_id()
    work = OUT / run
    work.mkdir(parents=True, exist_ok=True)
    print(f"benchmark run {run}: phases {', '.join(chosen)}; logs in {work}", flush=True)
    context = {"machine": machine(), "versions": await versions(), "git": git_state(), "command": command_line(argv),
               "load_before": loadavg(), "run": run, "chosen": chosen}
    results: list[PhaseResult] = []
    needs_pg = any(p in chosen for p in ("b4", "b1", "b5", "b3"))
    data = None
    if needs_pg:
        print("data: ensuring the 1,000,000-customer template database", flush=True)
        data = await dataset.ensure_template(rebuild=args.rebuild)
        print(f"  [data] {'built' if data.built else 'cached'}: {data.counts} ({data.seconds:.0f} s)", flush=True)
        context["data"] = data
    rates = {"rate": args.rate, "warm_up": 5.0, "low_rate": args.low_rate, "low_duration": args.low_duration}
    pop_frame = ""

    async def phase(key: str, title: str, job: object) -> None:
        result = PhaseResult(key, title)
        print(f"{key}: {title}", flush=True)
        started = time.perf_counter()
        try:
            await job(result)  # type: ignore[operator]
        except Exception as exc:
            result.error = f"{exc.__class__.__name__}: {exc}"
            traceback.print_exc()
        result.seconds = time.perf_counter() - started
        print(f"  [{key}] done in {result.seconds:.0f} s", flush=True)
        results.append(result)

    if "b4" in chosen and data is not None:
        await phase("B4", "matching at 1,000,000 customers",
                    lambda r: b4_matching.run(data.template, r))
    if "b1" in chosen and data is not None:
        async def b1(r: PhaseResult) -> None:
            nonlocal pop_frame
            load = await b1_pop.run_postgres(r, data.template, work, run, duration=args.duration, **rates)
            pop_frame = load.median_frame()
        await phase("B1", "screen-pop latency, PostgreSQL 1,000,000 customers, Redis bus", b1)
    if "b2" in chosen:
        await phase("B2", "the floor: bare Starlette websocket, pre-rendered fragment",
                    lambda r: b2_floor.run(r, work / "b2", pop_frame,
                                           [(args.low_rate, args.low_duration), (args.rate, args.floor_duration)]))
    if "b1-sqlite" in chosen:
        await phase("B1-SQLite", "screen-pop latency, embedded default (SQLite 10,000 customers, memory bus)",
                    lambda r: b1_pop.run_sqlite(r, work, duration=args.sqlite_duration, **rates))
    if "b5" in chosen and data is not None:
        await phase("B5", "routing throughput, PostgreSQL, two nodes, 500 agents",
                    lambda r: b5_routing.run(r, data.template, work, run))
    if "b3" in chosen and data is not None:
        await phase("B3", "sockets: 10,000 idle; wallboard frame to 1,000 supervisors",
                    lambda r: b3_sockets.run(r, data.template, work, run, target=args.sockets))
    if "b6" in chosen:
        await phase("B6", "chat: 1,000 open chats on one node, messages at 100/s both ways, Redis bus",
                    lambda r: b6_chat.run(r, work, run))
    if "b7" in chosen:
        await phase("B7", "mail: 1,000 mails delivered to the IMAP server at once, PostgreSQL, Redis bus",
                    lambda r: b7_mail.run(r, work, run))
    if "b8" in chosen:
        await phase("B8", "reports: a 30-day report over 1,000,000 conversations, PostgreSQL",
                    lambda r: b8_reports.run(r, run))
    context["seconds"] = time.perf_counter() - began
    context["load_after"] = loadavg()
    full = set(chosen) == set(PHASES)
    output = args.output or (ROOT / "benchmarks" / "RESULTS.md" if full else OUT / "RESULTS-partial.md")
    output.write_text(report.render(context, results, args))
    print(f"results written to {output} ({context['seconds']:.0f} s in all)", flush=True)
    if not any(r.error for r in results):
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    argv = sys.argv[1:]
    arguments = parse(argv)
    raise_fd_limit()
    sys.exit(uvloop.run(main(arguments, argv)))
