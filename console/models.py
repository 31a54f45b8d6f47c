"""The tables. Times are timezone-aware UTC."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects import postgresql
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


def partial_index(name: str, *columns: str, where: str) -> Index:
    """An index of the rows that are live now (a plain-column condition, so SQLite has it too)."""
    return Index(name, *columns, sqlite_where=text(where), postgresql_where=text(where))


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
    SMS = "sms"  # text messages: SMS, and WhatsApp (the customer's address is whatsapp:+31...)


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


class HandoffMode(enum.StrEnum):
    COLD = "cold"
    WARM = "warm"


class HandoffState(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class ContractStatus(enum.StrEnum):
    QUOTE = "quote"
    ACTIVE = "active"
    ENDED = "ended"
    CANCELLED = "cancelled"


class AddressKind(enum.StrEnum):
    POSTAL = "postal"
    BILLING = "billing"
    DELIVERY = "delivery"


class Author(enum.StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    SYSTEM = "system"


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Read only where a password is checked: loading an agent for routing or a page leaves it out.
    password_hash: Mapped[str] = mapped_column(String(200), deferred=True)
    # The second factor (TOTP, RFC 6238) of a supervisor or admin who turned it on; the time step of
    # the last code accepted, so a code works once.
    totp_secret: Mapped[str | None] = mapped_column(String(64), deferred=True)
    totp_last_step: Mapped[int | None] = mapped_column(deferred=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"), default=Role.AGENT)
    language: Mapped[str] = mapped_column(String(8), default="en")
    extension: Mapped[str | None] = mapped_column(String(40), unique=True)
    status: Mapped[AgentStatus] = mapped_column(_enum(AgentStatus, "agent_status"), default=AgentStatus.OFFLINE)
    status_since: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    idle_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Bumped on logout: sessions and sockets carrying an older version are no longer accepted.
    session_version: Mapped[int] = mapped_column(default=1)
    away_reason: Mapped[str | None] = mapped_column(String(100))
    # What the agent chose while on a contact (away with a reason, or offline), applied when their
    # last contact ends: the phone system says when they talk, the agent when they stop taking
    # work. after_version counts its changes (the version of the line that shows it).
    after_status: Mapped[AgentStatus | None] = mapped_column(_enum(AgentStatus, "agent_after_status"))
    after_reason: Mapped[str | None] = mapped_column(String(100))
    after_version: Mapped[int] = mapped_column(default=0, server_default=text("0"))
    # How many contacts of each channel the agent handles at once (offers included).
    capacity_call: Mapped[int] = mapped_column(default=1)
    capacity_chat: Mapped[int] = mapped_column(default=3)
    capacity_mail: Mapped[int] = mapped_column(default=5)
    # Offers in a row that rang out or were declined without a word; two set the agent away.
    missed_offers: Mapped[int] = mapped_column(default=0)
    # The customer whose page the agent has open; their changes are pushed to the agent live.
    # No foreign key: customers already refer to agents (owner), and a stale id just shows nothing.
    viewing_customer_id: Mapped[int | None] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Whether the agent can take new work of each channel now, and since when they are idle:
    # kept by console.readiness after every change of what they have, under their row lock.
    ready_call: Mapped[bool] = mapped_column(default=False, server_default=false())
    ready_chat: Mapped[bool] = mapped_column(default=False, server_default=false())
    ready_mail: Mapped[bool] = mapped_column(default=False, server_default=false())
    ready_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # When an admin deactivated the agent (None: active). A deactivated agent cannot log in, is
    # offered no work and is not found by the phone system or listed in pickers; they stay in the
    # records they appear in, and an admin can reactivate them.
    deactivated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        Index("ix_agents_status_idle", "status", "idle_since"),
        # Picking the longest-idle ready agent walks one of these in idle order and stops at the
        # first who qualifies, whatever the number of agents.
        *(Index(f"ix_agents_ready_{channel}", "ready_since", "id", sqlite_where=text(f"ready_{channel} = 1"),
                postgresql_where=text(f"ready_{channel}")) for channel in ("call", "chat", "mail")),
    )


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    tier: Mapped[Tier | None] = mapped_column(_enum(Tier, "tier"))
    lifetime_value: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    segment: Mapped[str | None] = mapped_column(String(100))
    # Consent to be contacted for marketing, per channel (GDPR): unknown until the customer says.
    consent_email: Mapped[bool] = mapped_column(default=False)
    consent_phone: Mapped[bool] = mapped_column(default=False)
    # Bumped on every edit, so a form saved over someone else's newer change is refused.
    version: Mapped[int] = mapped_column(default=1)
    # Bumped on every change of what screens show of the customer (edits, notes, tickets): the
    # version of pushed fragments, so a colleague's screen never goes back to an older picture.
    revision: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
    # Set when the person was erased on request (console.privacy): the record stays for the figures.
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

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
    # An email address that bounced for good: when, and what the receiving server said.
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime())
    failure: Mapped[str | None] = mapped_column(String(500))

    customer: Mapped[Customer] = relationship(back_populates="contact_points", lazy="raise")

    __table_args__ = (
        UniqueConstraint("customer_id", "kind", "normalized", name="uq_contact_points_customer_kind_normalized"),
        Index("ix_contact_points_kind_normalized", "kind", "normalized"),
    )


class SearchTerm(Base):
    """One word a customer can be found by (folded name or company word, phone digits, email).

    The search box looks terms up by prefix, an index range scan on every database; on
    PostgreSQL the column compares bytewise ("C"), so the range is the prefix whatever the locale.
    """

    __tablename__ = "search_terms"

    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(100).with_variant(postgresql.VARCHAR(100, collation="C"), "postgresql"),
                                      primary_key=True)

    __table_args__ = (Index("ix_search_terms_term", "term"),)


class Address(Base):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[AddressKind] = mapped_column(_enum(AddressKind, "address_kind"), default=AddressKind.POSTAL)
    street: Mapped[str] = mapped_column(String(200))
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    city: Mapped[str] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2), default="NL")


class Contract(Base):
    """A quote, contract or agreement with its terms (delivery, payment) and dates."""

    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[ContractStatus] = mapped_column(_enum(ContractStatus, "contract_status"),
                                                   default=ContractStatus.ACTIVE)
    starts_on: Mapped[date | None] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    terms: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_contracts_customer_starts", "customer_id", "starts_on"),)


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
    # Service level: answered within this many seconds; the goal is this share of them (percent).
    service_level_seconds: Mapped[int] = mapped_column(default=20, server_default=text("20"))
    service_level_goal: Mapped[int] = mapped_column(default=80, server_default=text("80"))
    # A contact given up within this many seconds is a short abandon, counted apart (a wrong number).
    short_abandon_seconds: Mapped[int] = mapped_column(default=5, server_default=text("5"))
    # The wallboard marks the queue when its oldest contact has waited longer than this.
    longest_wait_seconds: Mapped[int] = mapped_column(default=60, server_default=text("60"))
    # What a caller on hold hears (a phone system that holds callers itself, such as Twilio): the
    # message in the customer's language unless one is set here, then the music.
    hold_message: Mapped[str | None] = mapped_column(String(500))
    hold_music_url: Mapped[str | None] = mapped_column(String(500))
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

    __table_args__ = (
        Index("ix_status_periods_agent_started", "agent_id", "started_at"),
        partial_index("ix_status_periods_open", "agent_id", where="ended_at IS NULL"),
    )


class LiveSocket(Base):
    """An open agent socket, kept fresh by its node; presence is derived from these rows."""

    __tablename__ = "live_sockets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    connected_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        partial_index("ix_live_sockets_open", "agent_id", "seen_at", where="closed_at IS NULL"),
        partial_index("ix_live_sockets_closed", "closed_at", where="closed_at IS NOT NULL"),
    )


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
    # Set when what identifies the customer was taken out (erasure or retention, console.privacy).
    redacted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # A handoff ends one agent's part and starts the next one's as a new conversation row with
    # the same external id; the phone system's events go to the newest part.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"), index=True)
    chat_id: Mapped[int | None] = mapped_column(ForeignKey("chats.id", ondelete="SET NULL"), index=True)
    # A mail conversation's thread: its mails, in and out, over every part of the conversation.
    mail_thread_id: Mapped[int | None] = mapped_column(ForeignKey("mail_threads.id", ondelete="SET NULL"),
                                                       index=True)
    # The customer's satisfaction with this part (1 to 5) and what they wrote with it; with the
    # part's agent and queue, that is the rating per conversation, agent and queue.
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    rating_comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    customer: Mapped[Customer | None] = relationship(lazy="raise")
    agent: Mapped[Agent | None] = relationship(lazy="raise")
    queue: Mapped[Queue | None] = relationship(lazy="raise")

    __table_args__ = (
        Index("uq_conversations_channel_external_id", "channel", "external_id", unique=True,
              sqlite_where=text("parent_id IS NULL"), postgresql_where=text("parent_id IS NULL")),
        Index("ix_conversations_channel_external_id", "channel", "external_id"),
        Index("ix_conversations_customer_created", "customer_id", "created_at"),
        Index("ix_conversations_state_created", "state", "created_at"),
        partial_index("ix_conversations_open_by_agent", "agent_id", "channel",
                      where="state IN ('offered', 'active', 'wrap_up')"),
        partial_index("ix_conversations_queued", "created_at", "id", where="state = 'queued'"),
        partial_index("ix_conversations_wrap_up_due", "wrap_up_deadline", where="state = 'wrap_up'"),
        partial_index("ix_conversations_unredacted", "created_at", where="redacted_at IS NULL"),
        partial_index("ix_conversations_rated", "rated_at", where="rated_at IS NOT NULL"),
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

    __table_args__ = (
        Index("ix_offers_agent_state", "agent_id", "state"),
        partial_index("ix_offers_pending_deadline", "deadline", where="state = 'pending'"),
        partial_index("ix_offers_pending_conversation", "conversation_id", "agent_id", where="state = 'pending'"),
    )


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

    agent: Mapped[Agent | None] = relationship(lazy="raise")

    __table_args__ = (Index("ix_conversation_events_conversation_at", "conversation_id", "at"),
                      Index("ix_conversation_events_at", "at"))


class Message(Base):
    """What the customer and the agent wrote to each other (a chat), on the part of the
    conversation that was current when it was written; `chat_id` holds a chat's parts together."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    author: Mapped[Author] = mapped_column(_enum(Author, "author"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    chat_id: Mapped[int | None] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    # The sender's own id for the message: a resend after a reconnect is the same message.
    client_id: Mapped[str | None] = mapped_column(String(64))
    read_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # the other side saw it

    agent: Mapped[Agent | None] = relationship(lazy="raise")
    attachment: Mapped[Attachment | None] = relationship(lazy="raise", uselist=False, viewonly=True)
    mail: Mapped[Mail | None] = relationship(lazy="raise", uselist=False, viewonly=True)
    texted: Mapped[TextMessage | None] = relationship(lazy="raise", uselist=False, viewonly=True)

    __table_args__ = (
        Index("ix_messages_chat_id", "chat_id", "id"),
        Index("uq_messages_chat_author_client", "chat_id", "author", "client_id", unique=True,
              sqlite_where=text("client_id IS NOT NULL"), postgresql_where=text("client_id IS NOT NULL")),
    )


class Attachment(Base):
    """A file sent in a chat (an image or a PDF, its type read from its content) or with a mail, with
    its message."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    chat_id: Mapped[int | None] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))  # as shown and saved; cleaned, with the right extension
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    content_id: Mapped[str | None] = mapped_column(String(250))  # a mail's inline image: its HTML shows cid:<this>
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ChatSite(Base):
    """A website with the chat widget: its public key, the origins it may be embedded on, its queue."""

    __tablename__ = "chat_sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    origins: Mapped[str] = mapped_column(Text, default="")  # one origin per line, as https://host[:port]
    # For identity: the site signs its visitor's identifier with it (HMAC-SHA256); never shown to visitors.
    secret: Mapped[str] = mapped_column(String(128))
    identity_required: Mapped[bool] = mapped_column(default=False)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    greeting: Mapped[str | None] = mapped_column(Text)
    hours: Mapped[str | None] = mapped_column(String(500))  # opening hours, e.g. "mon-fri 09:00-17:00"
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Amsterdam")
    idle_minutes: Mapped[int] = mapped_column(default=10)
    prechat: Mapped[bool] = mapped_column(default=False, server_default=false())  # ask name and email first
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ChatVisitor(Base):
    """Someone chatting on a site: known by a random id kept in their browser (its hash here)."""

    __tablename__ = "chat_visitors"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("chat_sites.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    identifier: Mapped[str | None] = mapped_column(String(320))  # the site's own id of the visitor, verified
    identity: Mapped[str] = mapped_column(String(20), default="anonymous")  # anonymous, typed or verified
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Chat(Base):
    """One chat of a visitor, from the first message to its end; its conversation parts share it."""

    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("chat_sites.id", ondelete="CASCADE"))
    visitor_id: Mapped[int] = mapped_column(ForeignKey("chat_visitors.id", ondelete="CASCADE"))
    page_url: Mapped[str | None] = mapped_column(String(2000))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_by: Mapped[str | None] = mapped_column(String(20))  # visitor, agent, idle

    # One open chat per visitor: two tabs starting one at once end up in the same chat.
    __table_args__ = (Index("uq_chats_open_by_visitor", "visitor_id", unique=True,
                            sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")),
                      # The open chats of a site, for the idle sweep.
                      Index("ix_chats_open_by_site", "site_id", "id",
                            sqlite_where=text("ended_at IS NULL"), postgresql_where=text("ended_at IS NULL")))


class Mailbox(Base):
    """A mailbox the console reads (IMAP or SMTP in), known by the name its setting gives it; the
    row keeps where reading stopped: the server's UIDVALIDITY and the highest UID stored."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # From its setting, kept here so that any node can write from it: the address replies come
    # from, and whether replies ask to be answered at the thread's own subaddress.
    address: Mapped[str] = mapped_column(String(320), default="")
    subaddress: Mapped[bool] = mapped_column(default=False)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    # One node reads a mailbox at a time: the node holding it, until when (renewed while it reads).
    reader: Mapped[str | None] = mapped_column(String(100))
    reader_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class MailThread(Base):
    """The mails between one customer address and a mailbox that answer each other; each thread has
    a random token that the console puts in its own Message-IDs, so a reply finds its thread even when
    a provider rewrote the ids in between. `follows_id`: the thread a reply to a closed conversation
    started, when the console is set to start a linked one instead of reopening."""

    __tablename__ = "mail_threads"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    token: Mapped[str] = mapped_column(String(32), unique=True)
    address: Mapped[str] = mapped_column(String(320))  # the customer's address, normalised
    subject: Mapped[str] = mapped_column(String(500), default="")
    follows_id: Mapped[int | None] = mapped_column(ForeignKey("mail_threads.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    __table_args__ = (Index("ix_mail_threads_address", "address", "id"),)


class Mail(Base):
    """One mail of a thread, received or sent, with its message (the line the conversation shows:
    the text the sender wrote now). Message ids are kept without angle brackets; `refs` holds
    In-Reply-To and References, one id per line, for threading the replies that cite this one."""

    __tablename__ = "mails"

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("mail_threads.id", ondelete="CASCADE"))
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"), default=Direction.IN)
    header_id: Mapped[str] = mapped_column(String(250))  # its Message-ID
    refs: Mapped[str] = mapped_column(Text, default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="")  # where the sender wants answers
    to_addresses: Mapped[str] = mapped_column(Text, default="")  # To and Cc, one per line
    subject: Mapped[str] = mapped_column(String(500), default="")
    quoted: Mapped[str] = mapped_column(Text, default="")  # history and signature, folded away
    text: Mapped[str | None] = mapped_column(Text, deferred=True)  # what is sent, when not its line's (a transcript)
    html: Mapped[str | None] = mapped_column(Text)  # sanitised, remote images blocked (read with the thread)
    remote_html: Mapped[str | None] = mapped_column(Text, deferred=True)  # the same with remote images
    automatic: Mapped[str | None] = mapped_column(String(40))  # why a machine sent it; never routed
    problems: Mapped[str | None] = mapped_column(Text)  # what could not be read, one per line
    size: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # the mail's own Date
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # A mail the console sends: queued, sending (a node has it), sent, or failed (the server refused
    # it for good); tried again at next_attempt_at after a failure that may pass.
    send_state: Mapped[str | None] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))
    automatic_reply: Mapped[bool] = mapped_column(default=False)  # the console's own (an acknowledgement)

    __table_args__ = (
        partial_index("ix_mails_to_send", "next_attempt_at", where="send_state IN ('queued', 'sending')"),
        # The same Message-ID twice in one mailbox (a resync, a mail fetched again) is stored once.
        Index("uq_mails_mailbox_header_id", "mailbox_id", "header_id", unique=True),
        Index("ix_mails_header_id", "header_id"),
        Index("ix_mails_thread_id", "thread_id", "id"),
    )


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
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Bumped on every change, so an edit made on an older copy is refused instead of overwriting.
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    assignee: Mapped[Agent | None] = relationship(lazy="raise", foreign_keys=[assignee_id])

    __table_args__ = (
        Index("ix_tickets_customer_status", "customer_id", "status"),
        Index("ix_tickets_assignee_status", "assignee_id", "status"),
    )


class TicketComment(Base):
    __tablename__ = "ticket_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    agent: Mapped[Agent | None] = relationship(lazy="raise")


class TicketChange(Base):
    """Who changed which field of a ticket, from what to what, and when."""

    __tablename__ = "ticket_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    field: Mapped[str] = mapped_column(String(40))
    old: Mapped[str | None] = mapped_column(String(300))
    new: Mapped[str | None] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    agent: Mapped[Agent | None] = relationship(lazy="raise")


class Handoff(Base):
    """A conversation handed to a colleague or a queue, cold or warm, with a context note."""

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    from_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    to_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    to_queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    mode: Mapped[HandoffMode] = mapped_column(_enum(HandoffMode, "handoff_mode"))
    state: Mapped[HandoffState] = mapped_column(_enum(HandoffState, "handoff_state"), default=HandoffState.PENDING)
    note: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(String(500))  # why the colleague declined
    # The next agent's part of the conversation, once the handoff took place.
    next_conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    from_agent: Mapped[Agent | None] = relationship(lazy="raise", foreign_keys=[from_agent_id])
    to_agent: Mapped[Agent | None] = relationship(lazy="raise", foreign_keys=[to_agent_id])

    __table_args__ = (
        Index("ix_handoffs_to_agent_state", "to_agent_id", "state"),
        partial_index("ix_handoffs_pending", "conversation_id", where="state = 'pending'"),
    )


class CustomerMerge(Base):
    """The record of a merge: which customer was folded into which, by whom, and what it held."""

    __tablename__ = "customer_merges"

    id: Mapped[int] = mapped_column(primary_key=True)
    kept_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)
    merged_id: Mapped[int] = mapped_column()
    merged_name: Mapped[str] = mapped_column(String(200))
    snapshot: Mapped[str] = mapped_column(Text)  # JSON of the merged record as it was
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class CannedResponse(Base):
    """A reply text for chats and mails with {customer.first_name}-style placeholders."""

    __tablename__ = "canned_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100), unique=True)
    body: Mapped[str] = mapped_column(Text)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class AuditEvent(Base):
    """Who viewed or changed which customer, ticket or conversation (personal data, GDPR)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(20))
    entity: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[int] = mapped_column()
    detail: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    agent: Mapped[Agent | None] = relationship(lazy="raise")

    __table_args__ = (
        Index("ix_audit_events_entity", "entity", "entity_id", "at"),
        Index("ix_audit_events_agent_at", "agent_id", "at"),
    )


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



class Lease(Base):
    """Work that one node does for all (the wallboard, the statistics): who holds it, until when."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    until: Mapped[datetime] = mapped_column(UtcDateTime())


class _Figures:
    """The counts and summed milliseconds of console.metrics.Tally, as columns."""

    offered: Mapped[int] = mapped_column(default=0)
    answered: Mapped[int] = mapped_column(default=0)
    answered_in_threshold: Mapped[int] = mapped_column(default=0)
    abandoned: Mapped[int] = mapped_column(default=0)
    short_abandoned: Mapped[int] = mapped_column(default=0)
    answer_wait_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    handled: Mapped[int] = mapped_column(default=0)
    talk_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    wrap_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    wrap_timeouts: Mapped[int] = mapped_column(default=0)
    rated: Mapped[int] = mapped_column(default=0)
    rating_sum: Mapped[int] = mapped_column(default=0)


class StatInterval(_Figures, Base):
    """What the contacts that arrived in one hour (the console's local hour, as its UTC start) add
    up to, per queue (0: none) and channel. Kept by console.rollups from the definitions in
    console.metrics; times are milliseconds. Personal data is not in it, so it outlives the
    conversations the retention removes."""

    __tablename__ = "stat_intervals"

    start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    queue_id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)


class StatAgent(_Figures, Base):
    """The same figures per hour for the contacts each agent answered (a table of its own: an
    agent dimension beside queue and channel would multiply the rows a report reads)."""

    __tablename__ = "stat_agents"

    start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    agent_id: Mapped[int] = mapped_column(primary_key=True)


class StatDisposition(Base):
    """How often each disposition closed the contacts of one hour, per queue and channel."""

    __tablename__ = "stat_dispositions"

    start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    queue_id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    code: Mapped[str] = mapped_column(String(100), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class RollupCursor(Base):
    """How far the statistics are kept, in `zone`'s hours: changes seen up to `seen_until`; the
    hours from `backfill_from` up to `backfill_next` still to be counted from the history, newest
    first (None: all counted)."""

    __tablename__ = "rollup_cursors"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    zone: Mapped[str] = mapped_column(String(64))
    seen_until: Mapped[datetime] = mapped_column(UtcDateTime())
    backfill_from: Mapped[datetime | None] = mapped_column(UtcDateTime())
    backfill_next: Mapped[datetime | None] = mapped_column(UtcDateTime())
    thresholds: Mapped[str | None] = mapped_column(String(64))  # the queues' thresholds it counts by, hashed


class TwilioCall(Base):
    """A Twilio call leg: the caller's (a conversation) or an agent's that the console dialled.

    `status` only moves forward and never leaves a final one, whatever order Twilio's callbacks
    arrive in. For the caller's leg, `holding` says the caller hears hold music (a chosen agent
    is dialled by moving the call), `dialing_agent_id` whom its Dial rings now.
    """

    __tablename__ = "twilio_calls"

    call_sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"),
                                                        index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20))
    sequence: Mapped[int] = mapped_column(default=-1)
    holding: Mapped[bool] = mapped_column(default=False)
    dialing_agent_id: Mapped[int | None] = mapped_column()
    language: Mapped[str | None] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TextMessage(Base):
    """An SMS or WhatsApp message of a conversation (its text is the message's body): Twilio's id,
    and for the agents' messages how far delivery has come. `status` only moves forward."""

    __tablename__ = "text_messages"

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "direction"))
    sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    client_id: Mapped[str | None] = mapped_column(String(64), unique=True)  # the agent's page's id: sent once
    template: Mapped[str | None] = mapped_column(String(64))  # a WhatsApp template's content SID
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class TextEarlyStatus(Base):
    """A delivery status that came before the console stored the message's id (Twilio answers the
    send and calls back at about the same time): applied when the id is stored."""

    __tablename__ = "text_early_statuses"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)


class TextOptOut(Base):
    """A number that sent STOP (or the like): it gets no text messages until it sends START."""

    __tablename__ = "text_opt_outs"

    address: Mapped[str] = mapped_column(String(80), primary_key=True)  # E.164, or whatsapp:+E.164
    keyword: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
