"""python -m console: serve, demo, migrate, create-agent, import-customers, seed, simulate, retention and more."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from console.errors import ConsoleError

log = logging.getLogger("console")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m console", description="Real-time contact-center agent console")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the console")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    demo = sub.add_parser("demo", help="migrate, seed and serve with simulated traffic")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--colleagues", type=int, default=2,
                      help="simulated colleagues who log in and work by themselves (0 to 2; 2)")
    _traffic_arguments(demo)
    sub.add_parser("migrate", help="bring the database schema up to date")
    agent = sub.add_parser("create-agent", help="create an agent, supervisor or admin")
    agent.add_argument("--email", required=True)
    agent.add_argument("--name", required=True)
    agent.add_argument("--password", required=True)
    agent.add_argument("--role", default="agent", choices=["agent", "supervisor", "admin"])
    agent.add_argument("--extension")
    agent.add_argument("--language", default="en", choices=["en", "nl"])
    imp = sub.add_parser("import-customers", help="import or update customers from a CSV file")
    imp.add_argument("file")
    seed = sub.add_parser("seed", help="add realistic customers with history")
    seed.add_argument("--customers", type=int, default=2000)
    skill = sub.add_parser("skill", help="add a skill that queues can require and agents can have")
    skill.add_argument("name")
    queue = sub.add_parser("queue", help="create a queue or change its settings")
    queue.add_argument("name")
    queue.add_argument("--offer-seconds", type=int, help="how long an offer rings before it moves on (20)")
    queue.add_argument("--wrap-up-seconds", type=int, help="the wrap-up time box (60)")
    queue.add_argument("--owner-first-seconds", type=int, help="how long the customer's owner gets it first (15)")
    queue.add_argument("--weights", help="waiting-time weights for tiers A,B,C (3,2,1)")
    queue.add_argument("--skill", action="append", help="a required skill, NAME or NAME:LEVEL (repeat)")
    queue.add_argument("--disposition", action="append", help="a disposition code of the queue (repeat)")
    queue.add_argument("--service-level-seconds", type=int,
                       help="contacts answered within this many seconds count toward the service level (20)")
    queue.add_argument("--service-level-goal", type=int, help="the service level aimed at, in percent (80)")
    queue.add_argument("--short-abandon-seconds", type=int,
                       help="contacts given up within this many seconds are short abandons, counted apart (5)")
    queue.add_argument("--longest-wait-seconds", type=int,
                       help="the wallboard marks the queue when a contact waits longer than this (60)")
    queue.add_argument("--hold-message", help="what callers on hold hear first (Twilio), spoken as written; \"\" for "
                       "the console's own in the caller's language")
    queue.add_argument("--hold-music-url", help="the music callers on hold hear (Twilio): an MP3 or WAV address")
    agent_cfg = sub.add_parser("agent", help="set an agent's skills, capacities, role, extension and language")
    agent_cfg.add_argument("email")
    agent_cfg.add_argument("--skill", action="append", help="NAME or NAME:LEVEL (repeat; replaces the list)")
    agent_cfg.add_argument("--capacity", help="contacts at once per channel, e.g. call=1,chat=3,mail=5")
    agent_cfg.add_argument("--role", choices=("agent", "supervisor", "admin"),
                           help="a new role; it ends the agent's sessions, so they log in again in it")
    agent_cfg.add_argument("--extension", help="the phone extension that rings them (\"\" takes it away)")
    agent_cfg.add_argument("--language", choices=("en", "nl"), help="the language they work in")
    agent_cfg.add_argument("--name", help="their name as colleagues see it")
    reset = sub.add_parser("reset-password", help="give an agent a new password and end their sessions")
    reset.add_argument("email")
    reset.add_argument("--password", help="the new password (at least 8 characters); without it one is made up "
                                          "and printed")
    site = sub.add_parser("chat-site", help="set up a website's chat widget, or change it; prints the tag to embed")
    site.add_argument("name")
    site.add_argument("--origin", action="append", help="where the widget may run, e.g. https://www.example.nl "
                                                        "(repeat; replaces the list)")
    site.add_argument("--queue", help="the queue its chats go to (\"\" for none)")
    site.add_argument("--greeting", help="what the widget says first")
    site.add_argument("--identity-required", action=argparse.BooleanOptionalAction, default=None,
                      help="refuse identifiers the website did not sign")
    site.add_argument("--hours", help="opening hours, e.g. \"mon-fri 09:00-17:00; sat 10:00-14:00\" (\"\": always)")
    site.add_argument("--timezone", help="the time zone of the hours (Europe/Amsterdam)")
    site.add_argument("--idle-minutes", type=int,
                      help="a chat whose visitor answers nothing for this many minutes ends (10)")
    site.add_argument("--prechat", action=argparse.BooleanOptionalAction, default=None,
                      help="ask the visitor's name and email (optional for them) before the first message")
    site.add_argument("--console-url", default="https://console.example.nl",
                      help="the console's public URL, for the printed tag")
    totp = sub.add_parser("totp", help="turn a supervisor's or admin's second factor (one-time codes) on or off")
    totp.add_argument("email")
    totp.add_argument("--off", action="store_true", help="turn it off")
    sub.add_parser("retention", help="anonymise and delete what is older than CONSOLE_RETAIN_*_DAYS, now")
    general = sub.add_parser("dispositions", help="the disposition codes for contacts without a queue list")
    general.add_argument("codes", nargs="+")
    sim = sub.add_parser("simulate", help="post realistic CTI calls to a running console")
    sim.add_argument("--url", default="http://127.0.0.1:8000")
    _traffic_arguments(sim)
    sim.add_argument("--count", type=int, default=0, help="stop after this many calls (0: run until stopped)")
    sim.add_argument("--auto-answer", action="store_true",
                     help="the extension answers by itself after the ring, without the agent's Accept")
    return parser


def _traffic_arguments(command: argparse.ArgumentParser) -> None:
    """How many simulated calls: at most --rate new ones a minute."""
    command.add_argument("--rate", type=float, default=4.0,
                         help="at most this many new simulated calls a minute (4; 0: no pause between them)")


def main(argv: Sequence[str] | None = None) -> int:
    from console import logs

    logs.configure(os.environ.get("CONSOLE_LOG_FORMAT", "text"))
    args = _parser().parse_args(argv)
    from console.web import commands

    try:
        return commands.run(args)
    except ConsoleError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


