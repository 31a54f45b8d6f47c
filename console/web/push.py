"""The notify port: what changed becomes the few fragments it touches, pushed to whoever sees them.

Services hand over their changes right after their commit and answer their caller; a single
worker per node renders and publishes them in the order they were committed on this node. It
reads what the fragments need in one short read transaction per batch (batches grow under load),
renders each fragment once per recipient language, and publishes one frame per recipient.

Every fragment carries the version of what it shows (changes.py), so frames from several nodes
may arrive in any order: the page keeps the newest. The whole live view is rendered only for a
snapshot: a fresh socket, a cursor that is unknown or too old, or a stream whose publish failed
(it gets a snapshot as soon as the bus takes it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from console import changes, chat, customers, handoffs, mail, profile, texts
from console.changes import Change, ConversationInfo
from console.conversations import parts
from console.db import Database
from console.errors import NotFound
from console.models import Agent, Channel, Conversation, Handoff, HandoffState, Note, Queue, Role, State
from console.ports import recipients
from console.screenpop import (
    AgentView,
    Current,
    IncomingHandoff,
    Pop,
    Presence,
    agent_view,
    build_pop,
    chat_transcript,
    transcript,
    wrap_up_of,
)
from console.web import attachments
from console.web.render import Renderer, agent_stream, removal
from console.wrapup import dispositions
from realtime import Bus, BusUnavailable

log = logging.getLogger("console.web.push")

Render = Callable[[str], str]  # a fragment in the given language
HEAL_SECONDS = 1.0
UNSENT_VISITOR_FRAMES = 10_000  # a longer outage: widgets catch up from the database when they reconnect
CLOSE_GRACE = 5.0  # seconds a stopping node keeps publishing what was committed before
AGENT_CACHE_SECONDS = 60.0
CODES_CACHE_SECONDS = 30.0  # a supervisor's new disposition codes show in wrap-up forms after this long


@dataclass
class Outbox:
    """The fragments of one batch per recipient, rendered once per language."""

    fragments: dict[int, list[Render]] = field(default_factory=dict)
    visitors: list[tuple[str, str]] = field(default_factory=list)  # (chat stream, JSON) for visitors' widgets

    def add(self, agent_ids: int | Sequence[int] | frozenset[int], render: Render) -> None:
        memo: dict[str, str] = {}

        def once(language: str) -> str:
            if language not in memo:
                memo[language] = render(language)
            return memo[language]

        for agent_id in [agent_ids] if isinstance(agent_ids, int) else agent_ids:
            self.fragments.setdefault(agent_id, []).append(once)

    def frames(self, languages: dict[int, str]) -> list[tuple[int, str]]:
        return [(agent_id, "".join(render(languages.get(agent_id, "en")) for render in renders))
                for agent_id, renders in self.fragments.items()]


@dataclass(frozen=True)
class Card:
    language: str
    supervisor: bool
    read_at: float


class Pusher:
    """Implements console.ports.Notifier for the web: renders fragments of changes and publishes them."""

    def __init__(self, db: Database, bus: Bus, renderer: Renderer, region: str,
                 away_reasons: tuple[str, ...] = (), observe: Callable[[float], None] | None = None, *,
                 file_secret: str) -> None:
        self.db = db
        self.file_secret = file_secret  # signs the links to files a visitor's widget gets
        self.bus = bus
        self.renderer = renderer
        self.region = region
        self.away_reasons = away_reasons
        self.observe = observe  # told how long each change took from its commit to its frames published
        self._queue: asyncio.Queue[tuple[float, list[Change]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._pending = 0  # changes handed over and not yet pushed
        self._unhealed: set[int] = set()
        # Visitors' frames whose publish failed, sent again in order once the bus is back (a widget
        # places messages by id and shows each once, so a late one lands where it belongs).
        self._unsent: deque[tuple[str, str]] = deque(maxlen=UNSENT_VISITOR_FRAMES)
        self._cards: dict[int, Card] = {}
        self._forgotten = 0  # how many times cards were forgotten (reads older than the last are not kept)
        self._queue_names: dict[int, tuple[float, str]] = {}
        self._codes: dict[int | None, tuple[float, list[str]]] = {}

    # The port -------------------------------------------------------------------------------

    def publish(self, changed: Sequence[Change]) -> None:
        if not changed:
            return
        self._queue.put_nowait((time.perf_counter(), list(changed)))
        self._pending += len(changed)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="push worker")

    def forget(self, agent_id: int | None = None) -> None:
        """The agent's language or role changed (None: anyone's may have): read them again for the next push."""
        self._forgotten += 1
        if agent_id is None:
            self._cards.clear()
        else:
            self._cards.pop(agent_id, None)

    @property
    def backlog(self) -> int:
        """Changes committed and not yet pushed: those waiting and those being rendered now (a
        burst of work queues here)."""
        return self._pending

    async def drain(self) -> None:
        """Wait until every change handed over so far is published (tests, shutdown)."""
        await self._queue.join()

    async def close(self) -> None:
        """Publish what was committed before the shutdown (a node going away mid-deploy must not
        swallow a pop), then stop."""
        if self._worker is not None and not self._worker.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), CLOSE_GRACE)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    # Snapshots --------------------------------------------------------------------------------

    async def view(self, agent_id: int) -> AgentView:
        """What the agent's page shows now, read in one transaction."""
        async with self.db.reading() as session:
            return await agent_view(session, agent_id, self.region, self.away_reasons)

    async def live_html(self, agent_id: int) -> str:
        return self.renderer.live(await self.view(agent_id))

    # The worker -------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(),
                                               HEAL_SECONDS if self._unhealed or self._unsent else None)
            except TimeoutError:
                await self._heal()
                continue
            batch = [first]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._push([change for _, changed in batch for change in changed])
                if self.observe is not None:
                    done = time.perf_counter()
                    for committed, _ in batch:
                        self.observe(done - committed)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The changes are committed; whoever could not be told gets a snapshot instead.
                log.exception("could not render %d changes; the agents concerned get a snapshot", len(batch))
                self._unhealed |= {a for _, changed in batch for change in changed for a in recipients(change)}
            finally:
                for _, changed in batch:
                    self._pending -= len(changed)
                    self._queue.task_done()
            if self._unhealed or self._unsent:
                await self._heal()

    async def _push(self, batch: list[Change]) -> None:
        out = Outbox()
        async with self.db.reading() as session:
            memo: dict[Any, Any] = {}
            for change in batch:
                await HANDLERS[type(change)](self, session, change, out, memo)
            cards = await self._cards_of(session, set(out.fragments))
        languages = {agent_id: card.language for agent_id, card in cards.items()}
        for agent_id, html in out.frames(languages):
            await self._send(agent_id, html)
        for stream, payload in out.visitors:
            await self._send_visitor(stream, payload)

    async def _send_visitor(self, stream: str, payload: str) -> None:
        if self._unsent:  # after what still waits, so a stream's frames keep their order
            self._unsent.append((stream, payload))
            return
        try:
            await self.bus.publish(stream, payload)
        except Exception as exc:
            log.warning("could not publish to %s (%s); sent again once the bus is back", stream, exc)
            self._unsent.append((stream, payload))

    async def _send(self, agent_id: int, html: str) -> None:
        if agent_id in self._unhealed:
            return  # a snapshot follows, which holds this change too
        try:
            await self.bus.publish(agent_stream(agent_id), html)
        except Exception as exc:
            log.warning("could not publish to agent %s (%s); a snapshot follows once the bus is back",
                        agent_id, exc)
            self._unhealed.add(agent_id)

    async def _heal(self) -> None:
        while self._unsent:
            stream, payload = self._unsent[0]
            try:
                await self.bus.publish(stream, payload)
            except Exception as exc:
                log.info("%d visitors' frames still wait for the bus (%s)", len(self._unsent), exc)
                break
            self._unsent.popleft()
        for agent_id in sorted(self._unhealed):
            try:
                html = await self.live_html(agent_id)
                await self.bus.publish(agent_stream(agent_id), html)
            except NotFound:
                pass
            except BusUnavailable as exc:
                log.info("agent %s still waits for a snapshot (%s)", agent_id, exc)
                return  # the bus is still away: the others wait too
            except Exception:
                # Not the bus: this agent's view cannot be built now; the page heals on its next
                # reconnect. The others must not wait for it.
                log.exception("could not build the snapshot of agent %s", agent_id)
            self._unhealed.discard(agent_id)

    # What fragments need ------------------------------------------------------------------------

    async def _cards_of(self, session: AsyncSession, agent_ids: set[int]) -> dict[int, Card]:
        now = time.monotonic()
        stale = [a for a in agent_ids if a not in self._cards or now - self._cards[a].read_at > AGENT_CACHE_SECONDS]
        cards = {a: self._cards[a] for a in agent_ids if a in self._cards}
        if stale:
            generation = self._forgotten
            for agent_id, language, role in await session.execute(
                    select(Agent.id, Agent.language, Agent.role).where(Agent.id.in_(stale))):
                cards[agent_id] = Card(language, role in (Role.SUPERVISOR, Role.ADMIN), now)
                # A forget while this read was on its way may be about what it read: used for
                # this push, but not kept.
                if generation == self._forgotten:
                    self._cards[agent_id] = cards[agent_id]
        return cards

    async def _queue_name(self, session: AsyncSession, queue_id: int | None) -> str | None:
        if queue_id is None:
            return None
        now = time.monotonic()
        cached = self._queue_names.get(queue_id)
        if cached is None or now - cached[0] > CODES_CACHE_SECONDS:  # a renamed queue shows soon
            name = await session.scalar(select(Queue.name).where(Queue.id == queue_id))
            if name is None:
                return None
            cached = self._queue_names[queue_id] = (now, name)
        return cached[1]

    async def _pop(self, session: AsyncSession, memo: dict[Any, Any], info: ConversationInfo) -> Pop:
        """The pop's picture, read once per conversation in a batch (a ring group shares it)."""
        key = ("pop", info.id, info.customer_id)
        if key not in memo:
            memo[key] = await build_pop(session, info, False, self.region,
                                        queue_name=await self._queue_name(session, info.queue_id))
        pop: Pop = memo[key]
        return replace(pop, conversation=info)

    async def _dispositions(self, session: AsyncSession, queue_id: int | None) -> list[str]:
        cached = self._codes.get(queue_id)
        now = time.monotonic()
        if cached is None or now - cached[0] > CODES_CACHE_SECONDS:
            cached = (now, await dispositions(session, queue_id))
            self._codes[queue_id] = cached
        return cached[1]

    def _render(self, template: str, **values: Any) -> Render:
        return lambda language: self.renderer.render(template, language, **values)

    # One handler per change -----------------------------------------------------------------------

    async def offered(self, session: AsyncSession, change: changes.Offered, out: Outbox, memo: dict[Any, Any]) -> None:
        pop = replace(await self._pop(session, memo, change.conversation), offered=True, deadline=change.deadline,
                      version=change.version)
        out.add(change.agent_id, self._render("partials/pop.html", pop=pop))

    async def withdrawn(self, session: AsyncSession, change: changes.Withdrawn, out: Outbox,
                        memo: dict[Any, Any]) -> None:
        out.add(change.agent_id, lambda _: removal(f"pop-{change.conversation_id}", change.version))

    async def answered(self, session: AsyncSession, change: changes.Answered, out: Outbox,
                       memo: dict[Any, Any]) -> None:
        info = change.conversation
        if change.rang:
            # The pop is on the agent's screen already: only its state line changes.
            pop = Pop(info, False, info.address, queue_name=await self._queue_name(session, info.queue_id),
                      version=change.version)
            out.add(change.agent_id, self._render("partials/pop_state.html", pop=pop))
            composer = COMPOSERS.get(info.channel)
            if composer is not None:  # the answer box opens
                out.add(change.agent_id, self._render(composer, pop=pop, c=info, prefix=f"pop-{info.id}"))
        else:
            pop = replace(await self._pop(session, memo, info), version=change.version)
            out.add(change.agent_id, self._render("partials/pop.html", pop=pop))
        current = Current(info, None, change.version)
        out.add(change.agent_id, self._render("partials/current.html", cur=current, me=change.agent_id))

    async def ended(self, session: AsyncSession, change: changes.Ended, out: Outbox, memo: dict[Any, Any]) -> None:
        cid, version = change.conversation_id, change.version
        out.add(change.agent_id, lambda _: removal(f"pop-{cid}", version) + removal(f"current-{cid}", version))

    async def wrap_up_due(self, session: AsyncSession, change: changes.WrapUpDue, out: Outbox,
                          memo: dict[Any, Any]) -> None:
        codes = await self._dispositions(session, change.conversation.queue_id)
        wrap = await wrap_up_of(session, change.conversation, change.version, codes)
        out.add(change.agent_id, self._render("partials/wrap_up.html", w=wrap))

    async def wrapped_up(self, session: AsyncSession, change: changes.WrappedUp, out: Outbox,
                         memo: dict[Any, Any]) -> None:
        out.add(change.agent_id, lambda _: removal(f"wrap-up-{change.conversation_id}", change.version))

    async def status_changed(self, session: AsyncSession, change: changes.StatusChanged, out: Outbox,
                             memo: dict[Any, Any]) -> None:
        presence = Presence(change.agent_id, change.status, change.reason, change.since, change.version,
                            change.after, change.after_reason, change.after_version)
        out.add(change.agent_id, self._render("partials/status.html", presence=presence,
                                              away_reasons=self.away_reasons))
        out.add(change.agent_id, self._render("partials/pops_empty.html", presence=presence))

    async def told(self, session: AsyncSession, change: changes.Told, out: Outbox, memo: dict[Any, Any]) -> None:
        out.add(change.agent_id, self._render("partials/told.html", text=change.text, values=dict(change.values),
                                              codes=change.codes))

    async def note_added(self, session: AsyncSession, change: changes.NoteAdded, out: Outbox,
                         memo: dict[Any, Any]) -> None:
        note = await session.scalar(select(Note).where(Note.id == change.note_id).options(selectinload(Note.agent)))
        if note is None:
            return
        for prefix in await _shown_as(session, change.conversation_id):
            out.add(change.agent_ids, self._render("partials/conversation_note.html", n=note, prefix=prefix))

    async def handoff_asked(self, session: AsyncSession, change: changes.HandoffAsked, out: Outbox,
                            memo: dict[Any, Any]) -> None:
        handoff = await session.scalar(select(Handoff).where(Handoff.id == change.handoff_id).options(
            selectinload(Handoff.from_agent), selectinload(Handoff.to_agent)))
        if handoff is None:
            return
        if change.to_agent_id is not None:
            pop = replace(await self._pop(session, memo, change.conversation), version=change.version)
            out.add(change.to_agent_id, self._render("partials/handoff_offer.html",
                                                     incoming=IncomingHandoff(handoff, pop)))
        current = Current(change.conversation, handoff, change.version)
        out.add(change.from_agent_id, self._render("partials/current.html", cur=current, me=change.from_agent_id))

    async def handoff_answered(self, session: AsyncSession, change: changes.HandoffAnswered, out: Outbox,
                               memo: dict[Any, Any]) -> None:
        if change.to_agent_id is not None:
            out.add(change.to_agent_id, lambda _: removal(f"handoff-{change.handoff_id}", change.version))
        if change.from_agent_id is not None and change.conversation.state is State.ACTIVE:
            current = Current(change.conversation, await handoffs.latest(session, change.conversation.id),
                              change.version)
            out.add(change.from_agent_id, self._render("partials/current.html", cur=current,
                                                       me=change.from_agent_id))

    async def customer_changed(self, session: AsyncSession, change: changes.CustomerChanged, out: Outbox,
                               memo: dict[Any, Any]) -> None:
        """The customer's part of every pop and handoff request showing them, and their open pages."""
        showing = list(await session.scalars(select(Conversation).where(
            Conversation.customer_id == change.customer_id,
            Conversation.state.in_((State.OFFERED, State.ACTIVE)))))
        for conversation in showing:
            info = ConversationInfo.of(conversation)
            earlier = await parts(session, info)
            picture = await customers.picture(session, change.customer_id, exclude=earlier)
            pop = Pop(info, False, info.address, picture=picture, revision=change.revision)
            for prefix in await _shown_as(session, info.id):
                out.add(change.agent_ids, self._render("partials/pop_customer.html", pop=pop, c=info, prefix=prefix))
        viewing = set(await session.scalars(select(Agent.id).where(Agent.viewing_customer_id == change.customer_id)))
        for agent_id in viewing & change.agent_ids:
            await self._customer_page(session, agent_id, change.customer_id, out)

    async def chat_message(self, session: AsyncSession, change: changes.ChatMessage, out: Outbox,
                           memo: dict[Any, Any]) -> None:
        """A chat's transcript for the agents who show it (once per batch: several messages of one
        chat make one transcript), and the message for the visitor's widget."""
        key, told = ("transcript", change.chat_id), ("told", change.chat_id)
        if key not in memo:
            memo[key], memo[told] = await chat_transcript(session, change.chat_id), set()
        untold = change.agent_ids - memo[told]  # the transcript read covers every message of the batch
        if untold:
            memo[told] |= untold
            for prefix in await _shown_as(session, change.conversation_id):
                out.add(untold, self._render("partials/chat_transcript.html", messages=memo[key], prefix=prefix))
        if change.visitor == "read":
            out.visitors.append((chat.chat_stream(change.chat_id), json.dumps({"type": "read",
                                                                              "upto": change.message_id})))
            return
        message = next((m for m in memo[key] if m.id == change.message_id), None)
        if message is not None and change.visitor == "message":
            line = chat.Line.of(message, message.agent.name if message.agent else None)
            out.visitors.append((chat.chat_stream(change.chat_id), json.dumps({
                "type": "message", "message": attachments.line_for_visitor(line, self.file_secret)})))

    async def mail_message(self, session: AsyncSession, change: changes.MailMessage, out: Outbox,
                           memo: dict[Any, Any]) -> None:
        """A mail came into a conversation that is going on: its thread for the agents who show it
        (once per batch, like a chat's transcript)."""
        key, told = ("mail", change.thread_id), ("mail-told", change.thread_id)
        if key not in memo:
            memo[key], memo[told] = await mail.transcript(session, change.thread_id), set()
        untold = change.agent_ids - memo[told]
        if untold:
            memo[told] |= untold
            for prefix in await _shown_as(session, change.conversation_id):
                out.add(untold, self._render("partials/mail_transcript.html", messages=memo[key], prefix=prefix))

    async def text_message(self, session: AsyncSession, change: changes.TextMessage, out: Outbox,
                           memo: dict[Any, Any]) -> None:
        """A text conversation's messages (and what may be sent now) for the agents who show it, once
        per batch like a chat's transcript."""
        key, told = ("texts", change.conversation_id), ("texts-told", change.conversation_id)
        if key not in memo:
            conversation = await session.get(Conversation, change.conversation_id)
            if conversation is None:
                return
            info = ConversationInfo.of(conversation)
            messages = await transcript(session, info, await parts(session, info))
            memo[key], memo[told] = (info, messages, await texts.composer(session, info, self.region)), set()
        info, messages, texting = memo[key]
        untold = change.agent_ids - memo[told]
        if untold:
            memo[told] |= untold
            for prefix in await _shown_as(session, info.id):
                out.add(untold, self._render("partials/text_transcript.html", messages=messages, texting=texting,
                                             prefix=prefix, c=info))

    async def page_opened(self, session: AsyncSession, change: changes.PageOpened, out: Outbox,
                          memo: dict[Any, Any]) -> None:
        await self._customer_page(session, change.agent_id, change.customer_id, out)

    async def _customer_page(self, session: AsyncSession, agent_id: int, customer_id: int | None,
                             out: Outbox) -> None:
        page = None
        if customer_id is not None:
            with contextlib.suppress(NotFound):
                page = await profile.page(session, agent_id, customer_id, audited=False)
        card = (await self._cards_of(session, {agent_id})).get(agent_id)
        out.add(agent_id, self._render("partials/customer_panel.html", page=page, me=agent_id,
                                       supervisor=bool(card and card.supervisor)))


# The answer box of each channel that has one, opened when the agent takes the conversation.
COMPOSERS = {Channel.CHAT: "partials/chat_composer.html", Channel.MAIL: "partials/mail_composer.html",
             Channel.SMS: "partials/text_composer.html"}


async def _shown_as(session: AsyncSession, conversation_id: int) -> list[str]:
    """The id prefixes a conversation's parts have on screens: its pop, and a colleague's handoff request."""
    pending = await session.scalars(select(Handoff.id).where(Handoff.conversation_id == conversation_id,
                                                              Handoff.state == HandoffState.PENDING))
    return [f"pop-{conversation_id}", *(f"handoff-{h}" for h in pending)]


Handler = Callable[[Pusher, AsyncSession, Any, Outbox, dict[Any, Any]], Awaitable[None]]

HANDLERS: dict[type, Handler] = {
    changes.Offered: Pusher.offered,
    changes.Withdrawn: Pusher.withdrawn,
    changes.Answered: Pusher.answered,
    changes.Ended: Pusher.ended,
    changes.WrapUpDue: Pusher.wrap_up_due,
    changes.WrappedUp: Pusher.wrapped_up,
    changes.StatusChanged: Pusher.status_changed,
    changes.NoteAdded: Pusher.note_added,
    changes.HandoffAsked: Pusher.handoff_asked,
    changes.HandoffAnswered: Pusher.handoff_answered,
    changes.CustomerChanged: Pusher.customer_changed,
    changes.PageOpened: Pusher.page_opened,
    changes.ChatMessage: Pusher.chat_message,
    changes.MailMessage: Pusher.mail_message,
    changes.TextMessage: Pusher.text_message,
    changes.Told: Pusher.told,
}
