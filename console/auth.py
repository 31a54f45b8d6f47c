"""Agents' accounts: argon2 password hashes, login with rate limits, finding an agent by reference."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import bindparam, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer
from sqlalchemy.sql import ColumnElement

from console.errors import Conflict, Forbidden, InvalidInput, TooManyAttempts
from console.models import Agent, LoginAttempt, Role, utcnow

_hasher = PasswordHasher()
# Verifying against this when the account does not exist keeps the timing the same.
_DUMMY_HASH = _hasher.hash("not a real password")
LANGUAGES = ("en", "nl")
MIN_PASSWORD = 8


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
        raise InvalidInput(f"{email!r} is not an email address", field="email")
    if not name.strip():
        raise InvalidInput("name is required", field="name")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD} characters", field="password")
    try:
        agent_role = Role(role)
    except ValueError:
        raise InvalidInput(f"role must be agent, supervisor or admin, not {role!r}", field="role") from None
    if language not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}", field="language")
    extension = (extension or "").strip() or None
    if await session.scalar(select(Agent.id).where(Agent.email == email)):
        raise Conflict(f"an agent with email {email} exists already", field="email")
    if extension and await session.scalar(select(Agent.id).where(Agent.extension == extension)):
        raise Conflict(f"extension {extension} belongs to another agent", field="extension")
    agent = Agent(email=email, name=name.strip(), password_hash=hash_password(password), role=agent_role,
                  extension=extension, language=language)
    session.add(agent)
    await session.flush()
    return agent


async def authenticate(
    session: AsyncSession,
    email: str,
    password: str,
    address: str,
    *,
    max_account: int = 5,
    max_address: int = 20,
    window_seconds: int = 900,
) -> Agent | None:
    """The agent for these credentials, or None; raises TooManyAttempts when rate-limited.

    Failures are counted per account and per client address over a sliding window, in the
    database, so the limits hold across several app processes.
    """
    account = email.strip().lower()[:254]
    address = address[:64]
    if session.get_bind().dialect.name == "postgresql":
        # Concurrent tries for one account or address would all count the same failures;
        # these locks make them count one after the other (SQLite has one writer anyway).
        for key in ("login-account:" + account, "login-address:" + address):
            await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
    since = utcnow() - timedelta(seconds=window_seconds)
    failures = select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.created_at >= since, LoginAttempt.succeeded.is_(False)
    )
    by_account = await session.scalar(failures.where(LoginAttempt.account == account)) or 0
    by_address = await session.scalar(failures.where(LoginAttempt.address == address)) or 0
    if by_account >= max_account or by_address >= max_address:
        raise TooManyAttempts("Too many failed logins. Wait %(minutes)s minutes and try again.",
                              retry_after=window_seconds, minutes=window_seconds // 60)
    agent = await session.scalar(select(Agent).where(Agent.email == account).options(undefer(Agent.password_hash)))
    # argon2 takes a good part of a second of CPU: off the event loop, so sockets keep flowing.
    verified = await asyncio.to_thread(verify_password, agent.password_hash if agent else _DUMMY_HASH, password)
    ok = verified and agent is not None
    session.add(LoginAttempt(account=account, address=address, succeeded=ok))
    return agent if ok else None


async def session_role(session: AsyncSession, agent_id: int, version: object) -> Role | None:
    """The role of `agent_id` when their login session made at `version` is still valid, else None."""
    row = (await session.execute(select(Agent.session_version, Agent.role).where(Agent.id == agent_id))).first()
    return row[1] if row is not None and row[0] == version else None


async def end_sessions(session: AsyncSession, agent_id: int) -> None:
    """Log the agent out everywhere: every session made before now stops being accepted."""
    agent = await session.get(Agent, agent_id, with_for_update=True)
    if agent is not None:
        agent.session_version += 1


# Built once: every answer and ring names its agent. Extension first, then email or name.
_BY_EXTENSION = select(Agent).where(Agent.extension == bindparam("extension"))
_ID_BY_EXTENSION = select(Agent.id).where(Agent.extension == bindparam("extension"))


async def find_agent(session: AsyncSession, reference: str) -> Agent | None:
    """An agent named by a phone system: extension, email or name, in that order."""
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
    return or_(Agent.email == ref.lower(), func.lower(Agent.name) == ref.lower())


SUPERVISING = (Role.SUPERVISOR, Role.ADMIN)


async def is_supervisor(session: AsyncSession, agent_id: int) -> bool:
    agent = await session.get(Agent, agent_id)
    return agent is not None and agent.role in SUPERVISING


async def require_supervisor(session: AsyncSession, agent_id: int, message: str) -> None:
    """Raise Forbidden with `message` unless the agent is a supervisor or an admin."""
    if not await is_supervisor(session, agent_id):
        raise Forbidden(message)
