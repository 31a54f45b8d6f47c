"""Asterisk: the console follows the calls that Asterisk's queues and dialplan route.

    CONSOLE_ASTERISK_URL=ami://console:SECRET@pbx.example.nl:5038      (integrations.telephony.ami)

Asterisk routes its calls itself (DESIGN.md, "Who routes a call"): its queues pick whom they ring.
The console follows what the manager interface reports, and never offers such a call to an agent
of its own choice. One call is one conversation of channel `call` with the external id
"asterisk:" + Linkedid, so the legs of a call (the caller, the agents' phones, Local channels)
are one conversation. What is read, and what it does:

    QueueCallerJoin       the caller waits in the queue (the console queue of the same name)
    AgentCalled           a member's phone rings: that agent gets the offer, with the pop
    AgentRingNoAnswer     ... it rang out: the offer ends, counted as missed
    AgentDump             ... the member hung up during the announcement: the offer ends
    AgentConnect          answered: active for that agent, withdrawn from the others
    AgentComplete         the agent's part is over: wrap-up
    QueueCallerAbandon    the caller hung up while waiting or ringing: abandoned
    DialBegin, DialEnd    a call to an agent's extension that is not a queue's (the dialplan's
                          Dial): rings, then answered (ANSWER) or the ring ends (NOANSWER counts
                          as missed; BUSY, CANCEL ... do not)
    BridgeEnter           the caller bridged with an agent's phone (a pickup, a transfer): that
                          agent has the call now
    Hangup                the caller's channel (Uniqueid == Linkedid) hung up: wrap-up, or
                          abandoned when nobody had answered

An agent is the one whose extension is in the member's interface or the phone's channel
(PJSIP/201, SIP/201, IAX2/201, Local/201@from-queue/n), else the one named like the queue
member (MemberName; console.auth.find_agent). Events of calls or agents the console does not
know are logged in one line and left alone, and so are late ones (an answer after the hangup).

After every connect (and every `resync_seconds`) the connector compares CoreShowChannels and
QueueStatus with the console's open calls: a call that ended meanwhile is hung up, one that
appeared meanwhile is stored waiting, ringing or answered as Asterisk has it, and rings that
ended unseen end. So a lost event or a connection that was down leaves no call ringing forever.

Only one node follows Asterisk: the holder of the lease "asterisk" (console.leases), renewed every
third of LEASE_SECONDS; the others stand by and take over when it lapses. The connector never
ends on its own: a failure is logged, shown in `state` (/readyz, /metrics) and retried with
exponential backoff and jitter (a refused login waits the longest backoff: retrying a wrong secret
fast only fills Asterisk's security log).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from console import conversations, leases
from console.auth import MAX_EXTENSION, find_agent
from console.errors import Conflict, ConsoleError, InvalidInput, NotFound, Unavailable
from console.logs import UNSAFE, safe
from console.models import Channel, State
from console.ports import Context
from integrations.connectors import ConnectorState
from integrations.telephony import ami

log = logging.getLogger("integrations.telephony.asterisk")

PREFIX = "asterisk:"  # of the external ids of Asterisk's calls
LEASE = "asterisk"
LEASE_SECONDS = 15.0
MEMORY = 10_000  # calls, bridges and agent look-ups remembered between events
AGENT_CACHE_SECONDS = 10.0
# Channel technologies whose resource is an extension (a phone), as in PJSIP/201-0000002a.
PHONES = frozenset({"PJSIP", "SIP", "IAX2", "SCCP", "LOCAL", "DAHDI", "UNISTIM", "MGCP", "SKINNY"})
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]+$")
UNKNOWN_NUMBERS = ("", "<unknown>", "unknown", "anonymous")
RINGING, UP = "5", "6"  # ChannelState of a phone being rung, and of a channel answered
STOPPED = ("BUSY", "CANCEL", "CONGESTION", "CHANUNAVAIL", "DONTCALL", "TORTURE", "INVALIDARGS")


def _resource(name: str) -> str | None:
    tech, slash, rest = name.strip().partition("/")
    if not slash or tech.upper() not in PHONES:
        return None
    return re.split(r"[@/;,&]", rest, maxsplit=1)[0]


def _fit(extension: str | None) -> str | None:
    if not extension or len(extension) > MAX_EXTENSION or UNSAFE.search(extension) or " " in extension:
        return None
    return extension


def interface_extension(interface: str) -> str | None:
    """The extension of a queue member's interface: PJSIP/201, SIP/201, Local/201@from-queue/n."""
    return _fit(_resource(interface))


def channel_extension(channel: str) -> str | None:
    """The extension of a channel's name: PJSIP/201-0000002a, IAX2/201-12345,
    Local/201@from-queue-00000003;1 (the counter Asterisk appends is dropped)."""
    resource = _resource(channel)
    if resource is None:
        return None
    if not channel.strip().upper().startswith("LOCAL/"):
        resource = _CHANNEL_SUFFIX.sub("", resource)
    return _fit(resource)


def _second_half(channel: str) -> bool:
    """The ;2 half of a Local channel: what it dials, the ;1 half's Dial reported already."""
    return channel.upper().startswith("LOCAL/") and channel.endswith(";2")


@dataclass(frozen=True)
class _Leg:
    channel: str
    uniqueid: str
    linkedid: str


class _Recent(OrderedDict[str, str]):
    """A bounded memory: the oldest entries go first once MEMORY are kept."""

    def remember(self, key: str, value: str = "") -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > MEMORY:
            self.popitem(last=False)


class _LeaseLost(Exception):
    """Another node holds (or may now take) the Asterisk connection."""


def _call_id(event: ami.Message) -> str | None:
    linked = event.get("Linkedid") or event.get("Uniqueid") or ""
    if not linked or len(linked) > 200 or UNSAFE.search(linked):
        return None
    return linked


def _number(event: ami.Message, prefix: str = "") -> str:
    number = event.get(f"{prefix}CallerIDNum", "").strip()
    return "anonymous" if number.lower() in UNKNOWN_NUMBERS else number


def _dialled(event: ami.Message, queue: str | None) -> str:
    exten = event.get("Exten", "").strip()
    return exten if exten and exten not in ("s", "h", "i", "t") else (queue or "")


def _member(event: ami.Message) -> tuple[str, ...]:
    """How a queue event names its member: the extension of the interface, then the name."""
    names = [interface_extension(event.get("Interface", "")) or "", event.get("MemberName", "").strip()]
    return tuple(dict.fromkeys(n for n in names if n and not UNSAFE.search(n)))


Handler = Callable[[ami.Message, str], Awaitable[None]]


class AsteriskConnector:
    """Follows one Asterisk into the console until cancelled (see the module's docstring)."""

    def __init__(self, ctx: Context, url: ami.AmiUrl, node: str, *, ping_seconds: float = 20.0,
                 silence_seconds: float = 60.0, backoff: tuple[float, float] = (1.0, 60.0), use_lease: bool = True,
                 lease_seconds: float = LEASE_SECONDS, resync_seconds: float | None = 300.0) -> None:
        self.ctx = ctx
        self.url = url
        self.node = node
        self.ping_seconds = ping_seconds
        self.silence_seconds = silence_seconds
        self.backoff = backoff
        self.use_lease = use_lease
        self.lease_seconds = lease_seconds
        self.resync_seconds = resync_seconds
        self.state = ConnectorState("asterisk")
        self.holding = False  # this node holds the lease
        self._attempt = 0  # failures in a row, for the backoff
        self._queued = _Recent()  # calls that went through a queue: the Agent* events report them
        self._answered = _Recent()  # call -> the extension it was answered at, as last told to the console
        self._bridges: OrderedDict[str, dict[str, _Leg]] = OrderedDict()
        self._agents: dict[str, tuple[bool, float]] = {}
        self._handlers: dict[str, Handler] = {
            "QueueCallerJoin": self._joined, "AgentCalled": self._agent_called,
            "AgentRingNoAnswer": self._agent_rang_out, "AgentDump": self._agent_dumped,
            "AgentConnect": self._agent_connected, "AgentComplete": self._agent_completed,
            "QueueCallerAbandon": self._abandoned, "DialBegin": self._dial_began, "DialEnd": self._dial_ended,
            "BridgeEnter": self._bridge_entered, "BridgeLeave": self._bridge_left,
            "BridgeDestroy": self._bridge_destroyed, "Hangup": self._hung_up,
        }

    @property
    def _timeout(self) -> float:
        """How long a connect, the login or one action may take."""
        return max(1.0, min(10.0, self.silence_seconds))

    # -- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow Asterisk until cancelled; never returns otherwise, never raises anything else."""
        log.info("Asterisk: following %s as node %s", self.url.display, safe(self.node))
        try:
            while True:
                try:
                    if self.use_lease and not await self._take_lease():
                        await asyncio.sleep(self.lease_seconds / 3)
                        continue
                    await self._session()
                except _LeaseLost as exc:
                    self.holding = False
                    self.state.state = "standby"
                    log.warning("Asterisk: node %s stops following: %s", safe(self.node), exc)
                except Exception as exc:  # whatever it was, the connector goes on
                    await asyncio.sleep(self._failed(exc))
        finally:
            self.state.state = "off"
            if self.holding:
                self.holding = False
                try:
                    async with asyncio.timeout(5):
                        await leases.release(self.ctx.db, LEASE, self.node)
                except Exception as exc:  # it lapses by itself
                    log.info("Asterisk: could not give up the lease (%s); it lapses in %.0f s", exc,
                             self.lease_seconds)

    async def _take_lease(self) -> bool:
        held = await leases.hold(self.ctx.db, LEASE, self.node, self.lease_seconds)
        if not held and self.state.state != "standby":
            log.info("Asterisk: node %s stands by: another node follows Asterisk", safe(self.node))
            self.state.state = "standby"
        self.holding = held
        return held

    async def _keep_lease(self) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                held = await leases.hold(self.ctx.db, LEASE, self.node, self.lease_seconds)
            except Exception as exc:
                if loop.time() - renewed >= self.lease_seconds * 2 / 3:
                    raise _LeaseLost(f"the lease could not be renewed ({exc}); another node may take over") from exc
                log.warning("Asterisk: the lease could not be renewed (%s); trying again", exc)
                continue
            if not held:
                raise _LeaseLost("another node holds the lease now")
            renewed = loop.time()

    async def _session(self) -> None:
        """One connection: log in, resync, then follow its events until it ends."""
        if self.state.state != "failing":
            self.state.state = "connecting"
        tasks: list[asyncio.Task[None]] = []
        connection: ami.Connection | None = None
        try:
            if self.use_lease:  # kept from the start: connecting and logging in may take a while
                tasks.append(asyncio.create_task(self._keep_lease()))
            connection = await ami.Connection.open(self.url, within=self._timeout)
            await connection.login(self.url.username, self.url.secret, within=self._timeout)
            tasks.append(asyncio.create_task(connection.keepalive(self.ping_seconds, self.silence_seconds)))
            tasks.append(asyncio.create_task(self._follow(connection)))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise ami.ConnectionLost("the connection ended")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if connection is not None:
                await connection.close()

    async def _follow(self, connection: ami.Connection) -> None:
        loop = asyncio.get_running_loop()
        await self.resync(connection)
        self.state.state = "connected"
        self._attempt = 0
        log.info("Asterisk: connected to %s (%s) and in step with it", self.url.display, safe(connection.banner))
        next_resync = loop.time() + self.resync_seconds if self.resync_seconds else None
        while True:
            if next_resync is None:
                event = await connection.event()
            else:
                try:
                    async with asyncio.timeout(max(0.0, next_resync - loop.time())):
                        event = await connection.event()
                except TimeoutError:
                    await self.resync(connection)
                    next_resync = loop.time() + (self.resync_seconds or 0)
                    continue
            await self.handle(event)

    # -- failures ----------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        secret = self.url.secret
        if len(secret) >= 4:
            text = text.replace(secret, "***")
        return safe(text)[:500]

    def _failed(self, exc: Exception) -> float:
        """Log and show the failure; return how long to wait before the next attempt."""
        first, longest = self.backoff
        if isinstance(exc, ami.LoginFailed):
            delay = longest
            message = f"Asterisk refused the login of {self.url.username!r}: {exc.message} (check the user, " \
                      "secret and permit= in manager.conf)"
        else:
            delay = min(longest, first * 2.0 ** min(self._attempt, 30))
            message = self._describe(exc)
        self._attempt += 1
        delay *= random.uniform(0.5, 1.0)
        message = self._scrub(message)
        self.state.failed(message)
        expected = isinstance(exc, OSError | TimeoutError | ami.AmiError | ConsoleError | SQLAlchemyError)
        log.warning("Asterisk %s: %s; trying again in %.1f s", self.url.display, message, delay,
                    exc_info=None if expected else exc)
        return delay

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, TimeoutError):
            return f"no answer within {self._timeout:g} s"
        if isinstance(exc, ssl.SSLError):
            return f"TLS failed: {exc} (check ?cafile= or the certificate of Asterisk's tlscertfile)"
        if isinstance(exc, ConnectionRefusedError):
            return f"could not connect to {self.url.host}:{self.url.port}: refused (is the manager interface " \
                   "enabled and bound to this address in manager.conf?)"
        if isinstance(exc, OSError):
            return f"could not connect to {self.url.host}:{self.url.port}: {exc}"
        if isinstance(exc, ami.AmiError):
            return str(exc)
        if isinstance(exc, ConsoleError):
            return exc.message
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    # -- events ------------------------------------------------------------------------------------

    async def handle(self, event: ami.Message) -> None:
        """Apply one event. A console error (an unknown call, a late event) is logged and left; a
        database failure is raised, so the connection starts over and resyncs once it is back."""
        name = event.get("Event", "")
        handler = self._handlers.get(name)
        if handler is None:
            return
        call = _call_id(event)
        if call is None:
            if name != "BridgeDestroy":  # the one event here that names no channel
                log.info("Asterisk %s without a usable Linkedid; ignored", safe(name))
                return
            call = ""
        self.state.seen()
        try:
            await handler(event, call)
        except (NotFound, Conflict) as exc:
            log.info("Asterisk %s of call %s ignored: %s", name, safe(call), safe(exc.message))
        except Unavailable:
            raise
        except ConsoleError as exc:
            log.warning("Asterisk %s of call %s not taken: %s", name, safe(call), safe(exc.message))
        except (SQLAlchemyError, OSError):
            raise
        except Exception:
            log.exception("Asterisk %s of call %s failed; going on with the next event", name, safe(call))

    async def _joined(self, event: ami.Message, call: str) -> None:
        queue = event.get("Queue") or None
        self._queued.remember(call)
        await conversations.arrive(self.ctx, channel=Channel.CALL, external_id=PREFIX + call,
                                   from_address=_number(event), to_address=_dialled(event, queue), queue=queue,
                                   routed_by_phone_system=True)

    async def _agent_called(self, event: ami.Message, call: str) -> None:
        member = _member(event)
        self._queued.remember(call)
        if not member:
            log.info("Asterisk rings a queue member of call %s without an extension or name; ignored", safe(call))
            return
        queue = event.get("Queue") or None
        await conversations.ring(self.ctx, Channel.CALL, PREFIX + call, [member], from_address=_number(event),
                                 to_address=_dialled(event, queue), queue=queue)

    async def _agent_rang_out(self, event: ami.Message, call: str) -> None:
        member = _member(event)
        if member:
            await conversations.stop_ringing(self.ctx, Channel.CALL, PREFIX + call, member, missed=True)

    async def _agent_dumped(self, event: ami.Message, call: str) -> None:
        member = _member(event)
        if member:
            await conversations.stop_ringing(self.ctx, Channel.CALL, PREFIX + call, member, missed=False)

    async def _agent_connected(self, event: ami.Message, call: str) -> None:
        self._queued.remember(call)
        member = _member(event)
        queue = event.get("Queue") or None
        await self._answer(event, call, member, queue, create=True)

    async def _answer(self, event: ami.Message, call: str, by: tuple[str, ...], queue: str | None, *,
                      create: bool) -> None:
        """Answered by the agent `by` names; stored first when the console missed the call."""
        try:
            await conversations.answer(self.ctx, Channel.CALL, PREFIX + call, list(by))
        except NotFound:
            if not create:
                raise
            await conversations.arrive(self.ctx, channel=Channel.CALL, external_id=PREFIX + call,
                                       from_address=_number(event), to_address=_dialled(event, queue), queue=queue,
                                       routed_by_phone_system=True)
            await conversations.answer(self.ctx, Channel.CALL, PREFIX + call, list(by))
        if by:
            self._answered.remember(call, by[0])

    async def _agent_completed(self, event: ami.Message, call: str) -> None:
        if event.get("Reason") == "transfer":
            # The agent passed the caller on: the call goes on with whoever takes it (BridgeEnter),
            # and ends with the caller's Hangup.
            self._queued.pop(call, None)
            return
        await conversations.hang_up(self.ctx, Channel.CALL, PREFIX + call, event.get("Reason") or "completed")

    async def _abandoned(self, event: ami.Message, call: str) -> None:
        await conversations.hang_up(self.ctx, Channel.CALL, PREFIX + call, "abandoned")

    async def _hung_up(self, event: ami.Message, call: str) -> None:
        uniqueid = event.get("Uniqueid", "")
        for legs in self._bridges.values():
            legs.pop(uniqueid, None)
        if uniqueid != call:
            return  # a leg of the call, not the caller
        self._queued.pop(call, None)
        self._answered.pop(call, None)
        cause = event.get("Cause-txt") or event.get("Cause") or None
        try:
            await conversations.hang_up(self.ctx, Channel.CALL, PREFIX + call, cause)
        except NotFound:
            log.debug("Asterisk hangup of call %s, which is not the console's", safe(call))

    async def _is_agent(self, extension: str) -> bool:
        """Whether an agent has this extension (or is named so), read at most every few seconds."""
        loop = asyncio.get_running_loop()
        known = self._agents.get(extension)
        if known is not None and known[1] > loop.time():
            return known[0]
        async with self.ctx.db.reading() as session:
            found = await find_agent(session, extension) is not None
        if len(self._agents) >= MEMORY:
            self._agents.clear()
        self._agents[extension] = (found, loop.time() + AGENT_CACHE_SECONDS)
        return found

    async def _dialled_agent(self, event: ami.Message, call: str) -> str | None:
        """The agent's extension a dialplan Dial (not a queue's) rings, or None: a queue's call
        (its Agent* events tell), an agent's own call to a colleague or out, a Local channel's
        second half, or a number that is nobody's extension."""
        caller = event.get("Channel", "")
        if call in self._queued or not caller or _second_half(caller):
            return None
        extension = channel_extension(event.get("DestChannel", ""))
        if extension is None:
            return None
        own = channel_extension(caller)
        if own is not None and await self._is_agent(own):
            return None
        return extension if await self._is_agent(extension) else None

    async def _dial_began(self, event: ami.Message, call: str) -> None:
        extension = await self._dialled_agent(event, call)
        if extension is None:
            return
        to = event.get("Exten", "").strip() or event.get("DialString", "").strip() or extension
        await conversations.ring(self.ctx, Channel.CALL, PREFIX + call, [extension], from_address=_number(event),
                                 to_address=to)

    async def _dial_ended(self, event: ami.Message, call: str) -> None:
        extension = await self._dialled_agent(event, call)
        if extension is None:
            return
        status = event.get("DialStatus", "").upper()
        try:
            if status == "ANSWER":
                await self._answer(event, call, (extension,), None, create=True)
            elif status == "NOANSWER":
                await conversations.stop_ringing(self.ctx, Channel.CALL, PREFIX + call, extension, missed=True)
            elif status in STOPPED:
                await conversations.stop_ringing(self.ctx, Channel.CALL, PREFIX + call, extension, missed=False)
        except NotFound:
            log.debug("Asterisk DialEnd of call %s, which is not the console's", safe(call))

    async def _bridge_entered(self, event: ami.Message, call: str) -> None:
        bridge = event.get("BridgeUniqueid", "")
        uniqueid = event.get("Uniqueid", "")
        if not bridge or not uniqueid:
            return
        self._bridges.setdefault(bridge, {})[uniqueid] = _Leg(event.get("Channel", ""), uniqueid, call)
        self._bridges.move_to_end(bridge)
        while len(self._bridges) > MEMORY:
            self._bridges.popitem(last=False)
        await self._bridged(bridge)

    async def _bridged(self, bridge: str) -> None:
        """A caller in a bridge with an agent's phone talks to that agent (a pickup or a transfer
        shows here; a queue's answer too, which AgentConnect reported already)."""
        legs = list(self._bridges.get(bridge, {}).values())
        for caller in (leg for leg in legs if leg.uniqueid == leg.linkedid):
            own = channel_extension(caller.channel)
            if own is not None and await self._is_agent(own):
                continue  # an agent's own call
            for leg in legs:
                extension = channel_extension(leg.channel) if leg is not caller else None
                if extension is None or self._answered.get(caller.linkedid) == extension:
                    continue
                if not await self._is_agent(extension):
                    continue
                try:
                    await self._answer({}, caller.linkedid, (extension,), None, create=False)
                except NotFound:
                    log.debug("Asterisk bridge of call %s, which is not the console's", safe(caller.linkedid))
                return

    async def _bridge_left(self, event: ami.Message, call: str) -> None:
        legs = self._bridges.get(event.get("BridgeUniqueid", ""))
        if legs is not None:
            legs.pop(event.get("Uniqueid", ""), None)

    async def _bridge_destroyed(self, event: ami.Message, call: str) -> None:
        self._bridges.pop(event.get("BridgeUniqueid", ""), None)

    # -- resync ------------------------------------------------------------------------------------

    async def resync(self, connection: ami.Connection) -> None:
        """Bring the console in step with what Asterisk has now (after a connect, and now and then):
        calls that ended meanwhile are hung up, calls that appeared are stored as Asterisk has them
        (waiting in a queue, ringing agents, or answered), rings that ended unseen end."""
        _, listed = await connection.action("CoreShowChannels", listing=True, within=self._timeout)
        _, status = await connection.action("QueueStatus", listing=True, within=self._timeout)
        channels = [c for c in listed if c.get("Event") == "CoreShowChannel"]
        self._queued.clear()
        self._answered.clear()
        self._bridges.clear()
        self._agents.clear()
        calls: dict[str, list[ami.Message]] = {}
        linked_of: dict[str, str] = {}
        for channel in channels:
            call = _call_id(channel)
            if call is None:
                continue
            calls.setdefault(call, []).append(channel)
            uniqueid = channel.get("Uniqueid", "")
            linked_of[uniqueid] = call
            bridge = channel.get("BridgeId", "")
            if bridge and uniqueid:
                self._bridges.setdefault(bridge, {})[uniqueid] = _Leg(channel.get("Channel", ""), uniqueid, call)
        waiting: dict[str, ami.Message] = {}
        for entry in status:
            if entry.get("Event") == "QueueEntry" and entry.get("Uniqueid"):
                call = linked_of.get(entry["Uniqueid"], entry["Uniqueid"])
                if _call_id({"Linkedid": call}) is not None:
                    waiting[call] = entry
        known = dict(await conversations.open_calls(self.ctx, PREFIX))
        ended = 0
        for external_id in list(known):
            call = external_id[len(PREFIX):]
            # The caller's channel is the call's first (its Uniqueid is the Linkedid): without it
            # the caller is gone, whatever legs of the call still hang up.
            if call not in waiting and not any(leg.get("Uniqueid") == call for leg in calls.get(call, [])):
                del known[external_id]
                calls.pop(call, None)
                ended += await self._settle(call, conversations.hang_up(
                    self.ctx, Channel.CALL, external_id, "ended while the console was not following Asterisk"))
        counts = {"waiting": 0, "ringing": 0, "answered": 0}
        for call in sorted(set(calls) | set(waiting)):
            outcome = await self._resync_call(call, calls.get(call, []), waiting.get(call),
                                              known.get(PREFIX + call))
            if outcome in counts:
                counts[outcome] += 1
        log.info("Asterisk: in step: %d calls ended meanwhile, %d waiting, %d ringing, %d answered", ended,
                 counts["waiting"], counts["ringing"], counts["answered"])

    async def _settle(self, call: str, step: Awaitable[object]) -> int:
        """Run one console step of a resync: 1 when it was taken, 0 when the console refused it
        (the call changed meanwhile); database failures are raised."""
        try:
            await step
        except (NotFound, Conflict) as exc:
            log.info("Asterisk resync of call %s: %s", safe(call), safe(exc.message))
            return 0
        except InvalidInput as exc:
            log.warning("Asterisk resync of call %s: %s", safe(call), safe(exc.message))
            return 0
        return 1

    async def _resync_call(self, call: str, legs: list[ami.Message], entry: ami.Message | None,
                           state: State | None) -> str | None:
        """One call as Asterisk has it now; what the console was told: waiting, ringing,
        answered, or None when it is not the console's or there was nothing to tell."""
        caller = next((leg for leg in legs if leg.get("Uniqueid") == call), None)
        if caller is None and entry is None:
            return None  # the caller is gone: the rest of the call hangs up by itself
        if caller is not None:
            own = channel_extension(caller.get("Channel", ""))
            if own is not None and await self._is_agent(own):
                return None  # an agent's own call
        ringing: list[str] = []
        answered: str | None = None
        bridge = caller.get("BridgeId", "") if caller is not None else ""
        for leg in legs:
            if leg is caller or _second_half(leg.get("Channel", "")):
                continue
            extension = channel_extension(leg.get("Channel", ""))
            if extension is None or not await self._is_agent(extension):
                continue
            if leg.get("ChannelState") == RINGING or leg.get("ChannelStateDesc", "").lower() == "ringing":
                if extension not in ringing:
                    ringing.append(extension)
            elif bridge and leg.get("BridgeId") == bridge and answered is None:
                answered = extension
        if entry is None and not ringing and answered is None and state is None:
            return None  # not a call of the console's queues or agents
        source = caller or entry or (legs[0] if legs else {})
        queue = entry.get("Queue") if entry is not None else None
        external_id = PREFIX + call
        if entry is not None:
            self._queued.remember(call)
        if answered is not None:
            self._answered.remember(call, answered)
            if state is None:
                await self._settle(call, conversations.arrive(
                    self.ctx, channel=Channel.CALL, external_id=external_id, from_address=_number(source),
                    to_address=_dialled(source, queue), queue=queue, routed_by_phone_system=True))
            taken = await self._settle(call, conversations.answer(self.ctx, Channel.CALL, external_id, [answered]))
            return "answered" if taken else None
        if state is State.ACTIVE:
            return None  # answered, and not ringing anyone new: nothing to tell
        if entry is None and not ringing and state is State.QUEUED:
            return None
        taken = await self._settle(call, conversations.ring(
            self.ctx, Channel.CALL, external_id, ringing, from_address=_number(source),
            to_address=_dialled(source, queue), queue=queue, exclusive=True))
        if not taken:
            return None
        return "ringing" if ringing else "waiting"
