"""What changed: the facts services report after a commit, for the web layer to render and push.

Each change is a small frozen dataclass built from what the service already holds in its
transaction. Helpers deep in a transaction (`offer`, `move`, `set_presence`) record them on the
session with `emit`; `Context.transaction` hands them to the notify port after the commit.

Every change carries a version taken where the change was ordered: the id of the newest
conversation event of its conversation (written under the conversation's row lock), the id of
the agent's status period (under the agent's row lock), or the customer's revision (under the
customer's row lock). A screen never replaces what it shows with something of an older version,
so frames published by several nodes may arrive in any order.

Ids of events and periods exist only once they are flushed, so a change is recorded as a
function that builds it, called after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from console.models import (
    AgentStatus,
    Channel,
    Conversation,
    ConversationEvent,
    Direction,
    Handoff,
    State,
)


@dataclass(frozen=True)
class ConversationInfo:
    """What the small fragments of a conversation show, copied from its row."""

    id: int
    channel: Channel
    direction: Direction
    state: State
    from_address: str
    to_address: str
    created_at: datetime
    answered_at: datetime | None
    customer_id: int | None
    queue_id: int | None
    parent_id: int | None
    transferred_at: datetime | None
    wrap_up_deadline: datetime | None
    chat_id: int | None = None
    mail_thread_id: int | None = None

    @property
    def address(self) -> str:
        """The customer's side: the caller, or whom an agent calls."""
        return self.to_address if self.direction is Direction.OUT else self.from_address

    @classmethod
    def of(cls, c: Conversation) -> ConversationInfo:
        return cls(c.id, c.channel, c.direction, c.state, c.from_address, c.to_address, c.created_at,
                   c.answered_at, c.customer_id, c.queue_id, c.parent_id, c.transferred_at, c.wrap_up_deadline,
                   c.chat_id, c.mail_thread_id)


@dataclass(frozen=True)
class Offered:
    """The conversation rings for the agent (a phone system's ring, or the console's offer)."""

    conversation: ConversationInfo
    agent_id: int
    deadline: datetime | None
    version: int


@dataclass(frozen=True)
class Withdrawn:
    """The conversation no longer rings for the agent: taken elsewhere, declined, rang out, ended."""

    conversation_id: int
    agent_id: int
    version: int


@dataclass(frozen=True)
class Answered:
    """The agent now handles the conversation; `rang` when it was ringing for them, so their pop is up."""

    conversation: ConversationInfo
    agent_id: int
    version: int
    rang: bool = False


@dataclass(frozen=True)
class Ended:
    """The agent's part of the conversation is over (hung up, closed, handed off)."""

    conversation_id: int
    agent_id: int
    version: int


@dataclass(frozen=True)
class WrapUpDue:
    """After-contact work starts: the agent picks a disposition before the deadline."""

    conversation: ConversationInfo
    agent_id: int
    version: int


@dataclass(frozen=True)
class WrappedUp:
    """The wrap-up is done (or timed out): the conversation is closed for the agent."""

    conversation_id: int
    agent_id: int
    version: int


@dataclass(frozen=True)
class StatusChanged:
    """The agent's presence, or what they chose for after their contact (`after`, `after_version`)."""

    agent_id: int
    status: AgentStatus
    reason: str | None
    since: datetime
    version: int
    after: AgentStatus | None = None
    after_reason: str | None = None
    after_version: int = 0


@dataclass(frozen=True)
class NoteAdded:
    """A note on a conversation: shown in its pop and in colleagues' handoff requests for it."""

    note_id: int
    conversation_id: int
    agent_ids: frozenset[int]


@dataclass(frozen=True)
class HandoffAsked:
    """A warm handoff waits for the colleague; the first agent sees that it waits."""

    handoff_id: int
    conversation: ConversationInfo
    from_agent_id: int
    to_agent_id: int | None
    version: int


@dataclass(frozen=True)
class HandoffAnswered:
    """A warm handoff ended without taking place: declined, not answered, or cancelled.

    (An accepted handoff shows as the first agent's Ended and the colleague's Answered.)
    """

    handoff_id: int
    conversation: ConversationInfo
    from_agent_id: int | None
    to_agent_id: int | None
    accepted: bool
    version: int


@dataclass(frozen=True)
class CustomerChanged:
    """Something shown of the customer changed; `agent_ids` are those who have them on screen."""

    customer_id: int
    revision: int
    agent_ids: frozenset[int]


@dataclass(frozen=True)
class ChatMessage:
    """A message in a chat, from the visitor or an agent: the visitor's widget and the agents who
    have the chat on screen see it. `version` is the message's id: a transcript shows up to it."""

    chat_id: int
    message_id: int
    conversation_id: int
    agent_ids: frozenset[int]
    # What the visitor's widget is told: the message ("message"), that the agent read theirs up
    # to `message_id` ("read"), or nothing (the visitor's own read marks, shown to the agents only).
    visitor: str = "message"


@dataclass(frozen=True)
class TextMessage:
    """A line of a text conversation (SMS, WhatsApp) came or changed (its delivery): the agents who
    show the conversation see its messages again."""

    conversation_id: int
    message_id: int
    agent_ids: frozenset[int]


@dataclass(frozen=True)
class MailMessage:
    """A mail came into a conversation that is going on: the agents who show it see the thread's
    transcript again. `version` is the message's id."""

    thread_id: int
    message_id: int
    conversation_id: int
    agent_ids: frozenset[int]


@dataclass(frozen=True)
class PageOpened:
    """The agent opened a customer's page, or closed it (customer_id None)."""

    agent_id: int
    customer_id: int | None


@dataclass(frozen=True)
class Told:
    """Someone else acted on the agent's behalf (a supervisor set their status, moved their offer):
    the agent reads it on their page. `text` is a message template; `values` fill it, as typed
    (a name, a whispered line) or, those named in `codes`, translated (a status)."""

    agent_id: int
    text: str
    values: tuple[tuple[str, str], ...] = ()
    codes: tuple[str, ...] = ()  # the names of values that are stored codes, shown translated


Change = (Offered | Withdrawn | Answered | Ended | WrapUpDue | WrappedUp | StatusChanged | NoteAdded | HandoffAsked
          | HandoffAnswered | CustomerChanged | PageOpened | ChatMessage | MailMessage | TextMessage | Told)

_PENDING = "console.changes"
_EVENTS = "console.events"


def emit(session: AsyncSession, make: Callable[[], Change]) -> None:
    """Record a change of this transaction; `make` runs after the commit, when ids are known."""
    session.info.setdefault(_PENDING, []).append(make)


def pending(session: AsyncSession) -> list[Callable[[], Change]]:
    return list(session.info.get(_PENDING, ()))


def built(makers: list[Callable[[], Change]]) -> list[Change]:
    return [make() for make in makers]


def event_written(session: AsyncSession, event: ConversationEvent) -> None:
    session.info.setdefault(_EVENTS, {})[event.conversation_id] = event


def latest_event(session: AsyncSession, conversation: Conversation, detail: str) -> ConversationEvent:
    """The newest event this transaction wrote for the conversation; one is written when none was,
    so every change of a conversation has a version of its own."""
    events: dict[int, ConversationEvent] = session.info.setdefault(_EVENTS, {})
    event = events.get(conversation.id)
    if event is None:
        event = ConversationEvent(conversation_id=conversation.id, from_state=conversation.state,
                                  to_state=conversation.state, detail=detail[:200])
        session.add(event)
        events[conversation.id] = event
    return event


def conversation_version(session: AsyncSession, conversation: Conversation, detail: str) -> Callable[[], int]:
    event = latest_event(session, conversation, detail)
    return lambda: event.id


def withdrawn(session: AsyncSession, conversation: Conversation, agent_id: int, detail: str) -> None:
    """The conversation stops ringing for the agent."""
    version = conversation_version(session, conversation, detail)
    conversation_id = conversation.id
    emit(session, lambda: Withdrawn(conversation_id, agent_id, version()))


def offered(session: AsyncSession, conversation: Conversation, agent_id: int, deadline: datetime | None) -> None:
    version = conversation_version(session, conversation, "offered")
    info = ConversationInfo.of(conversation)
    emit(session, lambda: Offered(info, agent_id, deadline, version()))


def ended(session: AsyncSession, conversation: Conversation, agent_id: int, detail: str) -> None:
    """The agent's part is over; with `wrap_up` they now wrap it up."""
    version = conversation_version(session, conversation, detail)
    conversation_id = conversation.id
    emit(session, lambda: Ended(conversation_id, agent_id, version()))


def wrap_up_due(session: AsyncSession, conversation: Conversation, agent_id: int) -> None:
    version = conversation_version(session, conversation, "wrap-up")
    info = ConversationInfo.of(conversation)
    emit(session, lambda: WrapUpDue(info, agent_id, version()))


def wrapped_up(session: AsyncSession, conversation: Conversation, agent_id: int) -> None:
    version = conversation_version(session, conversation, "closed")
    conversation_id = conversation.id
    emit(session, lambda: WrappedUp(conversation_id, agent_id, version()))


def handoff_asked(session: AsyncSession, handoff: Handoff, conversation: Conversation) -> None:
    version = conversation_version(session, conversation, "handoff asked")
    info = ConversationInfo.of(conversation)
    handoff_id, from_id, to_id = handoff.id, handoff.from_agent_id or 0, handoff.to_agent_id
    emit(session, lambda: HandoffAsked(handoff_id, info, from_id, to_id, version()))


def handoff_answered(session: AsyncSession, handoff: Handoff, conversation: Conversation, *, accepted: bool) -> None:
    """A warm handoff stops waiting: the colleague's request goes, the first agent sees the outcome."""
    version = conversation_version(session, conversation, "handoff ended")
    info = ConversationInfo.of(conversation)
    handoff_id, from_id, to_id = handoff.id, handoff.from_agent_id, handoff.to_agent_id
    emit(session, lambda: HandoffAnswered(handoff_id, info, from_id, to_id, accepted, version()))
