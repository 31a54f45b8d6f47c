"""What each CLI command does. Like console.web.app, this is a wiring point: it may name adapters."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import random
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from console import settings as settings_module
from console.db import Database
from console.errors import ConsoleError, InvalidInput
from console.settings import Settings

DEMO_PASSWORD = "demo-password"
DEMO_AGENTS = [
    ("anna@demo.example", "Anna de Vries", "agent", "201", "nl"),
    ("bram@demo.example", "Bram Jansen", "agent", "202", "nl"),
    ("chloe@demo.example", "Chloe Smith", "agent", "203", "en"),
    ("daan@demo.example", "Daan Bakker", "agent", "204", "nl"),
    ("sophie@demo.example", "Sophie Visser", "supervisor", "300", "nl"),
    ("noor@demo.example", "Noor de Wit", "admin", "301", "nl"),
]
# Simulated colleagues (integrations.demo_agents) who log in and work by themselves, so the demo's
# traffic flows and the wallboard moves even while the newcomer only watches as a supervisor.
DEMO_COLLEAGUES = [
    ("eva@demo.example", "Eva de Boer", "agent", "205", "nl"),
    ("finn@demo.example", "Finn Smit", "agent", "206", "en"),
]


def run(args: argparse.Namespace) -> int:
    handler = {
        "serve": serve,
        "demo": demo,
        "migrate": migrate,
        "create-agent": create_agent,
        "import-customers": import_customers,
        "seed": seed,
        "simulate": simulate,
        "skill": skill,
        "queue": queue,
        "agent": agent,
        "reset-password": reset_password,
        "chat-site": chat_site,
        "dispositions": dispositions,
        "totp": totp,
        "retention": retention,
    }[args.command]
    return handler(args)


def _db_settings() -> Settings:
    return settings_module.load(need_secret=False)


def migrate(args: argparse.Namespace | None = None, settings: Settings | None = None) -> int:
    from console.migrations import upgrade

    settings = settings or _db_settings()
    upgrade(settings.database_url)
    print(f"database is up to date ({_safe_url(settings.database_url)})")
    return 0


def _safe_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "…@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def _check_workers(settings: Settings, workers: int) -> None:
    if workers > 1 and settings.is_sqlite:
        raise InvalidInput(
            "SQLite serves one process only; to run several workers or nodes use PostgreSQL: set "
            "CONSOLE_DATABASE_URL=postgresql+asyncpg://... (and CONSOLE_REDIS_URL=redis://...)",
            field="workers",
        )
    if workers > 1 and not settings.redis_url:
        # Each worker would have its own in-process bus: a pop published by one never reaches
        # a socket held by another.
        raise InvalidInput(
            "several workers need a shared bus: set CONSOLE_REDIS_URL=redis://... (or run one worker)",
            field="workers",
        )


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = settings_module.load()
    _check_workers(settings, args.workers)
    if settings.is_sqlite:
        migrate(settings=settings)
    from console.web.app import SERVER_OPTIONS

    uvicorn.run("console.web.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                log_level="info", **SERVER_OPTIONS)
    return 0


T = TypeVar("T")


def _with_database(job: Callable[[Database, Settings], Awaitable[T]]) -> T:
    """Run `job` against the configured database (no secret key needed), closing it after."""
    settings = _db_settings()

    async def go() -> T:
        db = Database(settings.database_url)
        try:
            return await job(db, settings)
        finally:
            await db.close()

    return asyncio.run(go())


def create_agent(args: argparse.Namespace) -> int:
    from console.auth import create_agent as create

    async def job(db: Database, settings: Settings) -> int:
        async with db.transaction() as session:
            agent = await create(session, email=args.email, name=args.name, password=args.password,
                                 role=args.role, extension=args.extension, language=args.language)
            print(f"created {agent.role.value} {agent.name} <{agent.email}> (id {agent.id})")
        return 0

    return _with_database(job)


def import_customers(args: argparse.Namespace) -> int:
    from console.importer import import_file

    if not Path(args.file).is_file():
        raise InvalidInput("no such file: %(path)s", field="file", path=args.file)

    async def job(db: Database, settings: Settings) -> int:
        report = await import_file(db, Path(args.file), region=settings.default_region)
        for line, reason in report.errors:
            print(f"line {line}: {reason}", file=sys.stderr)
        print(f"{report.created} created, {report.updated} updated, {len(report.errors)} rows with errors")
        return 1 if report.errors and not (report.created or report.updated) else 0

    return _with_database(job)


def seed(args: argparse.Namespace) -> int:
    from console.seed import seed as make

    async def job(db: Database, settings: Settings) -> int:
        print(await make(db, customers=args.customers, region=settings.default_region))
        return 0

    return _with_database(job)


def skill(args: argparse.Namespace) -> int:
    from console import config

    async def job(db: Database, settings: Settings) -> int:
        async with db.transaction() as session:
            created = await config.add_skill(session, args.name)
        print(f"added skill {created.name}")
        return 0

    return _with_database(job)


def _weights(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        a, b, c = (float(part) for part in text.split(","))
    except ValueError:
        raise InvalidInput("--weights takes three numbers for tiers A,B,C, like 3,2,1", field="weights") from None
    return a, b, c


def queue(args: argparse.Namespace) -> int:
    from console import config

    values = config.QueueSettings(offer_seconds=args.offer_seconds, wrap_up_seconds=args.wrap_up_seconds,
                                  owner_first_seconds=args.owner_first_seconds, weights=_weights(args.weights),
                                  skills=args.skill, dispositions=args.disposition,
                                  service_level_seconds=args.service_level_seconds,
                                  service_level_goal=args.service_level_goal,
                                  short_abandon_seconds=args.short_abandon_seconds,
                                  longest_wait_seconds=args.longest_wait_seconds,
                                  hold_message=args.hold_message, hold_music_url=args.hold_music_url)

    async def job(db: Database, settings: Settings) -> int:
        async with db.transaction() as session:
            found, created = await config.configure_queue(session, args.name, values)
            print(f"{'created' if created else 'updated'} queue {found.name}: offers ring {found.offer_seconds} s, "
                  f"wrap-up {found.wrap_up_seconds} s, owner first {found.owner_first_seconds} s, "
                  f"weights A/B/C {found.weight_a:g}/{found.weight_b:g}/{found.weight_c:g}; service level "
                  f"{found.service_level_goal}% within {found.service_level_seconds} s, short abandon "
                  f"{found.short_abandon_seconds} s, longest wait {found.longest_wait_seconds} s")
        return 0

    return _with_database(job)


def agent(args: argparse.Namespace) -> int:
    from console import config

    capacity: dict[str, int] = {}
    for part in (args.capacity or "").split(","):
        if part.strip():
            channel, _, value = part.partition("=")
            if not value.strip().lstrip("-").isdigit():
                raise InvalidInput("--capacity takes channel=number pairs, like call=1,chat=3,mail=5",
                                   field="capacity")
            capacity[channel.strip()] = int(value)

    async def job(db: Database, settings: Settings) -> int:
        async with db.transaction() as session:
            found = await config.configure_agent(session, args.email, skills=args.skill, capacity=capacity,
                                                 role=args.role, extension=args.extension, language=args.language,
                                                 name=args.name)
            print(f"{found.name} ({found.role.value}, ext. {found.extension or 'none'}, {found.language}): "
                  f"capacity call {found.capacity_call}, chat {found.capacity_chat}, mail {found.capacity_mail}")
        return 0

    return _with_database(job)


def reset_password(args: argparse.Namespace) -> int:
    from console import auth

    async def job(db: Database, settings: Settings) -> int:
        async with db.transaction() as session:
            password = await auth.reset_password(session, args.email, args.password,
                                                 by=f"{getpass.getuser()} on the command line")
        print(f"the password of {args.email.strip().lower()} is reset; their sessions have ended")
        if args.password is None:
            print(f"new password: {password}")
            print("hand it over in person or by phone; they can change it under Account in the console")
        return 0

    return _with_database(job)


def chat_site(args: argparse.Namespace) -> int:
    from console import chat

    values = chat.SiteSettings(origins=args.origin, queue=args.queue, greeting=args.greeting,
                               identity_required=args.identity_required, hours=args.hours, timezone=args.timezone,
                               idle_minutes=args.idle_minutes, prechat=args.prechat)

    async def job(db: Database, settings: Settings) -> int:
        async with db.transaction() as session:
            site, created = await chat.configure_site(session, args.name, values)
            print(f"{'created' if created else 'changed'} chat site {site.name}: origins "
                  f"{', '.join(site.origins.split())}; identity {'required' if site.identity_required else 'optional'}"
                  f"; hours {site.hours or 'always open'} ({site.timezone})")
            print(f"site key: {site.key}")
            print(f"secret for signing identifiers (keep it on the website's server): {site.secret}")
            print("put this on every page of the site, before </body>:")
            url = args.console_url.rstrip("/")
            print(f'  <script src="{url}/chat/widget.js" data-site="{site.key}" async></script>')
        return 0

    return _with_database(job)


def totp(args: argparse.Namespace) -> int:
    from console import auth

    async def job(db: Database, settings: Settings) -> int:
        async with db.transaction() as session:
            by = f"{getpass.getuser()} on the command line"
            if args.off:
                await auth.disable_totp(session, args.email, by=by)
                print(f"{args.email}: logs in with the password alone now")
                return 0
            uri = await auth.enable_totp(session, args.email, by=by)
        secret = parse_qs(urlsplit(uri).query)["secret"][0]
        print(f"{args.email}: add this account to an authenticator app (scan it as a QR code, or type the key):")
        print(f"  {uri}")
        print(f"  key: {secret}")
        print("From the next login on, the console asks for the app's six-digit code after the password.")
        return 0

    return _with_database(job)


def retention(args: argparse.Namespace) -> int:
    """The retention sweep, now, with CONSOLE_RETAIN_*_DAYS (the server also runs it every hour)."""
    from console import privacy
    from console.ports import Context, NullNotifier
    from console.web.app import retention_of

    async def job(db: Database, settings: Settings) -> int:
        keep = retention_of(settings)
        if keep.keeps_everything:
            print("nothing to do: no retention is set (CONSOLE_RETAIN_CONVERSATIONS_DAYS, CONSOLE_RETAIN_NOTES_DAYS, "
                  "CONSOLE_RETAIN_AUDIT_DAYS), so everything is kept")
            return 0
        done = await privacy.sweep(Context(db, NullNotifier(), settings.default_region), keep)
        kept = ", ".join(f"{name} {days} days" for name, days in
                         (("conversations", keep.conversations), ("notes", keep.notes), ("audit", keep.audit))
                         if days is not None)
        print(f"retention ({kept}): anonymised {done.conversations} conversations, deleted {done.notes} notes "
              f"and {done.audit} audit entries")
        return 0

    return _with_database(job)


def dispositions(args: argparse.Namespace) -> int:
    from console import config

    async def job(db: Database, settings: Settings) -> int:
        async with db.transaction() as session:
            await config.set_general_dispositions(session, args.codes)
        print(f"general dispositions: {', '.join(args.codes)}")
        return 0

    return _with_database(job)


def simulate(args: argparse.Namespace) -> int:
    from integrations.simulator import demo_numbers, run_simulator

    settings = settings_module.load(demo=True)
    token = os.environ.get("CONSOLE_CTI_TOKEN") or settings.cti_token

    async def go() -> None:
        db = Database(settings.database_url)
        try:
            numbers = await demo_numbers(db)
        except ConsoleError as exc:
            print(f"no customers' numbers to call from ({exc.message}); every caller will be unknown",
                  file=sys.stderr)
            numbers = []
        finally:
            await db.close()
        await run_simulator(args.url, token, rate=_rate(args), count=args.count, numbers=numbers,
                            auto_answer=args.auto_answer)

    asyncio.run(go())
    return 0


def _rate(args: argparse.Namespace) -> float:
    """At most this many new simulated calls a minute (--rate); 0: no pause between them."""
    rate = float(args.rate)
    if rate < 0:
        raise InvalidInput("--rate takes calls a minute, 0 or more (0: no pause between calls)", field="rate")
    return rate


def demo(args: argparse.Namespace) -> int:
    import uvicorn

    from console.auth import create_agent as create
    from console.models import Agent
    from console.seed import seed as make
    from console.web.app import SERVER_OPTIONS, create_app
    from integrations.chat_simulator import run_chat_visitors
    from integrations.simulator import demo_numbers, logged_in_agents, run_simulator

    os.environ.setdefault("CONSOLE_DEMO", "1")
    rate = _rate(args)
    if not 0 <= args.colleagues <= len(DEMO_COLLEAGUES):
        raise InvalidInput("--colleagues takes 0 to %(most)s simulated colleagues", field="colleagues",
                           most=len(DEMO_COLLEAGUES))
    colleagues = DEMO_COLLEAGUES[:args.colleagues]
    settings = settings_module.load(demo=True)
    migrate(settings=settings)
    # Mail without outside servers: the demo's mailbox is an SMTP listener here, and what the
    # console sends goes to a stand-in for the world outside (both on free ports of this machine),
    # unless mailboxes and a mail server are set up already.
    inbound, outbound = free_port(), free_port()
    mailbox_url = f"smtp://127.0.0.1:{inbound}?queue=service&address={DEMO_MAILBOX}&acknowledge=1&language=nl"
    if not settings.mailboxes and not settings.smtp_url:
        settings = replace(settings, mailboxes=(("demo", mailbox_url),), smtp_url=f"smtp://127.0.0.1:{outbound}")
    demo_mail = settings.mailboxes == (("demo", mailbox_url),)
    # -- Twilio, simulated ----------------------------------------------------------------------
    # Without a Twilio account set up, a pretend Twilio (integrations.twilio_simulator) on a free
    # port here plays Twilio's part: its REST API is where the console sends, and its callers and
    # texters come in through the console's Twilio webhooks, signed with a token of this run.
    twilio_api_port = None if settings.twilio_auth_token else free_port()
    if twilio_api_port is not None:
        import secrets

        settings = replace(settings, twilio_auth_token=secrets.token_urlsafe(32),
                           twilio_account_sid=DEMO_TWILIO_ACCOUNT, twilio_public_url=f"http://{args.host}:{args.port}",
                           twilio_api_url=f"http://127.0.0.1:{twilio_api_port}",
                           twilio_whatsapp_templates=DEMO_WHATSAPP_TEMPLATES)
    # -- end of Twilio --------------------------------------------------------------------------
    # Without an Asterisk set up, a simulated one (integrations.asterisk_simulator) on a free port
    # here: the console follows its manager interface as it would a real PBX's.
    ami_port = None if settings.asterisk_url else free_port()
    if ami_port is not None:
        import secrets

        ami_secret = secrets.token_urlsafe(16)
        settings = replace(settings, asterisk_url=f"ami://console:{ami_secret}@127.0.0.1:{ami_port}")

    async def prepare() -> tuple[list[str], str]:
        """Seed an empty database; return customers' numbers for the simulated callers, and the
        demo shop's chat site key."""
        from sqlalchemy import func, select

        db = Database(settings.database_url)
        try:
            async with db.transaction() as session:
                empty = not await session.scalar(select(func.count()).select_from(Agent))
                if empty:
                    for email, name, role, extension, language in DEMO_AGENTS:
                        await create(session, email=email, name=name, password=DEMO_PASSWORD, role=role,
                                     extension=extension, language=language)
                    await _demo_routing(session)
            if empty:
                print(await make(db, customers=args.customers, region=settings.default_region))
            else:
                await _reset_earlier_run(db, settings.default_region)
            async with db.transaction() as session:
                chat_key = await _demo_chat_site(session, args.port)
                await _demo_colleagues(session)
            return await demo_numbers(db), chat_key
        finally:
            await db.close()

    async def go() -> None:
        numbers, chat_key = await prepare()
        url = f"http://{args.host}:{args.port}"
        config = uvicorn.Config(create_app(settings), host=args.host, port=args.port, log_level="warning",
                                **SERVER_OPTIONS)
        server = uvicorn.Server(config)
        print(f"\n  The console runs at {url}/\n")
        print(f"  Log in as one of these (password: {DEMO_PASSWORD}):")
        for email, name, role, extension, language in DEMO_AGENTS:
            print(f"    {email:24} {name:16} {role:11} ext. {extension}  ({language})")
        if colleagues:
            names = " and ".join(name for _, name, _, _, _ in colleagues)
            print(f"\n  {names} are simulated colleagues: they log in and take work by themselves")
            print("  (do not log in as them; --colleagues 0 leaves them out).")
        pace = f"at most {rate:g} a minute" if rate > 0 else "with no pause between them"
        print(f"\n  Simulated calls arrive {pace}, as many as the agents who are logged in can take")
        print("  (and a caller waiting)" + (": with nobody logged in, none." if not colleagues else ".")
              + " Set yourself Available; an offer")
        print("  rings with a screen-pop, and Accept (A) connects the call.")
        supervisors = [email for email, _, role, _, _ in DEMO_AGENTS if role == "supervisor"]
        print(f"\n  The wallboard: log in as the supervisor ({', '.join(supervisors)}) and open {url}/supervisor")
        print("  (in another browser or a private window beside an agent): it moves as calls, chats and mails")
        print("  come and go.")
        print(f"\n  Chat with yourself: open http://localhost:{args.port}/chat/try (a demo shop on another")
        print("  address than the console, with the chat widget), and write a message while you are Available.")
        print("  Simulated visitors start a chat about once a minute too (two at a time at most) and wait for answers.")
        if demo_mail:
            print(f"\n  Mail: customers write to {DEMO_MAILBOX} about once a minute (an SMTP listener on")
            print(f"  127.0.0.1:{inbound}: send your own with any mail client or `swaks`), and your replies go to a")
            print("  stand-in for the world outside, where a customer sometimes answers them.")
        # -- Twilio, simulated --------------------------------------------------------------------
        twilio_rate = rate / 3
        if twilio_api_port is not None:
            twilio_pace = f"at most {twilio_rate:.3g} a minute" if twilio_rate > 0 else "with no pause between them"
            print(f"\n  Twilio: a simulated Twilio (its REST API on 127.0.0.1:{twilio_api_port}) calls in "
                  f"{twilio_pace}")
            print("  through the Twilio voice webhook, and customers text about once a minute by SMS and WhatsApp")
            print("  through the messaging webhook. The agent's softphone answers a Twilio call by itself after a few")
            print("  rings; your text replies are delivered (and read, on WhatsApp).")
        else:
            print("\n  Twilio: your account is set up (CONSOLE_TWILIO_AUTH_TOKEN), so no Twilio traffic is simulated.")
        # -- end of Twilio ------------------------------------------------------------------------
        if ami_port is not None:
            print(f"\n  Asterisk: a simulated Asterisk PBX (its manager interface on 127.0.0.1:{ami_port}) takes calls")
            print(f"  into its queues at most {rate / 3:.3g} a minute and rings the available agents' extensions; the")
            print("  console follows it as it would a real one: the ring pops, the desk phone answers by itself.")
        print("  Stop with Ctrl+C.\n")
        staffing_db = Database(settings.database_url)  # the simulator's own: one count a second
        simulator = asyncio.create_task(_after_start(server, run_simulator(
            url, settings.cti_token, rate=rate, numbers=numbers, queues=DEMO_QUEUES, hold_max=90.0,
            staffing=lambda: logged_in_agents(staffing_db))))
        visitors = asyncio.create_task(_after_start(server, run_chat_visitors(
            url, chat_key, f"http://localhost:{args.port}", rate=1.0, at_once=2,
            staffing=lambda: logged_in_agents(staffing_db))))
        tasks = [simulator, visitors]
        if colleagues:
            from integrations.demo_agents import run_colleagues

            tasks.append(asyncio.create_task(_after_start(server, run_colleagues(
                url, [(email, DEMO_PASSWORD, name, language) for email, name, _, _, language in colleagues]))))
        outside_server = None
        if demo_mail:
            from integrations.mail_simulator import Outside, demo_addresses, run_mail_customers, serve_outside

            outside_server = await serve_outside(Outside(("127.0.0.1", inbound), random.Random()), "127.0.0.1",
                                                 outbound)
            tasks.append(asyncio.create_task(_after_start(server, run_mail_customers(
                ("127.0.0.1", inbound), DEMO_MAILBOX, await demo_addresses(staffing_db), rate=1.0,
                staffing=lambda: logged_in_agents(staffing_db)))))
        # -- Twilio, simulated --------------------------------------------------------------------
        twilio = twilio_api = None
        if twilio_api_port is not None:
            from integrations.twilio_simulator import SimulatedTwilio, run_texters, run_twilio_callers, serve_api

            twilio = SimulatedTwilio(settings.twilio_account_sid, settings.twilio_auth_token, url)
            try:
                twilio_api = await serve_api(twilio, "127.0.0.1", twilio_api_port)
            except OSError as exc:  # the free port was taken meanwhile: the rest of the demo goes on
                print(f"  The simulated Twilio could not start ({exc}); no Twilio traffic this time.\n")
                await twilio.close()
                twilio = None
        if twilio is not None:
            tasks.append(asyncio.create_task(_after_start(server, run_twilio_callers(
                twilio, rate=twilio_rate, numbers=numbers, queues=DEMO_QUEUES,
                staffing=lambda: logged_in_agents(staffing_db)))))
            tasks.append(asyncio.create_task(_after_start(server, run_texters(
                twilio, rate=1.0, at_once=2, numbers=numbers, queues=DEMO_QUEUES,
                staffing=lambda: logged_in_agents(staffing_db)))))
        # -- end of Twilio ------------------------------------------------------------------------
        pbx = None
        if ami_port is not None:
            from integrations.asterisk_simulator import serve as serve_pbx

            async def ringable() -> list[str]:
                return await ready_extensions(staffing_db)

            try:
                pbx = await serve_pbx("127.0.0.1", ami_port, "console", ami_secret, rate / 3, ringable,
                                      queues=("service", "sales"))
            except OSError as exc:
                print(f"  The simulated Asterisk could not start ({exc}); no Asterisk calls this time.\n")
        try:
            await server.serve()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if outside_server is not None:
                outside_server.close()
            # -- Twilio, simulated
            if twilio_api is not None:
                await twilio_api.close()
            if twilio is not None:
                await twilio.close()
            # -- end of Twilio
            if pbx is not None:
                pbx.close()
                await pbx.wait_closed()
            await staffing_db.close()

    asyncio.run(go())
    return 0


async def ready_extensions(db: Database) -> list[str]:
    """The extensions of the agents who can take a call now (the simulated Asterisk rings them)."""
    from sqlalchemy import select

    from console.models import Agent

    async with db.reading() as session:
        return [e for e in await session.scalars(select(Agent.extension).where(Agent.ready_call.is_(True))) if e]


def free_port() -> int:
    """A port nobody listens on now (the demo's mail listeners)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


DEMO_QUEUES = ("service", "service", "service", "sales")
# The simulated Twilio's account (a SID of the right form that no real account has) and the
# WhatsApp templates the demo's agents can choose outside the 24-hour window.
DEMO_TWILIO_ACCOUNT = "AC" + "0" * 32
DEMO_WHATSAPP_TEMPLATES = (("follow-up", "HX" + "0" * 32), ("appointment", "HX" + "1" * 32))
DEMO_MAILBOX = "service@demo.example"
DEMO_SKILLS = {"anna@demo.example": ["dutch:5", "english:3", "sales:2"],
               "bram@demo.example": ["dutch:5", "english:2"],
               "chloe@demo.example": ["english:5", "dutch:1", "sales:4"],
               "daan@demo.example": ["dutch:4", "english:4", "sales:3"],
               "sophie@demo.example": ["dutch:5", "english:5", "sales:5"]}


async def _demo_chat_site(session: object, port: int) -> str:
    """The demo shop's chat: its page is served on localhost while the console is on 127.0.0.1."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from console import chat
    from console.web.visitors import DEMO_SITE

    assert isinstance(session, AsyncSession)
    site, _ = await chat.configure_site(session, DEMO_SITE, chat.SiteSettings(
        origins=[f"http://localhost:{port}", f"http://127.0.0.1:{port}"], queue="service",
        greeting="Hallo! Waarmee kunnen we helpen? / Hello! How can we help?"))
    return site.key


async def _demo_colleagues(session: object) -> None:
    """The demo's accounts that a demo database of an earlier version lacks (the simulated
    colleagues, the admin)."""
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import AsyncSession

    from console import config
    from console.auth import create_agent
    from console.models import Agent

    assert isinstance(session, AsyncSession)
    for email, name, role, extension, language in [*DEMO_AGENTS, *DEMO_COLLEAGUES]:
        if await session.scalar(select(Agent.id).where(Agent.email == email)) is None:
            await create_agent(session, email=email, name=name, password=DEMO_PASSWORD, role=role,
                               extension=extension, language=language)
            if role == "agent":
                await config.configure_agent(session, email, skills=["dutch:4", "english:4", "sales:3"])


async def _demo_routing(session: object) -> None:
    """Skills, queues and dispositions of the demo contact center."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from console import config

    assert isinstance(session, AsyncSession)
    for name in ("dutch", "english", "sales"):
        await config.add_skill(session, name)
    await config.configure_queue(session, "service", config.QueueSettings(dispositions=[
        "resolved", "information given", "callback agreed", "complaint", "escalated"]))
    await config.configure_queue(session, "sales", config.QueueSettings(
        skills=["sales:2"], weights=(4.0, 2.0, 1.0), dispositions=["sale", "quote sent", "no sale", "callback agreed"]))
    await config.set_general_dispositions(session, ["resolved", "information given", "callback agreed",
                                                    "complaint", "sale", "escalated"])
    for email, skills in DEMO_SKILLS.items():
        await config.configure_agent(session, email, skills=skills)
    from console.models import CannedResponse

    for title, body in DEMO_CANNED:
        session.add(CannedResponse(title=title, body=body))


DEMO_CANNED = (
    ("Begroeting", "Goedemorgen {customer.first_name}, u spreekt met {agent.first_name}. Waarmee kan ik u helpen?"),
    ("Greeting", "Hello {customer.first_name}, this is {agent.first_name}. How can I help you?"),
    ("Ticket aangemaakt", "Beste {customer.name}, we hebben uw melding vastgelegd en houden u op de hoogte. "
                          "Met vriendelijke groet, {agent.name}"),
)


async def _reset_earlier_run(db: Database, region: str) -> None:
    """A demo stopped earlier left its simulated calls open and agents available with no page open.

    The simulated phone system is gone, so its calls are hung up; nobody is connected yet, so
    every agent starts offline (presence from sockets arrives with routing, issue 3).
    """
    from sqlalchemy import select

    from console.conversations import hang_up
    from console.models import OPEN_STATES, Agent, AgentStatus, Channel, Conversation
    from console.ports import Context, NullNotifier
    from console.routing import set_status

    async with db.transaction() as session:
        leftovers = list(await session.scalars(select(Conversation.external_id).where(
            Conversation.channel == Channel.CALL, Conversation.state.in_(OPEN_STATES))))
        present = list(await session.scalars(select(Agent.id).where(Agent.status != AgentStatus.OFFLINE)))
    ctx = Context(db=db, notify=NullNotifier(), region=region)
    for external_id in leftovers:
        await hang_up(ctx, Channel.CALL, external_id, "demo restarted")
    for agent_id in present:
        await set_status(ctx, agent_id, AgentStatus.OFFLINE)
    if leftovers:
        print(f"ended {len(leftovers)} calls left open by an earlier demo run")


async def _after_start(server: object, job: object) -> None:
    import uvicorn

    assert isinstance(server, uvicorn.Server)
    while not server.started:
        await asyncio.sleep(0.1)
    await job  # type: ignore[misc]
