"""The tables. Times are timezone-aware UTC."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite hands back naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use console.models.utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class AgentStatus(enum.StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    BUSY = "busy"
    WRAP_UP = "wrap_up"
    AWAY = "away"


class Tier(enum.StrEnum):
    A = "A"
    B = "B"
    C = "C"


class ContactKind(enum.StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    VISITOR = "visitor"


class Channel(enum.StrEnum):
    CALL = "call"
    CHAT = "chat"
    MAIL = "mail"


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


class State(enum.StrEnum):
    QUEUED = "queued"
    OFFERED = "offered"
    ACTIVE = "active"
    WRAP_UP = "wrap_up"
    CLOSED = "closed"
    ABANDONED = "abandoned"
    TRANSFERRED = "transferred"


OPEN_STATES = (State.QUEUED, State.OFFERED, State.ACTIVE)


class OfferState(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class TicketStatus(enum.StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    SOLVED = "solved"
    CLOSED = "closed"


OPEN_TICKET_STATUSES = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING)


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Author(enum.StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SYSTEM = "system"


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), default=Role.AGENT)
    language: Mapped[str] = mapped_column(String(8), default="en")
    extension: Mapped[str | None] = mapped_column(String(40), unique=True)
    status: Mapped[AgentStatus] = mapped_column(_enum(AgentStatus, "agent_status"), default=AgentStatus.OFFLINE)
    status_since: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    idle_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Bumped on logout: sessions and sockets carrying an older version are no longer accepted.
    session_version: Mapped[int] = mapped_column(default=1)
    away_reason: Mapped[str | None] = mapped_column(String(100))
    # How many contacts of each channel the agent handles at once (offers included).
    capacity_call: Mapped[int] = mapped_column(default=1)
    capacity_chat: Mapped[int] = mapped_column(default=3)
    capacity_mail: Mapped[int] = mapped_column(default=5)
    # Offers in a row that rang out or were declined without a word; two set the agent away.
    missed_offers: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (Index("ix_agents_status_idle", "status", "idle_since"),)


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[Tier | None] = mapped_column(_enum(Tier, "tier"))
    lifetime_value: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    owner: Mapped[Agent | None] = relationship(lazy="raise")
    contact_points: Mapped[list[ContactPoint]] = relationship(
        back_populates="customer", lazy="raise", cascade="all, delete-orphan", order_by="ContactPoint.id"
    )


class ContactPoint(Base):
    """A phone number, email address or chat visitor id of a customer.

    Unique per customer and kind, not globally: colleagues at one company share a switchboard
    number, which is why a call can match several customers.
    """

    __tablename__ = "contact_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[ContactKind] = mapped_column(_enum(ContactKind, "contact_kind"))
    value: Mapped[str] = mapped_column(String(320))
    normalized: Mapped[str] = mapped_column(String(320))

    customer: Mapped[Customer] = relationship(back_populates="contact_points", lazy="raise")

    __table_args__ = (
        UniqueConstraint("customer_id", "kind", "normalized", name="uq_contact_points_customer_kind_normalized"),
        Index("ix_contact_points_kind_normalized", "kind", "normalized"),
    )


class Queue(Base):
    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    offer_seconds: Mapped[int] = mapped_column(default=20)
    wrap_up_seconds: Mapped[int] = mapped_column(default=60)
    owner_first_seconds: Mapped[int] = mapped_column(default=15)
    # Waiting time counts this many times over for customers of each tier: A before B before C.
    weight_a: Mapped[float] = mapped_column(default=3.0)
    weight_b: Mapped[float] = mapped_column(default=2.0)
    weight_c: Mapped[float] = mapped_column(default=1.0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Skill(Base):
    __tablename__ = "skills"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class AgentSkill(Base):
    __tablename__ = "agent_skills"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True)
    level: Mapped[int] = mapped_column(default=1)


class QueueSkill(Base):
    """A skill the queue requires, at least at `level`."""

    __tablename__ = "queue_skills"

    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True)
    level: Mapped[int] = mapped_column(default=1)


class Disposition(Base):
    """A code an agent may end a contact of the queue with."""

    __tablename__ = "dispositions"

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(100))

    __table_args__ = (UniqueConstraint("queue_id", "code", name="uq_dispositions_queue_code"),)


class StatusPeriod(Base):
    """A stretch of time an agent spent in one presence state."""

    __tablename__ = "status_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    status: Mapped[AgentStatus] = mapped_column(_enum(AgentStatus, "agent_status"))
    reason: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_status_periods_agent_started", "agent_id", "started_at"),)


class LiveSocket(Base):
    """An open agent socket, kept fresh by its node; presence is derived from these rows."""

    __tablename__ = "live_sockets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    connected_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "channel"))
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"), default=Direction.IN)
    state: Mapped[State] = mapped_column(_enum(State, "conversation_state"), default=State.QUEUED)
    # True when the console picks the agent; False when the phone system rings agents itself.
    routed_by_console: Mapped[bool] = mapped_column(default=True)
    external_id: Mapped[str] = mapped_column(String(250))
    from_address: Mapped[str] = mapped_column(String(320), default="")
    to_address: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str | None] = mapped_column(String(500))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    disposition: Mapped[str | None] = mapped_column(String(100))
    disposition_note: Mapped[str | None] = mapped_column(Text)
    wrap_up_deadline: Mapped[datetime | None] = mapped_column(UtcDateTime())
    hangup_cause: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    offered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    wrap_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    abandoned_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    transferred_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    customer: Mapped[Customer | None] = relationship(lazy="raise")
    agent: Mapped[Agent | None] = relationship(lazy="raise")
    queue: Mapped[Queue | None] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_conversations_channel_external_id"),
        Index("ix_conversations_customer_created", "customer_id", "created_at"),
        Index("ix_conversations_state_created", "state", "created_at"),
    )


class Offer(Base):
    """A conversation proposed to one agent (rung, or routed) until it is accepted or ends."""

    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    state: Mapped[OfferState] = mapped_column(_enum(OfferState, "offer_state"), default=OfferState.PENDING)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_offers_agent_state", "agent_id", "state"),)


class ConversationEvent(Base):
    """One transition in a conversation's life, kept so wait, talk and wrap-up times can be computed."""

    __tablename__ = "conversation_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    from_state: Mapped[State | None] = mapped_column(_enum(State, "conversation_state"))
    to_state: Mapped[State] = mapped_column(_enum(State, "conversation_state"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    detail: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (Index("ix_conversation_events_conversation_at", "conversation_id", "at"),)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    author: Mapped[Author] = mapped_column(_enum(Author, "author"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Note(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    agent: Mapped[Agent | None] = relationship(lazy="raise")

    __table_args__ = (Index("ix_notes_customer_created", "customer_id", "created_at"),)


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus, "ticket_status"), default=TicketStatus.NEW)
    priority: Mapped[Priority] = mapped_column(_enum(Priority, "priority"), default=Priority.NORMAL)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_tickets_customer_status", "customer_id", "status"),)


class LoginAttempt(Base):
    """Every login try, kept for rate limiting per account and per address (and for audit)."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (
        Index("ix_login_attempts_account_created", "account", "created_at"),
        Index("ix_login_attempts_address_created", "address", "created_at"),
    )

