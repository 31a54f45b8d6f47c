"""What admins change on the admin pages: agents, queues, skills, dispositions and chat sites.

Forms arrive as text. This turns it into what console.config, console.auth and console.chat take,
with errors that name the form field, and records who changed what in the audit trail. Everything
but `deactivate` runs in the caller's transaction, so a refused form stores nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from console import audit, auth, chat, config, routing
from console.errors import Conflict, InvalidInput, NotFound
from console.models import (
    Agent,
    AgentSkill,
    AgentStatus,
    AuditEvent,
    Channel,
    ChatSite,
    Conversation,
    Disposition,
    Queue,
    QueueSkill,
    Role,
    Skill,
    State,
    utcnow,
)
from console.ports import Context

NO_AGENT = NotFound("That agent does not exist.")
NO_QUEUE = NotFound("That queue does not exist.")
NO_SITE = NotFound("That chat site does not exist.")
GENERAL = 0  # the audit trail's id for the general disposition list


def whole(text: str, field_name: str) -> int:
    """A whole number of 0 or more typed in a form."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise InvalidInput("Enter a whole number, 0 or more.", field=field_name)
    return int(text)


def decimal(text: str, field_name: str) -> float:
    """A number such as 2 or 1.5 (a comma as the decimal sign is fine too)."""
    try:
        value = float(text.strip().replace(",", ".")) if len(text) <= 20 else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInput("Enter a number, such as 2 or 1.5.", field=field_name)
    return value


def lines(text: str) -> list[str]:
    """The non-empty lines of a text area."""
    return [line.strip() for line in text.splitlines() if line.strip()]


# Agents ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AgentRow:
    agent: Agent
    skills: list[tuple[str, int]]
    second_factor: bool = False  # whether they log in with one-time codes too

    @property
    def deactivated(self) -> bool:
        return self.agent.deactivated_at is not None


async def _skill_levels(session: AsyncSession, agent_ids: list[int]) -> dict[int, list[tuple[str, int]]]:
    rows = await session.execute(select(AgentSkill.agent_id, Skill.name, AgentSkill.level)
                                 .join(Skill, Skill.id == AgentSkill.skill_id)
                                 .where(AgentSkill.agent_id.in_(agent_ids)).order_by(Skill.name))
    found: dict[int, list[tuple[str, int]]] = {}
    for agent_id, name, level in rows:
        found.setdefault(agent_id, []).append((name, level))
    return found


async def agents(session: AsyncSession) -> list[AgentRow]:
    """Every agent, deactivated ones too (marked)."""
    found = list(await session.scalars(select(Agent).order_by(Agent.name, Agent.id)))
    levels = await _skill_levels(session, [agent.id for agent in found])
    return [AgentRow(agent, levels.get(agent.id, [])) for agent in found]


async def agent_row(session: AsyncSession, agent_id: int) -> AgentRow:
    row = (await session.execute(select(Agent, Agent.totp_secret.is_not(None)).where(Agent.id == agent_id))).first()
    if row is None:
        raise NO_AGENT
    levels = await _skill_levels(session, [agent_id])
    return AgentRow(row[0], levels.get(agent_id, []), bool(row[1]))


async def all_skills(session: AsyncSession) -> list[Skill]:
    return list(await session.scalars(select(Skill).order_by(Skill.name)))


async def trail(session: AsyncSession, entity: str, entity_id: int) -> list[AuditEvent]:
    return await audit.trail(session, entity, entity_id, limit=50)


@dataclass(frozen=True)
class NewAgent:
    email: str
    name: str
    password: str = ""  # empty: one is made up and shown once
    role: str = "agent"
    extension: str = ""
    language: str = "en"


async def create_agent(session: AsyncSession, by: int, new: NewAgent) -> tuple[Agent, str]:
    """The new agent and their first password, to hand over."""
    password = new.password or auth.new_password()
    agent = await auth.create_agent(session, email=new.email, name=new.name, password=password, role=new.role,
                                    extension=new.extension, language=new.language)
    audit.record(session, by, audit.CREATE, audit.AGENT, agent.id, f"{agent.role.value} {agent.email}")
    return agent, password


@dataclass(frozen=True)
class AgentChanges:
    name: str
    role: str
    extension: str
    language: str
    capacity: dict[str, str]  # channel: the number as typed
    skills: list[str] = field(default_factory=list)  # NAME:LEVEL


async def update_agent(session: AsyncSession, by: int, agent_id: int, changes: AgentChanges) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NO_AGENT
    if agent_id == by and changes.role != Role.ADMIN.value:
        # Otherwise the last admin could lock everyone out of these pages.
        raise InvalidInput("You cannot take away your own admin role; another admin can.", field="role")
    capacity = {channel: whole(text, f"capacity_{channel}") for channel, text in changes.capacity.items()}
    return await config.configure_agent(session, agent.email, skills=changes.skills, capacity=capacity,
                                        role=changes.role, extension=changes.extension,
                                        language=changes.language, name=changes.name, by=by)


async def _locked(session: AsyncSession, agent_id: int) -> Agent:
    agent = await session.scalar(select(Agent).where(Agent.id == agent_id).with_for_update())
    if agent is None:
        raise NO_AGENT
    return agent


async def reset_password(session: AsyncSession, by: int, agent_id: int, password: str = "") -> str:
    """The new password to hand over: `password` as chosen (at least 8 characters), or, when
    empty, a made-up one. A deactivated agent stays deactivated."""
    agent = await _locked(session, agent_id)
    return await auth.reset_password(session, agent.email, password or None, by_id=by)


async def set_second_factor(session: AsyncSession, by: int, agent_id: int, on: bool) -> str | None:
    """Turn a supervisor's or admin's one-time codes on (returns the otpauth:// URI, to show
    once) or off (None). On with a new secret ends their sessions, as on the command line."""
    agent = await _locked(session, agent_id)
    if not on:
        await auth.disable_totp(session, agent.email, by_id=by)
        return None
    if agent.role not in auth.SUPERVISING:
        raise InvalidInput("One-time codes are for supervisors and admins; %(name)s is an agent.",
                           field="totp", name=agent.name)
    return await auth.enable_totp(session, agent.email, by_id=by)


async def deactivate(ctx: Context, by: int, agent_id: int) -> None:
    """The agent can no longer log in (their password stays, for a reactivation), their sessions
    end, they are offered no work and found by no phone system or picker, and they go offline
    (after a call they are on, like going offline themselves). Refused while they handle chats or
    mails, which nobody else would see through: those are handed off first. One transaction."""
    if agent_id == by:
        raise Conflict("You cannot deactivate yourself; another admin can.")

    async def record(session: AsyncSession, agent: Agent) -> None:
        if agent.deactivated_at is not None:
            return
        open_work = await session.scalar(select(func.count(Conversation.id)).where(
            Conversation.agent_id == agent_id, Conversation.state == State.ACTIVE,
            Conversation.channel.in_((Channel.CHAT, Channel.SMS, Channel.MAIL))))
        if open_work:
            raise Conflict("%(name)s still handles %(count)s chats, texts or mails: hand them off first, or wait "
                           "until they end.", name=agent.name, count=open_work)
        agent.deactivated_at = utcnow()
        agent.session_version += 1
        audit.record(session, by, audit.DEACTIVATE, audit.AGENT, agent_id, agent.email)

    async with ctx.db.reading() as session:
        if await session.get(Agent, agent_id) is None:
            raise NotFound("That agent does not exist.")
    await routing.set_status(ctx, agent_id, AgentStatus.OFFLINE.value, also=record)


async def reactivate(session: AsyncSession, by: int, agent_id: int) -> Agent:
    """A deactivated agent can log in again with their password, and takes work once available."""
    agent = await _locked(session, agent_id)
    if agent.deactivated_at is not None:
        agent.deactivated_at = None
        audit.record(session, by, audit.REACTIVATE, audit.AGENT, agent_id, agent.email)
    return agent


# Queues ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueRow:
    queue: Queue
    skills: list[tuple[str, int]]
    dispositions: list[str]


async def _queue_rows(session: AsyncSession, queues: list[Queue]) -> list[QueueRow]:
    ids = [q.id for q in queues]
    skills: dict[int, list[tuple[str, int]]] = {}
    for queue_id, name, level in await session.execute(
            select(QueueSkill.queue_id, Skill.name, QueueSkill.level).join(Skill, Skill.id == QueueSkill.skill_id)
            .where(QueueSkill.queue_id.in_(ids)).order_by(Skill.name)):
        skills.setdefault(queue_id, []).append((name, level))
    codes: dict[int, list[str]] = {}
    for owner, code in await session.execute(select(Disposition.queue_id, Disposition.code)
                                             .where(Disposition.queue_id.in_(ids)).order_by(Disposition.id)):
        if owner is not None:
            codes.setdefault(owner, []).append(code)
    return [QueueRow(q, skills.get(q.id, []), codes.get(q.id, [])) for q in queues]


async def queues(session: AsyncSession) -> list[QueueRow]:
    return await _queue_rows(session, list(await session.scalars(select(Queue).order_by(Queue.name))))


async def queue_row(session: AsyncSession, queue_id: int) -> QueueRow:
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NO_QUEUE
    return (await _queue_rows(session, [queue]))[0]


async def create_queue(session: AsyncSession, by: int, name: str) -> Queue:
    if await session.scalar(select(Queue.id).where(Queue.name == name.strip())):
        raise Conflict("A queue called %(name)s exists already.", field="name", name=name.strip())
    queue, _ = await config.configure_queue(session, name, config.QueueSettings())
    audit.record(session, by, audit.CREATE, audit.QUEUE, queue.id, queue.name)
    return queue


NUMBER_FIELDS = tuple(name for name, *_ in config.QUEUE_NUMBERS)
WEIGHT_FIELDS = ("weight_a", "weight_b", "weight_c")


@dataclass(frozen=True)
class QueueChanges:
    numbers: dict[str, str]  # each of NUMBER_FIELDS and WEIGHT_FIELDS as typed
    skills: list[str] = field(default_factory=list)  # NAME:LEVEL
    dispositions: str = ""  # one code a line; none: the general list
    hold_message: str = ""  # what a caller on hold hears first ("": the console's own, in their language)
    hold_music_url: str = ""


async def update_queue(session: AsyncSession, by: int, queue_id: int, changes: QueueChanges) -> Queue:
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NO_QUEUE
    numbers: dict[str, int | None] = {name: whole(changes.numbers.get(name, ""), name) for name in NUMBER_FIELDS}
    a, b, c = (decimal(changes.numbers.get(name, ""), name) for name in WEIGHT_FIELDS)
    codes = lines(changes.dispositions)
    values = config.QueueSettings(weights=(a, b, c), skills=changes.skills, dispositions=codes or None,
                                  hold_message=changes.hold_message, hold_music_url=changes.hold_music_url)
    for name, number in numbers.items():
        setattr(values, name, number)
    queue, _ = await config.configure_queue(session, queue.name, values)
    if not codes:  # the queue's contacts take the general list
        await session.execute(delete(Disposition).where(Disposition.queue_id == queue.id))
    audit.record(session, by, audit.UPDATE, audit.QUEUE, queue.id, _queue_summary(queue, changes.skills, codes))
    return queue


def _queue_summary(queue: Queue, skills: list[str], codes: list[str]) -> str:
    numbers = ", ".join(f"{name} {getattr(queue, name)}" for name in NUMBER_FIELDS)
    return (f"{numbers}; weights {queue.weight_a:g}/{queue.weight_b:g}/{queue.weight_c:g}; skills "
            f"{', '.join(skills) or 'none'}; dispositions {', '.join(codes) or 'general'}; hold message "
            f"{'set' if queue.hold_message else 'default'}, hold music {queue.hold_music_url or 'default'}")


# Skills and the general dispositions -------------------------------------------------------------

async def skill_use(session: AsyncSession) -> list[tuple[Skill, int, int]]:
    """Every skill, with how many agents have it and how many queues require it."""
    agents_with = dict((await session.execute(select(AgentSkill.skill_id, func.count())
                                              .group_by(AgentSkill.skill_id))).all())
    queues_with = dict((await session.execute(select(QueueSkill.skill_id, func.count())
                                              .group_by(QueueSkill.skill_id))).all())
    return [(s, agents_with.get(s.id, 0), queues_with.get(s.id, 0)) for s in await all_skills(session)]


async def add_skill(session: AsyncSession, by: int, name: str) -> Skill:
    if ":" in name:
        raise InvalidInput("A skill's name has no colon; levels are set per agent and queue.", field="skill")
    skill = await config.add_skill(session, name)
    audit.record(session, by, audit.CREATE, audit.SKILL, skill.id, skill.name)
    return skill


async def general_dispositions(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(Disposition.code).where(Disposition.queue_id.is_(None))
                                      .order_by(Disposition.id)))


async def set_general_dispositions(session: AsyncSession, by: int, text: str) -> list[str]:
    codes = lines(text)
    await config.set_general_dispositions(session, codes)
    audit.record(session, by, audit.UPDATE, audit.DISPOSITIONS, GENERAL, ", ".join(codes))
    return codes


# Chat sites --------------------------------------------------------------------------------------

async def sites(session: AsyncSession) -> list[tuple[ChatSite, str | None]]:
    """Every chat site with the name of its queue."""
    rows = await session.execute(select(ChatSite, Queue.name).outerjoin(Queue, Queue.id == ChatSite.queue_id)
                                 .order_by(ChatSite.name, ChatSite.id))
    return [(site, queue) for site, queue in rows]


async def site_row(session: AsyncSession, site_id: int) -> tuple[ChatSite, str | None]:
    row = (await session.execute(select(ChatSite, Queue.name).outerjoin(Queue, Queue.id == ChatSite.queue_id)
                                 .where(ChatSite.id == site_id))).first()
    if row is None:
        raise NO_SITE
    return row[0], row[1]


async def queue_names(session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(Queue.name).order_by(Queue.name)))


@dataclass(frozen=True)
class SiteForm:
    origins: str  # one a line
    queue: str = ""
    greeting: str = ""
    hours: str = ""
    timezone: str = "Europe/Amsterdam"
    idle_minutes: str = "10"
    identity_required: bool = False
    prechat: bool = False

    def settings(self) -> chat.SiteSettings:
        return chat.SiteSettings(origins=lines(self.origins), queue=self.queue, greeting=self.greeting,
                                 identity_required=self.identity_required, hours=self.hours,
                                 timezone=self.timezone, idle_minutes=whole(self.idle_minutes, "idle_minutes"),
                                 prechat=self.prechat)


async def create_site(session: AsyncSession, by: int, name: str, form: SiteForm) -> ChatSite:
    if await session.scalar(select(ChatSite.id).where(ChatSite.name == name.strip())):
        raise Conflict("A chat site called %(name)s exists already.", field="name", name=name.strip())
    site, _ = await chat.configure_site(session, name, form.settings())
    audit.record(session, by, audit.CREATE, audit.CHAT_SITE, site.id, _site_summary(site, form))
    return site


async def update_site(session: AsyncSession, by: int, site_id: int, form: SiteForm) -> ChatSite:
    site = await session.get(ChatSite, site_id)
    if site is None:
        raise NO_SITE
    site, _ = await chat.configure_site(session, site.name, form.settings())
    audit.record(session, by, audit.UPDATE, audit.CHAT_SITE, site.id, _site_summary(site, form))
    return site


def _site_summary(site: ChatSite, form: SiteForm) -> str:
    return (f"{site.name}: origins {' '.join(site.origins.split())}; queue {form.queue or 'none'}; "
            f"hours {site.hours or 'always'} ({site.timezone}); idle {site.idle_minutes} min; identity "
            f"{'required' if site.identity_required else 'optional'}; prechat {'on' if site.prechat else 'off'}")
