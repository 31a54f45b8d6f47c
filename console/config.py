"""Configuring routing: skills, queues (time-outs, weights, required skills, dispositions) and agents.

Used by the command line and, through console.admin, by the admin pages; every bad value is an
error that names it, and nothing is changed then.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from console import audit
from console.auth import agent_by_email, check_extension_free, check_language
from console.errors import Conflict, InvalidInput, NotFound
from console.models import Agent, AgentSkill, Disposition, Queue, QueueSkill, Role, Skill

MAX_LEVEL = 10
MAX_SECONDS = 3600
MAX_CAPACITY = 50


def parse_skill(text: str) -> tuple[str, int]:
    """'german:3' -> ('german', 3); a plain name means level 1."""
    name, _, level = text.partition(":")
    name = name.strip().lower()
    if not name or len(name) > 100:
        raise InvalidInput("a skill needs a name of 1 to 100 characters, not %(text)s", field="skill", text=text)
    if not level:
        return name, 1
    if not level.strip().isdecimal() or not 1 <= int(level) <= MAX_LEVEL:
        raise InvalidInput("the level of skill %(name)s must be a whole number from 1 to %(max)s, not %(level)s",
                           field="skill", name=name, max=MAX_LEVEL, level=level)
    return name, int(level)


def _bounded(value: int | None, name: str, low: int, high: int, field: str | None = None) -> int | None:
    """`value` when it is within bounds; the error names the setting and the form field it came from."""
    if value is not None and not low <= value <= high:
        raise InvalidInput("%(name)s must be between %(low)s and %(high)s, not %(value)s", field=field or name,
                           name=name, low=low, high=high, value=value)
    return value


async def add_skill(session: AsyncSession, name: str) -> Skill:
    skill_name, _ = parse_skill(name)
    if await session.scalar(select(Skill.id).where(Skill.name == skill_name)):
        raise Conflict("skill %(name)s exists already", field="skill", name=skill_name)
    skill = Skill(name=skill_name)
    session.add(skill)
    await session.flush()
    return skill


async def _skills(session: AsyncSession, specs: list[str]) -> list[tuple[int, int]]:
    resolved = []
    for spec in specs:
        name, level = parse_skill(spec)
        skill_id = await session.scalar(select(Skill.id).where(Skill.name == name))
        if skill_id is None:
            known = ", ".join(await session.scalars(select(Skill.name).order_by(Skill.name))) or "none yet"
            raise NotFound("unknown skill %(name)s (known: %(known)s); add it with: python -m console skill %(name)s",
                           field="skill", name=name, known=known)
        resolved.append((skill_id, level))
    return resolved


@dataclass(kw_only=True)
class QueueSettings:
    offer_seconds: int | None = None
    wrap_up_seconds: int | None = None
    owner_first_seconds: int | None = None
    weights: tuple[float, float, float] | None = None
    skills: list[str] | None = None
    dispositions: list[str] | None = None
    # What the wallboard and reports measure the queue by.
    service_level_seconds: int | None = None
    service_level_goal: int | None = None
    short_abandon_seconds: int | None = None
    longest_wait_seconds: int | None = None
    # What callers on hold hear (Twilio): "" takes the queue's own away again.
    hold_message: str | None = None
    hold_music_url: str | None = None


# (field, what the error calls it, lowest, highest) of each whole-number setting of a queue.
QUEUE_NUMBERS = (
    ("offer_seconds", "offer seconds", 5, MAX_SECONDS),
    ("wrap_up_seconds", "wrap-up seconds", 5, MAX_SECONDS),
    ("owner_first_seconds", "owner-first seconds", 0, MAX_SECONDS),
    # Answered within this many seconds counts toward the service level.
    ("service_level_seconds", "service level seconds", 1, MAX_SECONDS),
    ("service_level_goal", "service level goal (percent)", 1, 100),
    # Given up this soon is a wrong number rather than a caller who waited too long.
    ("short_abandon_seconds", "short abandon seconds", 0, 600),
    ("longest_wait_seconds", "longest wait seconds", 1, MAX_SECONDS),
)


def _hold(values: QueueSettings) -> tuple[str | None, str | None]:
    message = " ".join((values.hold_message or "").split()) or None
    if message is not None and len(message) > 500:
        raise InvalidInput("a hold message has at most 500 characters", field="hold_message")
    url = (values.hold_music_url or "").strip() or None
    if url is not None and (len(url) > 500 or not url.startswith(("https://", "http://")) or any(
            ch.isspace() or not ch.isprintable() for ch in url)):
        raise InvalidInput("hold music is the address of an MP3 or WAV file, starting with https://",
                           field="hold_music_url")
    return message, url


async def configure_queue(session: AsyncSession, name: str, values: QueueSettings) -> tuple[Queue, bool]:
    """Create the queue or change what is given; returns it and whether it is new."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a queue needs a name of 1 to 100 characters", field="name")
    for field_name, label, low, high in QUEUE_NUMBERS:
        _bounded(getattr(values, field_name), label, low, high, field_name)
    if values.weights is not None and (len(values.weights) != 3 or any(not 0 < w <= 100 for w in values.weights)):
        raise InvalidInput("weights are three numbers above 0 for tiers A, B and C, like 3,2,1", field="weights")
    codes = [c.strip() for c in values.dispositions or [] if c.strip()]
    if values.dispositions is not None and (not codes or any(len(c) > 100 for c in codes)):
        raise InvalidInput("give at least one disposition code, each at most 100 characters", field="dispositions")
    hold_message, hold_music_url = _hold(values)
    skills = await _skills(session, values.skills or [])
    queue = await session.scalar(select(Queue).where(Queue.name == name))
    created = queue is None
    if queue is None:
        queue = Queue(name=name)
        session.add(queue)
    for field_name, *_ in QUEUE_NUMBERS:
        value = getattr(values, field_name)
        if value is not None:
            setattr(queue, field_name, value)
    if values.weights is not None:
        queue.weight_a, queue.weight_b, queue.weight_c = values.weights
    if values.hold_message is not None:
        queue.hold_message = hold_message
    if values.hold_music_url is not None:
        queue.hold_music_url = hold_music_url
    await session.flush()
    if values.skills is not None:
        await session.execute(delete(QueueSkill).where(QueueSkill.queue_id == queue.id))
        # A skill named twice counts once, at the level named last.
        session.add_all(QueueSkill(queue_id=queue.id, skill_id=s, level=level) for s, level in dict(skills).items())
    if values.dispositions is not None:
        await session.execute(delete(Disposition).where(Disposition.queue_id == queue.id))
        session.add_all(Disposition(queue_id=queue.id, code=code) for code in dict.fromkeys(codes))
    await session.flush()
    return queue, created


async def configure_agent(session: AsyncSession, email: str, *, skills: list[str] | None = None,
                          capacity: dict[str, int] | None = None, role: str | None = None,
                          extension: str | None = None, language: str | None = None, name: str | None = None,
                          by: int | None = None) -> Agent:
    """Set an agent's name, skills, capacities, role, extension ("" takes it away) and language.
    A new role ends the agent's sessions: what a session may do is fixed when it starts, so they
    log in again to work in the new role. `by` is who made the change (None: the command line)."""
    agent = await agent_by_email(session, email)
    changed: list[str] = []
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("A name has 1 to 200 characters.", field="name")
        if name != agent.name:
            agent.name = name
            changed.append(f"name {name}")
    if language is not None:
        check_language(language)
        if language != agent.language:
            agent.language = language
            changed.append(f"language {language}")
    if extension is not None:
        extension = extension.strip()
        await check_extension_free(session, extension, agent.id)
        if (extension or None) != agent.extension:
            agent.extension = extension or None
            changed.append(f"extension {extension or 'none'}")
    if role is not None:
        try:
            new_role = Role(role)
        except ValueError:
            raise InvalidInput("role must be agent, supervisor or admin, not %(role)s", field="role",
                               role=role) from None
        if new_role is not agent.role:
            agent.role = new_role
            agent.session_version += 1
            changed.append(f"role {new_role.value}")
    for channel, value in (capacity or {}).items():
        if channel not in ("call", "chat", "mail"):
            raise InvalidInput("capacity is for call, chat or mail, not %(channel)s", field="capacity",
                               channel=channel)
        _bounded(value, f"{channel} capacity", 0, MAX_CAPACITY, f"capacity_{channel}")
    resolved = await _skills(session, skills or [])
    for channel, value in (capacity or {}).items():
        if getattr(agent, f"capacity_{channel}") != value:
            setattr(agent, f"capacity_{channel}", value)
            changed.append(f"{channel} capacity {value}")
    if skills is not None:
        before = set((await session.execute(select(AgentSkill.skill_id, AgentSkill.level)
                                            .where(AgentSkill.agent_id == agent.id))).all())
        wanted = dict(resolved)  # a skill named twice counts once, at the level named last
        if set(wanted.items()) != before:
            await session.execute(delete(AgentSkill).where(AgentSkill.agent_id == agent.id))
            session.add_all(AgentSkill(agent_id=agent.id, skill_id=s, level=level) for s, level in wanted.items())
            changed.append("skills " + (", ".join(skills) or "none"))
    if changed:
        audit.record(session, by, audit.UPDATE, audit.AGENT, agent.id, "; ".join(changed))
    await session.flush()
    return agent


async def set_general_dispositions(session: AsyncSession, codes: list[str]) -> None:
    """The disposition list for contacts without a queue, or of queues without a list of their own."""
    cleaned = [c.strip() for c in codes if c.strip()]
    if not cleaned or any(len(c) > 100 for c in cleaned):
        raise InvalidInput("give at least one disposition code, each at most 100 characters", field="dispositions")
    await session.execute(delete(Disposition).where(Disposition.queue_id.is_(None)))
    session.add_all(Disposition(queue_id=None, code=code) for code in dict.fromkeys(cleaned))
