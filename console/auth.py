"""Agents' accounts: argon2 password hashes, login with rate limits, finding an agent by reference.

A deactivated agent (`Agent.deactivated_at` set, by an admin) keeps their password but cannot log
in, their sessions are no longer accepted, and the phone system's references no longer find them.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import and_, bindparam, delete, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer
from sqlalchemy.sql import ColumnElement

from console import audit
from console.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyAttempts
from console.i18n import LANGUAGES, N_
from console.models import Agent, LoginAttempt, Role, utcnow

if TYPE_CHECKING:
    from console.db import Database

log = logging.getLogger("console.auth")
_hasher = PasswordHasher()
# Verifying against this when the account does not exist keeps the timing the same.
_DUMMY_HASH = _hasher.hash("not a real password")
MIN_PASSWORD = 8
MAX_EXTENSION = 40  # the column's width
MAX_PASSWORD = 1000  # hashing is costly: a megabyte "password" would be a cheap way to burn CPU


# Agents who are not deactivated: who can log in, and whom the phone system and pickers name.
ACTIVE = Agent.deactivated_at.is_(None)
DEACTIVATED = N_("This account is deactivated. Ask an administrator.")


class AccountDeactivated(Forbidden):
    """The password was right, but an admin deactivated the account."""

    def __init__(self) -> None:
        super().__init__(DEACTIVATED)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def create_agent(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    password: str,
    role: str = "agent",
    extension: str | None = None,
    language: str = "en",
) -> Agent:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise InvalidInput("Enter an email address, like anna@example.nl.", field="email")
    if not name.strip() or len(name.strip()) > 200:
        raise InvalidInput("A name has 1 to 200 characters.", field="name")
    check_new_password(password)
    try:
        agent_role = Role(role)
    except ValueError:
        raise InvalidInput("role must be agent, supervisor or admin, not %(role)s", field="role",
                           role=role[:20]) from None
    check_language(language)
    extension = (extension or "").strip() or None
    if await session.scalar(select(Agent.id).where(Agent.email == email)):
        raise Conflict("an agent with email %(email)s exists already", field="email", email=email)
    await check_extension_free(session, extension)
    agent = Agent(email=email, name=name.strip(), password_hash=hash_password(password), role=agent_role,
                  extension=extension, language=language)
    session.add(agent)
    await session.flush()
    return agent


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput("A password needs at least %(count)s characters.", field="password", count=MIN_PASSWORD)
    if len(password) > MAX_PASSWORD:
        raise InvalidInput("A password has at most %(count)s characters.", field="password", count=MAX_PASSWORD)


def check_language(language: str) -> None:
    if language not in LANGUAGES:
        raise InvalidInput("Choose English or Dutch, not %(value)s.", field="language", value=language[:20])


async def check_extension_free(session: AsyncSession, extension: str | None, agent_id: int | None = None) -> None:
    """Raise Conflict when another agent has this extension: a ring or an answer on it names one agent."""
    if not extension:
        return
    if len(extension) > MAX_EXTENSION:
        raise InvalidInput("an extension has at most %(count)s characters", field="extension", count=MAX_EXTENSION)
    holder = (await session.execute(select(Agent.id, Agent.email).where(Agent.extension == extension))).first()
    if holder is not None and holder[0] != agent_id:
        raise Conflict("extension %(extension)s belongs to %(email)s", field="extension", extension=extension,
                       email=holder[1])


@dataclass(frozen=True)
class LoginPolicy:
    """How failed logins slow down whoever makes them, without locking out the account's owner.

    Failures count per account *and* client address: after `free_failures` wrong passwords in a
    row from one address for one account, that address waits before its next try for that account:
    `delay` seconds, twice as long after each further failure, at most `max_delay`. A client
    with no failures of its own is never held up by those of others, so knowing an agent's email
    address is not enough to lock them out. `address_ceiling` failures from one address within
    `window` seconds, over all accounts, is a flood: that address waits until it falls below.
    """

    free_failures: int = 3
    delay: float = 2.0
    max_delay: float = 900.0
    address_ceiling: int = 100
    window: int = 900

    def wait_after(self, failures: int) -> float:
        """Seconds to wait after `failures` wrong passwords in a row."""
        if failures < self.free_failures:
            return 0.0
        return min(self.delay * 2.0 ** (failures - self.free_failures), self.max_delay)


# What a client that must wait is told: in seconds, or in minutes for a long wait.
LOGIN_HELD = (N_("Too many failed logins. Wait %(seconds)s seconds and try again."),
              N_("Too many failed logins. Wait %(minutes)s minutes and try again."))
PASSWORD_HELD = (N_("Too many wrong passwords. Wait %(seconds)s seconds and try again."),
                 N_("Too many wrong passwords. Wait %(minutes)s minutes and try again."))


def _too_many(wait: float, held: tuple[str, str] = LOGIN_HELD) -> TooManyAttempts:
    seconds = max(1, math.ceil(wait))
    if seconds < 120:
        return TooManyAttempts(held[0], retry_after=seconds, seconds=seconds)
    return TooManyAttempts(held[1], retry_after=seconds, minutes=math.ceil(seconds / 60))


STREAK_MEMORY = timedelta(days=1)
CODE_FAILURES_PER_ACCOUNT = 10  # wrong one-time codes per account within the window, from anywhere
_PAIR = (select(LoginAttempt.succeeded, LoginAttempt.created_at)
         .where(LoginAttempt.account == bindparam("account"), LoginAttempt.address == bindparam("address"),
                LoginAttempt.created_at >= bindparam("since"))
         .order_by(LoginAttempt.created_at.desc(), LoginAttempt.id.desc()).limit(64))
_ADDRESS_FAILURES = (select(LoginAttempt.created_at)
                     .where(LoginAttempt.address == bindparam("address"), LoginAttempt.succeeded.is_(False),
                            LoginAttempt.created_at >= bindparam("since"))
                     .order_by(LoginAttempt.created_at.desc()))


def throttle_key(address: str) -> str:
    """What login attempts from `address` count under: an IPv6 address by its /64 (one customer
    line or host gets a whole /64, so a stranger can rotate through it), an IPv4 address (also
    one mapped into IPv6) as itself; anything else (a remembered browser's key) unchanged."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


async def _check_throttle(session: AsyncSession, account: str, address: str, policy: LoginPolicy,
                          held: tuple[str, str] = LOGIN_HELD) -> None:
    """Raise TooManyAttempts when this address must wait before trying `account` again."""
    now = utcnow()
    since = now - timedelta(seconds=policy.window)
    flood = list(await session.scalars(_ADDRESS_FAILURES.limit(policy.address_ceiling),
                                       {"address": address, "since": since}))
    if len(flood) >= policy.address_ceiling:
        # Below the ceiling again once the oldest of the newest `ceiling` failures leaves the window.
        wait = (flood[-1] + timedelta(seconds=policy.window) - now).total_seconds()
        log.warning("login from %s refused: %d failed logins from there in %d s", address, len(flood),
                    policy.window)
        raise _too_many(wait, held)
    failures, last = 0, None
    # A streak of failures lasts until a success (or a day), not only the window: otherwise the
    # oldest failures of a long streak would drop out and the wait would shrink again.
    for succeeded, at in (await session.execute(_PAIR, {"account": account, "address": address,
                                                        "since": now - STREAK_MEMORY})).all():
        if succeeded:
            break
        failures += 1
        last = last or at
    if last is not None:
        wait = (last + timedelta(seconds=policy.wait_after(failures)) - now).total_seconds()
        if wait > 0:
            log.warning("login to %s from %s held for %.0f s after %d failures in a row", account, address,
                        wait, failures)
            raise _too_many(wait, held)


async def authenticate(session: AsyncSession, email: str, password: str, address: str,
                       policy: LoginPolicy | None = None) -> Agent | None:
    """The agent for these credentials, or None; raises TooManyAttempts while the client must wait,
    and AccountDeactivated for the right password of a deactivated account (only then: a wrong
    password says nothing about the account, and counts as a failure like any other).

    Attempts are stored, so the limits hold across several app processes (see LoginPolicy).
    """
    policy = policy or LoginPolicy()
    account = email.strip().lower()[:254]
    address = throttle_key(address)
    if session.get_bind().dialect.name == "postgresql":
        # Concurrent tries from one address would all count the same failures; the lock makes
        # them count one after the other (SQLite has one writer anyway).
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                              {"key": "login-address:" + address})
    await _check_throttle(session, account, address, policy)
    agent = await session.scalar(select(Agent).where(Agent.email == account)
                                 .options(undefer(Agent.password_hash), undefer(Agent.totp_secret)))
    # argon2 takes a good part of a second of CPU: off the event loop, so sockets keep flowing.
    verified = await asyncio.to_thread(verify_password, agent.password_hash if agent else _DUMMY_HASH, password)
    ok = verified and agent is not None
    if ok and agent is not None and agent.deactivated_at is not None:
        # Nothing is recorded: it is no failure (no streak grows, the owner reads the reason
        # on every try) and no success (it ends no streak of wrong passwords).
        raise AccountDeactivated()
    if not (ok and agent is not None and agent.totp_secret is not None):
        # A right password of an account with a second factor is no success yet: it must not end
        # the streak of wrong codes (check_code records the success).
        session.add(LoginAttempt(account=account, address=address, succeeded=ok))
    return agent if ok else None


def _code_account(email: str) -> str:
    """The account name one-time codes are counted under, apart from passwords."""
    return ("code:" + email)[:254]


TOTP_ISSUER = "Agent console"
TOTP_STEP = 30  # seconds per code (RFC 6238's default, what authenticator apps expect)


async def agent_by_email(session: AsyncSession, email: str) -> Agent:
    """The agent with this email address, row-locked for a change; NotFound names the address."""
    agent = await session.scalar(select(Agent).where(Agent.email == email.strip().lower()).with_for_update())
    if agent is None:
        raise NotFound("no agent with email %(email)s", field="email", email=email)
    return agent


def _by(by: str) -> str:
    return f" by {by}" if by else ""


async def enable_totp(session: AsyncSession, email: str, by: str = "", by_id: int | None = None) -> str:
    """Turn on the second factor for a supervisor or admin; returns the otpauth:// URI to scan.

    A new secret replaces an old one, and the agent's sessions end: the next login asks for a
    code from the new secret. `by` and `by_id` as for `reset_password`.
    """
    agent = await agent_by_email(session, email)
    if agent.role not in SUPERVISING:
        raise InvalidInput("the second factor is for supervisors and admins; %(email)s is an agent",
                           field="email", email=agent.email)
    secret = pyotp.random_base32()
    agent.totp_secret, agent.totp_last_step = secret, None
    agent.session_version += 1
    audit.record(session, by_id, audit.SECOND_FACTOR, audit.AGENT, agent.id, f"turned on{_by(by)}")
    return pyotp.TOTP(secret, interval=TOTP_STEP).provisioning_uri(name=agent.email, issuer_name=TOTP_ISSUER)


async def disable_totp(session: AsyncSession, email: str, by: str = "", by_id: int | None = None) -> None:
    """Turn the second factor off: the agent logs in with the password alone from now on."""
    agent = await agent_by_email(session, email)
    agent.totp_secret, agent.totp_last_step = None, None
    audit.record(session, by_id, audit.SECOND_FACTOR, audit.AGENT, agent.id, f"turned off{_by(by)}")


def _matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step whose code this is: the current one or a neighbour (clocks drift), else None."""
    totp = pyotp.TOTP(secret, interval=TOTP_STEP)
    current = int(now // TOTP_STEP)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.at(step * TOTP_STEP), code):
            return step
    return None


async def check_code(session: AsyncSession, agent_id: int, code: str, address: str,
                     policy: LoginPolicy | None = None, *, now: float | None = None) -> Agent | None:
    """The agent when `code` is their current one-time code, used for the first time; else None.

    Wrong codes count as failed logins of the account from this address, with the same waits.
    """
    policy = policy or LoginPolicy()
    agent = await session.scalar(select(Agent).where(Agent.id == agent_id).with_for_update()
                                 .options(undefer(Agent.totp_secret), undefer(Agent.totp_last_step)))
    if agent is None or agent.totp_secret is None or agent.deactivated_at is not None:
        return None
    address = throttle_key(address)
    account = _code_account(agent.email)
    await _check_throttle(session, account, address, policy)
    # Only someone who knows the password gets here, so a ceiling per account (from any address)
    # locks out nobody but them; it stops guessing codes from many addresses.
    since = utcnow() - timedelta(seconds=policy.window)
    wrong = await session.scalar(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.account == account, LoginAttempt.succeeded.is_(False), LoginAttempt.created_at >= since)) or 0
    if wrong >= CODE_FAILURES_PER_ACCOUNT:
        log.warning("one-time codes for %s refused: %d wrong codes in %d s", agent.email, wrong, policy.window)
        raise _too_many(policy.window)
    cleaned = "".join(code.split())
    fits = cleaned.isascii() and cleaned.isdigit() and len(cleaned) == 6
    step = _matching_step(agent.totp_secret, cleaned, time.time() if now is None else now) if fits else None
    ok = step is not None and (agent.totp_last_step is None or step > agent.totp_last_step)
    if ok:
        agent.totp_last_step = step
        session.add(LoginAttempt(account=agent.email, address=address, succeeded=True))  # ends the password streak
    session.add(LoginAttempt(account=account, address=address, succeeded=ok))
    return agent if ok else None


async def session_role(session: AsyncSession, agent_id: int, version: object) -> Role | None:
    """The role of `agent_id` when their login session made at `version` is still valid, else None
    (also when the agent is deactivated: their open sessions stop at once)."""
    row = (await session.execute(select(Agent.session_version, Agent.role)
                                 .where(Agent.id == agent_id, ACTIVE))).first()
    return row[1] if row is not None and row[0] == version else None


async def session_versions(session: AsyncSession, agent_ids: Iterable[int]) -> dict[int, int]:
    """The current session version of each agent (absent: the agent is gone or deactivated); a
    session made at another version has ended (a logout everywhere, a new role, a new second factor)."""
    ids = sorted(set(agent_ids))
    if not ids:
        return {}
    rows = await session.execute(select(Agent.id, Agent.session_version).where(Agent.id.in_(ids), ACTIVE))
    return {agent_id: version for agent_id, version in rows}


async def end_sessions(session: AsyncSession, agent_id: int) -> None:
    """Log the agent out everywhere: every session made before now stops being accepted."""
    agent = await session.get(Agent, agent_id, with_for_update=True)
    if agent is not None:
        agent.session_version += 1


# Built once: every answer and ring names its agent. Extension first, then email or name.
_BY_EXTENSION = select(Agent).where(Agent.extension == bindparam("extension"), ACTIVE)
_ID_BY_EXTENSION = select(Agent.id).where(Agent.extension == bindparam("extension"), ACTIVE)


async def find_agent(session: AsyncSession, reference: str) -> Agent | None:
    """An agent named by a phone system: extension, email or name, in that order (a deactivated
    agent is nobody to it)."""
    ref = reference.strip()
    if not ref:
        return None
    return await session.scalar(_BY_EXTENSION, {"extension": ref}) \
        or await session.scalar(select(Agent).where(_named(ref)).limit(1))


async def find_agent_id(session: AsyncSession, reference: str) -> int | None:
    """The id of the agent `find_agent` would find, reading nothing else (to lock them next)."""
    ref = reference.strip()
    if not ref:
        return None
    return await session.scalar(_ID_BY_EXTENSION, {"extension": ref}) \
        or await session.scalar(select(Agent.id).where(_named(ref)).limit(1))


def _named(ref: str) -> ColumnElement[bool]:
    return and_(or_(Agent.email == ref.lower(), func.lower(Agent.name) == ref.lower()), ACTIVE)


SUPERVISING = (Role.SUPERVISOR, Role.ADMIN)


async def is_supervisor(session: AsyncSession, agent_id: int) -> bool:
    agent = await session.get(Agent, agent_id)
    return agent is not None and agent.role in SUPERVISING


async def require_supervisor(session: AsyncSession, agent_id: int, message: str) -> None:
    """Raise Forbidden with `message` unless the agent is a supervisor or an admin."""
    if not await is_supervisor(session, agent_id):
        raise Forbidden(message)


async def set_language(session: AsyncSession, agent_id: int, language: str) -> str:
    """The language the agent works in (the page, the pushes, dates and money): English or Dutch."""
    check_language(language)
    agent = await session.get(Agent, agent_id, with_for_update=True)
    if agent is None:
        raise NotFound("Agent not found.")
    agent.language = language
    return language


def _password_account(email: str) -> str:
    """The account name wrong current passwords (changing one's password) are counted under."""
    return ("password:" + email)[:254]


async def change_password(db: Database, agent_id: int, current: str, new: str, repeated: str,
                          address: str, policy: LoginPolicy | None = None) -> int | None:
    """The agent changes their own password; returns their new session version, or None when
    `current` is wrong (counted like a failed login, with the same waits, so a page left open is
    no way to guess the password). Every session made before ends; the caller signs the one
    that asked in again at the returned version.

    argon2 takes a good part of a second: it runs before the agent's row is locked (and, on
    SQLite, before the one writer's turn), and the change is applied only if the password was
    not changed meanwhile.
    """
    policy = policy or LoginPolicy()
    if not current:
        raise InvalidInput("Enter your current password.", field="current")
    check_new_password(new)
    if new != repeated:
        raise InvalidInput("The new password and its repetition differ.", field="repeat")
    address = throttle_key(address)
    async with db.reading() as session:
        row = (await session.execute(select(Agent.email, Agent.password_hash).where(Agent.id == agent_id))).first()
        if row is None:
            raise NotFound("Agent not found.")
        email, old_hash = row
        await _check_throttle(session, _password_account(email), address, policy, PASSWORD_HELD)
    right = await asyncio.to_thread(verify_password, old_hash, current[:MAX_PASSWORD])
    if right and new == current:
        raise InvalidInput("The new password is your current one; choose another.", field="password")
    new_hash = await asyncio.to_thread(hash_password, new) if right else None
    async with db.transaction() as session:
        session.add(LoginAttempt(account=_password_account(email), address=address, succeeded=right))
        if new_hash is None:
            return None
        agent = await session.scalar(select(Agent).where(Agent.id == agent_id).with_for_update()
                                     .options(undefer(Agent.password_hash)))
        if agent is None or agent.password_hash != old_hash:
            raise Conflict("Your password was changed meanwhile (on another device, or reset); log in again.")
        agent.password_hash = new_hash
        agent.session_version += 1
        audit.record(session, agent_id, audit.PASSWORD, audit.AGENT, agent_id, "changed by the agent")
        return agent.session_version


def new_password() -> str:
    """A password to hand over after a reset: 16 characters, easy to read out."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


async def reset_password(session: AsyncSession, email: str, password: str | None = None, by: str = "",
                         by_id: int | None = None) -> str:
    """A supervisor or admin resets an agent's password (the agent forgot it, or it leaked):
    `password` or a generated one, returned to be handed over. Every session of the agent ends.
    `by_id` is the admin who did it on the admin pages; the command line has no login, so `by`
    names the system user instead. A deactivated agent stays deactivated (an admin reactivates them).
    """
    chosen = password if password is not None else new_password()
    check_new_password(chosen)
    hashed = await asyncio.to_thread(hash_password, chosen)
    agent = await agent_by_email(session, email)
    agent.password_hash = hashed
    agent.session_version += 1
    # The waits after wrong passwords end with the reset: the agent logs in with the new one now.
    await session.execute(delete(LoginAttempt).where(
        LoginAttempt.account.in_((agent.email, _password_account(agent.email)))))
    audit.record(session, by_id, audit.PASSWORD, audit.AGENT, agent.id, f"reset by {by}" if by else "reset")
    return chosen
