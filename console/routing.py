"""Presence and picking the agent: the longest-idle ready agent, atomically.

Who may take new work is stored on the agent row (console.readiness). On PostgreSQL the pick
locks the first ready agent with FOR UPDATE SKIP LOCKED, so concurrent arrivals on several
processes pick different agents, and the row a waiting pick re-checks is judged on its newest
readiness. On SQLite writes go one at a time (BEGIN IMMEDIATE).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, bindparam, event, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from console import audit, changes, readiness
from console.errors import InvalidInput, NotFound
from console.lifecycle import HANDLING, after_changed, choose_after, move, set_presence, step_away
from console.models import (
    Agent,
    AgentSkill,
    AgentStatus,
    Channel,
    Conversation,
    Customer,
    Offer,
    OfferState,
    Queue,
    QueueSkill,
    State,
    Tier,
    utcnow,
)
from console.ports import Context
from console.readiness import READY

SETTABLE = (AgentStatus.AVAILABLE, AgentStatus.AWAY, AgentStatus.OFFLINE)
DEFAULT_OFFER_SECONDS = 20
DEFAULT_OWNER_FIRST = 15
# An agent who declined or let an offer ring out is not offered the same conversation again
# for this long; the queue sweep offers it to them again afterwards if nobody took it.
COOL_DOWN = timedelta(seconds=60)


def _has_skills(required: list[tuple[int, int]]) -> list[ColumnElement[bool]]:
    return [exists().where(AgentSkill.agent_id == Agent.id, AgentSkill.skill_id == skill_id, AgentSkill.level >= level)
            for skill_id, level in required]


LOCKED = "agents_locked"  # session.info key: agents whose row lock this transaction holds


@event.listens_for(Session, "after_transaction_end")
def _forget_locks(session: Session, transaction: Any) -> None:
    # The transaction ended, or a savepoint did (rolled back, it releases the row locks taken
    # inside it; forget them all to be safe). A flush's own inner transaction changes nothing.
    if transaction.parent is None or transaction.nested:
        session.info.pop(LOCKED, None)


def _held(session: AsyncSession, agents: Iterable[Agent]) -> None:
    # Kept here, not only in the session's identity map, which holds unchanged objects weakly.
    session.info.setdefault(LOCKED, {}).update((agent.id, agent) for agent in agents)


async def lock_agent(session: AsyncSession, agent_id: int) -> Agent | None:
    """The agent, row-locked until the transaction ends and read fresh when the lock was taken.

    The first call costs one SELECT ... FOR UPDATE; later calls in the same transaction return
    the loaded agent, which holds what this transaction wrote, without asking the database again.
    """
    held: dict[int, Agent] = session.info.get(LOCKED, {})
    if agent_id in held:
        return held[agent_id]
    agent = await session.get(Agent, agent_id, with_for_update=True, populate_existing=True)
    if agent is not None:
        _held(session, [agent])
    return agent


async def lock_agents(session: AsyncSession, agent_ids: Iterable[int]) -> None:
    """Lock several agents in id order, as every transaction that changes more than one does.

    A ring group's answer changes the readiness of each agent it rang; two answers locking the
    same agents in different orders would deadlock. SQLite has one writer and needs nothing.
    """
    ids = sorted(set(agent_ids) - session.info.get(LOCKED, {}).keys())
    if len(ids) > 1 and session.get_bind().dialect.name == "postgresql":
        _held(session, await session.scalars(
            select(Agent).where(Agent.id.in_(ids)).order_by(Agent.id).with_for_update()
            .execution_options(populate_existing=True)))


_SKILLS = select(QueueSkill.skill_id, QueueSkill.level).where(QueueSkill.queue_id == bindparam("queue"))


async def required_skills(session: AsyncSession, queue_id: int | None) -> list[tuple[int, int]]:
    if queue_id is None:
        return []
    rows = await session.execute(_SKILLS, {"queue": queue_id})
    return [(skill_id, level) for skill_id, level in rows.all()]


WORKING = (AgentStatus.AVAILABLE, AgentStatus.BUSY, AgentStatus.WRAP_UP)


async def staffed(session: AsyncSession, queue_id: int | None, channel: Channel) -> bool:
    """Whether someone at work (available, or busy with other contacts) could take this channel's
    work of the queue: when nobody could, a visitor is offered to leave a message instead."""
    required = await required_skills(session, queue_id)
    found = await session.scalar(select(Agent.id).where(
        Agent.status.in_(WORKING), Agent.deactivated_at.is_(None), readiness.CAPACITY[channel] > 0,
        *_has_skills(required)).limit(1))
    return found is not None


async def can_take(session: AsyncSession, agent_id: int, channel: Channel, required: list[tuple[int, int]]) -> bool:
    """Read after locking the agent."""
    await readiness.refresh(session)
    found = await session.scalar(select(Agent.id).where(Agent.id == agent_id, READY[channel],
                                                        *_has_skills(required)))
    return found is not None


_MISSED = select(Offer.agent_id).where(Offer.conversation_id == bindparam("conversation"),
                                       Offer.state.in_((OfferState.DECLINED, OfferState.EXPIRED)),
                                       Offer.ended_at >= bindparam("since"))


async def recently_missed(session: AsyncSession, conversation_id: int) -> set[int]:
    """Agents who declined or let this conversation ring out a moment ago."""
    rows = await session.scalars(_MISSED, {"conversation": conversation_id, "since": utcnow() - COOL_DOWN})
    return set(rows)


def _pick(conditions: list[Any]) -> Select[Agent]:
    return (select(Agent).where(*conditions).order_by(Agent.ready_since, Agent.id).limit(1)
            .with_for_update(skip_locked=True).execution_options(populate_existing=True, autoflush=False))


# The pick reads only agents' readiness, which refresh() brought up to date (flushing what it is
# computed from); other pending rows, such as the arrival's event, go out with the offer.
_PICK = {channel: _pick([READY[channel]]) for channel in Channel}  # the usual pick, built once


async def pick_agent(session: AsyncSession, channel: Channel, exclude: Iterable[int] = (),
                     required: list[tuple[int, int]] | None = None) -> Agent | None:
    """Lock and return the longest-idle agent ready for `channel`, or None.

    One statement: it walks the channel's readiness index in idle order and stops at the first
    agent nobody else holds. Readiness is a column of the row it locks, so the row PostgreSQL
    re-checks after waiting is judged on its newest value.
    """
    await readiness.refresh(session)
    skipped = set(exclude)
    if not skipped and not required:
        agent = await session.scalar(_PICK[channel])
    else:
        conditions = [READY[channel], *_has_skills(required or [])]
        if skipped:
            conditions.append(Agent.id.not_in(skipped))
        agent = await session.scalar(_pick(conditions))
    if agent is not None:
        _held(session, [agent])
    return agent


async def _queue(session: AsyncSession, conversation: Conversation) -> Queue | None:
    if conversation.queue_id is None:
        return None
    return await session.get(Queue, conversation.queue_id)


async def offer(session: AsyncSession, conversation: Conversation, agent: Agent, *,
                seconds: int | None = None) -> Offer:
    """Propose the conversation to `agent`; console-routed offers ring out after the queue's time."""
    now = utcnow()
    deadline = None
    if conversation.routed_by_console:
        queue = await _queue(session, conversation)
        if seconds is None:
            seconds = queue.offer_seconds if queue else DEFAULT_OFFER_SECONDS
        deadline = now + timedelta(seconds=seconds)
    record = Offer(conversation_id=conversation.id, agent_id=agent.id, state=OfferState.PENDING, created_at=now,
                   deadline=deadline)
    session.add(record)
    move(conversation, State.OFFERED, session, agent_id=agent.id, at=now)
    conversation.agent_id = agent.id
    if conversation.customer_id is not None:
        # The pop shows the customer from the moment it rings: that is when the agent sees them.
        audit.record(session, agent.id, audit.VIEW, audit.CUSTOMER, conversation.customer_id,
                     f"screen-pop of conversation {conversation.id}")
    changes.offered(session, conversation, agent.id, deadline)
    await session.flush()
    return record


# The customer's owner, locked unless another transaction holds them (then owner first is skipped),
# in one statement. Read without flushing first: what is pending (the arrival's event) goes out
# with the offer.
_OWNER_IF_FREE: Select[Agent] = (
    select(Agent).where(Agent.id == select(Customer.owner_id).where(Customer.id == bindparam("customer"))
                        .scalar_subquery())
    .with_for_update(skip_locked=True).execution_options(populate_existing=True, autoflush=False))


async def offer_to_owner(session: AsyncSession, conversation: Conversation) -> Agent | None:
    """Owner first: the customer's owner, when present and free, gets the conversation for a while."""
    if conversation.customer_id is None:
        return None
    owner = await session.scalar(_OWNER_IF_FREE, {"customer": conversation.customer_id})
    if owner is not None:
        _held(session, [owner])
    required = await required_skills(session, conversation.queue_id)
    if owner is None or not await can_take(session, owner.id, conversation.channel, required):
        return None
    queue = await _queue(session, conversation)
    seconds = queue.owner_first_seconds if queue else DEFAULT_OWNER_FIRST
    if seconds <= 0:
        return None  # the queue does without owner first
    await offer(session, conversation, owner, seconds=seconds)
    return owner


async def route(session: AsyncSession, conversation: Conversation, exclude: Iterable[int] = (), *,
                fresh: bool = False) -> Agent | None:
    """Offer a queued conversation to the best agent who did not just miss it; None leaves it queued.

    `fresh`: the conversation was stored in this transaction, so nobody can have missed it yet.
    """
    missed = set() if fresh else await recently_missed(session, conversation.id)
    required = await required_skills(session, conversation.queue_id)
    agent = await pick_agent(session, conversation.channel, {*exclude, *missed}, required)
    if agent is not None:
        await offer(session, conversation, agent)
    return agent


def _weight(queue: Queue | None, tier: Tier | None) -> float:
    if queue is None:
        return {Tier.A: 3.0, Tier.B: 2.0}.get(tier, 1.0) if tier else 1.0
    return {Tier.A: queue.weight_a, Tier.B: queue.weight_b, Tier.C: queue.weight_c}.get(tier, queue.weight_c) \
        if tier else queue.weight_c


def _waiting_for() -> Any:
    """Waiting conversations an agent may take, oldest first (bound: agent, channels, since, candidates)."""
    agent: Any = bindparam("agent")
    missed_by_agent = select(Offer.conversation_id).where(
        Offer.agent_id == agent, Offer.state.in_((OfferState.DECLINED, OfferState.EXPIRED)),
        Offer.ended_at >= bindparam("since"))
    lacking = exists().where(
        QueueSkill.queue_id == Conversation.queue_id,
        ~exists().where(AgentSkill.agent_id == agent, AgentSkill.skill_id == QueueSkill.skill_id,
                        AgentSkill.level >= QueueSkill.level))
    return (select(Conversation.id, Conversation.created_at, Conversation.queue_id, Customer.tier)
            .outerjoin(Customer, Customer.id == Conversation.customer_id)
            .where(Conversation.state == State.QUEUED, Conversation.routed_by_console.is_(True),
                   Conversation.channel.in_(bindparam("channels", expanding=True)),
                   Conversation.id.not_in(missed_by_agent), ~lacking)
            .order_by(Conversation.created_at, Conversation.id).limit(bindparam("candidates")))


_WAITING_FOR = _waiting_for()  # built once: every agent who becomes free asks it
# A waiting conversation, locked unless another transaction holds it (then it is skipped).
_STILL_QUEUED = (select(Conversation)
                 .where(Conversation.id == bindparam("conversation"), Conversation.state == State.QUEUED)
                 .with_for_update(skip_locked=True))


async def dispatch_to(session: AsyncSession, agent: Agent, candidates: int = 200) -> Conversation | None:
    """Offer the waiting conversation with the highest priority that `agent` may take; return it.

    Priority is waiting time weighted by the customer's tier (per queue), so at equal wait an A
    customer goes before B before C, and a long wait still wins over a better tier.
    """
    channels = await readiness.ready_channels(session, agent)
    if not channels:
        return None
    rows = (await session.execute(_WAITING_FOR, {
        "agent": agent.id, "channels": sorted(channels), "since": utcnow() - COOL_DOWN, "candidates": candidates,
    })).all()
    if not rows:
        return None
    queues: dict[int, Queue | None] = {}
    now = utcnow()
    scored: list[tuple[float, int]] = []
    for conversation_id, created_at, queue_id, tier in rows:
        if queue_id is not None and queue_id not in queues:
            queues[queue_id] = await session.get(Queue, queue_id)
        wait = max((now - created_at).total_seconds(), 0.001)
        scored.append((wait * _weight(queues.get(queue_id) if queue_id else None, tier), conversation_id))
    for _, conversation_id in sorted(scored, reverse=True):
        # The agent is locked and the candidates are of the channels they are ready for: what
        # is left to check is that the conversation still waits and nobody else holds it.
        conversation = await session.scalar(_STILL_QUEUED, {"conversation": conversation_id})
        if conversation is not None:
            await offer(session, conversation, agent)
            return conversation
    return None


@dataclass(frozen=True)
class QueueFigures:
    """What one queue has now: callers waiting for an agent, and conversations ringing an agent."""

    waiting: int = 0
    ringing: int = 0


# A conversation rings when one of its pending offers is at an agent who is not offline. A phone
# system may ring an offline agent's extension directly (their pop shows if their page is open),
# but nobody is there to answer: the caller still waits, and counts as waiting, never as ringing.
RINGS_SOMEONE = exists().where(Offer.conversation_id == Conversation.id, Offer.state == OfferState.PENDING,
                                Offer.agent_id == Agent.id, Agent.status != AgentStatus.OFFLINE)


async def queue_figures(ctx: Context) -> dict[str, QueueFigures]:
    """Waiting and ringing conversations per queue ('' for those without one), in one query."""
    ringing = (Conversation.state == State.OFFERED) & RINGS_SOMEONE
    async with ctx.db.reading() as session:
        rows = await session.execute(
            select(func.coalesce(Queue.name, ""), ringing.label("ringing"), func.count(Conversation.id))
            .select_from(Conversation).outerjoin(Queue, Queue.id == Conversation.queue_id)
            .where(Conversation.state.in_((State.QUEUED, State.OFFERED)))
            .group_by(Queue.name, ringing.label("ringing")))
        counts: dict[str, dict[bool, int]] = {}
        for name, rings, count in rows.all():
            counts.setdefault(name, {})[bool(rings)] = count
    return {name: QueueFigures(waiting=by.get(False, 0), ringing=by.get(True, 0)) for name, by in counts.items()}


async def sweep_queue(ctx: Context, limit: int = 50) -> int:
    """Route waiting conversations that no event picked up: after a cool-down ended, or when an
    agent became free in a transaction that raced with the arrival. Safe on every node."""
    async with ctx.transaction() as session:
        waiting = list(await session.scalars(
            select(Conversation.id).where(Conversation.state == State.QUEUED,
                                          Conversation.routed_by_console.is_(True))
            .order_by(Conversation.created_at, Conversation.id).limit(limit)))
    routed = 0
    for conversation_id in waiting:
        async with ctx.transaction() as session:
            conversation = await session.scalar(_STILL_QUEUED, {"conversation": conversation_id})
            agent = await route(session, conversation) if conversation is not None else None
        if agent is not None:
            routed += 1
    return routed


async def fill(session: AsyncSession, agent: Agent, limit: int = 20) -> int:
    """Offer waiting work to `agent` until their capacity is used; returns how many offers."""
    count = 0
    while count < limit and await dispatch_to(session, agent) is not None:
        count += 1
    return count


def check_status(status: str, reason: str | None, reasons: tuple[str, ...]) -> tuple[AgentStatus, str | None]:
    try:
        new = AgentStatus(status)
    except ValueError:
        new = None
    if new is None or new not in SETTABLE:
        raise InvalidInput("Status must be available, away or offline, not %(value)s.", field="status",
                           value=status)
    if new is not AgentStatus.AWAY:
        return new, None
    reason = (reason or "").strip() or None
    if reason is not None and reason not in reasons:
        raise InvalidInput("Choose a reason from the list: %(reasons)s.", field="reason",
                           reasons=", ".join(reasons))
    return new, reason


async def set_status(ctx: Context, agent_id: int, status: str, reason: str | None = None, *,
                     also: Callable[[AsyncSession, Agent], Awaitable[None]] | None = None) -> AgentStatus:
    """Set an agent's presence; going available picks up waiting work at once.

    While the agent handles a contact they stay busy or in wrap-up, which end by themselves: away
    or offline then applies when the last contact ends (shown on the page meanwhile), and
    available takes that choice back. `also` runs in the same transaction, last, given the agent as
    they are now (a supervisor's audit and word to the agent go with the change, or none of it does).
    """
    new, reason = check_status(status, reason, ctx.away_reasons)
    async with ctx.transaction() as session:
        if new is not AgentStatus.AVAILABLE:
            # Conversations before the agent row: the order accept and decline lock in.
            await release_offers(session, agent_id)
        agent = await lock_agent(session, agent_id)
        if agent is None:
            raise NotFound("Agent not found.")
        if new is not AgentStatus.AVAILABLE:
            await step_away(session, agent, new, reason)
        elif agent.status in HANDLING:
            if choose_after(agent, None):
                await after_changed(session, agent)
        else:
            await set_presence(session, agent, new, reason)
        await session.flush()
        if new is AgentStatus.AVAILABLE:
            await fill(session, agent)
        status_now = agent.status
        if also is not None:
            await also(session, agent)
    if new is not AgentStatus.AVAILABLE:
        # An offer made while this waited for the agent's lock rings on: it goes to someone else
        # too (a transaction of its own: conversations are locked before agents).
        async with ctx.transaction() as session:
            await release_offers(session, agent_id)
    return status_now


async def requeue(session: AsyncSession, conversation: Conversation, *, leaving: int, detail: str) -> set[int]:
    """Back to the queue after the agent `leaving` did not take it, and on to the next agent."""
    if not conversation.routed_by_console or conversation.state is not State.OFFERED:
        return set()
    still_offered = await session.scalar(select(exists().where(
        Offer.conversation_id == conversation.id, Offer.state == OfferState.PENDING)))
    if still_offered:
        return set()
    move(conversation, State.QUEUED, session, agent_id=leaving, detail=detail)
    conversation.agent_id = None
    await session.flush()
    other = await route(session, conversation, exclude={leaving})
    return {other.id} if other is not None else set()


async def release_offers(session: AsyncSession, agent_id: int) -> set[int]:
    """An agent who leaves gives back what the console offered them: it goes to the next agent.

    Rings the phone system placed itself are only withdrawn from the agent's screen; the phone
    system decides where those calls go. Returns the agents who got an offer instead.
    """
    now = utcnow()
    conversation_ids = list(await session.scalars(
        select(Offer.conversation_id).where(Offer.agent_id == agent_id, Offer.state == OfferState.PENDING)))
    served: set[int] = set()
    for conversation_id in conversation_ids:
        conversation = await session.get(Conversation, conversation_id, with_for_update=True)
        record = await session.scalar(select(Offer).where(
            Offer.conversation_id == conversation_id, Offer.agent_id == agent_id,
            Offer.state == OfferState.PENDING).with_for_update())
        if conversation is None or record is None:
            continue
        record.state = OfferState.WITHDRAWN
        record.ended_at = now
        await session.flush()
        served |= await requeue(session, conversation, leaving=agent_id, detail="agent left")
        changes.withdrawn(session, conversation, agent_id, "agent left")
    return served
