"""A pretend Asterisk for the demo: a manager interface (AMI) whose queues take calls from Dutch numbers.

`make demo` can follow it like a real PBX (integrations.telephony.asterisk): it accepts Login
with the given user and secret, answers Ping, CoreShowChannels and QueueStatus with the calls it
has, and sends the events a real Asterisk 18 sends a manager with `read = call,agent`.

Calls start at `rate_per_minute` on average (at random, as callers do), from Dutch mobile and
landline numbers to a service line, each into one of `queues`. Its queue does what an Asterisk
queue with the `rrmemory`-like strategy does: after a short wait it rings one free member (the
extension of a console agent who is available now: the demo's `ringable()` names them), and the
phone is answered after a few seconds, or rings out (AgentRingNoAnswer, and the next member is
rung), or the caller gives up (QueueCallerAbandon). An answered call is talked over, then hung up
(AgentComplete, Hangup). A caller nobody answers gives up after their patience runs out.

Nothing here reads the console's database: the agents come from `ringable()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from console.seed import SERVICE_NUMBERS
from integrations.telephony import ami

log = logging.getLogger("integrations.asterisk_simulator")

Ringable = Callable[[], Awaitable[list[str]]]
Message = dict[str, str]

BANNER = "Asterisk Call Manager/9.0.0"
MAX_LINE = 8 * 1024
MAX_BUFFERED = 1024 * 1024  # a client that reads slower than this much of events is hung up on
# The service lines in the national format a Dutch trunk delivers them in (+31 20 ... -> 020 ...).
SERVICE_LINES = tuple("0" + number.replace(" ", "")[3:] for number in SERVICE_NUMBERS["nl"])
MOBILE, LANDLINE_AREAS = "6", ("10", "20", "30", "33", "40", "50", "70", "71", "76", "172", "318", "492")


@dataclass(frozen=True)
class Timing:
    """How long things take, in seconds (the demo's defaults; tests make them short)."""

    wait: tuple[float, float] = (2.0, 8.0)  # in the queue before the first ring
    ring: tuple[float, float] = (3.0, 8.0)  # a phone that is answered rings this long
    ring_out: float = 15.0  # a phone nobody answers rings this long (queues.conf timeout)
    talk: tuple[float, float] = (25.0, 120.0)
    patience: tuple[float, float] = (60.0, 180.0)  # a caller gives up after this in all
    retry: float = 2.0  # while no member is free, the queue looks again this often
    answered: float = 0.8  # the chance a ringing phone is answered
    abandoned: float = 0.05  # the chance the caller hangs up while a phone rings


def dutch_number(rng: random.Random) -> str:
    """A Dutch number in the national format: a mobile (06) or a landline of some area."""
    if rng.random() < 0.6:
        return "0" + MOBILE + "".join(rng.choice("0123456789") for _ in range(8))
    area = rng.choice(LANDLINE_AREAS)
    return "0" + area + str(rng.randint(2, 9)) + "".join(rng.choice("0123456789") for _ in range(8 - len(area)))


@dataclass
class _Leg:
    channel: str
    uniqueid: str
    number: str
    name: str
    context: str
    state: str = "6"  # ChannelState: 5 ringing, 6 up
    bridge: str = ""
    since: float = field(default_factory=time.monotonic)


@dataclass
class _Call:
    linkedid: str
    queue: str
    dialled: str
    caller: _Leg
    member: _Leg | None = None
    interface: str = ""
    waiting: bool = True  # in the queue (not answered, not given up)


class _Client:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.logged_in = False
        self.events = True  # Login's Events: off asks for no events

    def send(self, data: bytes) -> None:
        if self.writer.is_closing():
            return
        if self.writer.transport.get_write_buffer_size() > MAX_BUFFERED:
            log.warning("simulated Asterisk: a manager client reads too slowly; hanging up on it")
            self.writer.close()
            return
        self.writer.write(data)


def _duration(since: float) -> str:
    seconds = int(time.monotonic() - since)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class SimulatedAsterisk:
    """The PBX behind `serve` (see the module's docstring)."""

    def __init__(self, username: str, secret: str, rate_per_minute: float, ringable: Ringable, *,
                 queues: Sequence[str] = ("service", "sales"), timing: Timing | None = None,
                 rng: random.Random | None = None) -> None:
        if not queues:
            raise ValueError("the simulated Asterisk needs at least one queue")
        self.username = username
        self.secret = secret
        self.rate_per_minute = rate_per_minute
        self.ringable = ringable
        self.queues = tuple(queues)
        self.timing = timing or Timing()
        self.rng = rng or random.Random()
        self.calls: dict[str, _Call] = {}
        self.clients: set[_Client] = set()
        self.started = 0  # calls started so far
        self._epoch = int(time.time())
        self._count = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the manager interface ---------------------------------------------------------------------

    async def start(self, host: str, port: int) -> asyncio.Server:
        """Serve the manager interface, and start calls while it serves."""
        server = await asyncio.start_server(self._serve, host, port, limit=MAX_LINE + 2)
        self._spawn(self._generate(server))
        return server

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(writer)
        self.clients.add(client)
        try:
            client.send(f"{BANNER}\r\n".encode())
            while True:
                action = await ami.read_message(reader)
                if action is None or not self._answer(client, action):
                    return
        except (ConnectionError, ValueError, ami.AmiError):
            return  # a client that sends garbage is hung up on, as Asterisk does
        finally:
            self.clients.discard(client)
            writer.close()

    def _answer(self, client: _Client, action: Message) -> bool:
        """Answer one action; False when the connection is to end."""
        name = action.get("Action", "").lower()
        ids = {"ActionID": action["ActionID"]} if "ActionID" in action else {}
        if name == "login":
            if action.get("Username") != self.username or action.get("Secret") != self.secret:
                client.send(ami.encode({"Response": "Error", **ids, "Message": "Authentication failed"}))
                return False
            client.logged_in = True
            client.events = action.get("Events", "on").lower() != "off"
            client.send(ami.encode({"Response": "Success", **ids, "Message": "Authentication accepted"}))
            if client.events:
                client.send(ami.encode({"Event": "FullyBooted", "Privilege": "system,all", "Uptime": "1",
                                   "LastReload": "1", "Status": "Fully Booted"}))
            return True
        if not client.logged_in:
            client.send(ami.encode({"Response": "Error", **ids, "Message": "Permission denied"}))
            return True
        if name == "ping":
            client.send(ami.encode({"Response": "Success", **ids, "Ping": "Pong", "Timestamp": f"{time.time():.6f}"}))
        elif name == "logoff":
            client.send(ami.encode({"Response": "Goodbye", **ids, "Message": "Thanks for all the fish."}))
            return False
        elif name == "coreshowchannels":
            self._listing(client, ids, "Channels will follow", self._channels(), "CoreShowChannelsComplete")
        elif name == "queuestatus":
            self._listing(client, ids, "Queue status will follow", self._queue_status(), "QueueStatusComplete")
        else:
            client.send(ami.encode({"Response": "Error", **ids, "Message": "Invalid/unknown command"}))
        return True

    @staticmethod
    def _listing(client: _Client, ids: Message, text: str, items: list[Message], complete: str) -> None:
        data = ami.encode({"Response": "Success", **ids, "EventList": "start", "Message": text})
        for item in items:
            data += ami.encode({"Event": item["Event"], **ids, **{k: v for k, v in item.items() if k != "Event"}})
        data += ami.encode({"Event": complete, **ids, "EventList": "Complete", "ListItems": str(len(items))})
        client.send(data)

    def _channels(self) -> list[Message]:
        channels = []
        for call in self.calls.values():
            for leg in (call.caller, call.member):
                if leg is None:
                    continue
                application = ("Queue", call.queue) if leg is call.caller else ("AppQueue", "(Outgoing Line)")
                channels.append({"Event": "CoreShowChannel", **self._snapshot(leg, call),
                                 "Application": application[0], "ApplicationData": application[1],
                                 "Duration": _duration(leg.since), "BridgeId": leg.bridge})
        return channels

    def _queue_status(self) -> list[Message]:
        status: list[Message] = []
        for queue in self.queues:
            waiting = [call for call in self.calls.values() if call.queue == queue and call.waiting]
            status.append({"Event": "QueueParams", "Queue": queue, "Max": "0", "Strategy": "rrmemory",
                           "Calls": str(len(waiting)), "Holdtime": "0", "TalkTime": "0", "Completed": "0",
                           "Abandoned": "0", "ServiceLevel": "20", "ServicelevelPerf": "0.0",
                           "ServicelevelPerf2": "0.0", "Weight": "0"})
            for position, call in enumerate(waiting, start=1):
                status.append({"Event": "QueueEntry", "Queue": queue, "Position": str(position),
                               "Channel": call.caller.channel, "Uniqueid": call.caller.uniqueid,
                               "CallerIDNum": call.caller.number, "CallerIDName": call.caller.name,
                               "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>",
                               "Wait": str(int(time.monotonic() - call.caller.since)), "Priority": "0"})
        return status

    def _emit(self, *events: Message) -> None:
        data = b"".join(ami.encode(event) for event in events)
        for client in list(self.clients):
            if client.logged_in and client.events:
                client.send(data)

    # -- the calls ---------------------------------------------------------------------------------

    def _uniqueid(self) -> str:
        self._count += 1
        return f"{self._epoch}.{self._count}"

    def _snapshot(self, leg: _Leg, call: _Call, prefix: str = "") -> Message:
        return {f"{prefix}Channel": leg.channel, f"{prefix}ChannelState": leg.state,
                f"{prefix}ChannelStateDesc": {"5": "Ringing", "6": "Up"}.get(leg.state, "Down"),
                f"{prefix}CallerIDNum": leg.number, f"{prefix}CallerIDName": leg.name,
                f"{prefix}ConnectedLineNum": "<unknown>", f"{prefix}ConnectedLineName": "<unknown>",
                f"{prefix}Language": "nl", f"{prefix}AccountCode": "", f"{prefix}Context": leg.context,
                f"{prefix}Exten": call.dialled, f"{prefix}Priority": "1", f"{prefix}Uniqueid": leg.uniqueid,
                f"{prefix}Linkedid": call.linkedid}

    def _event(self, name: str, call: _Call, privilege: str = "agent,all", *, member: bool = False,
               **extra: str) -> Message:
        event: Message = {"Event": name, "Privilege": privilege, **self._snapshot(call.caller, call)}
        if member and call.member is not None:
            event.update(self._snapshot(call.member, call, "Dest"))
        if member:
            event.update({"Queue": call.queue, "Interface": call.interface, "MemberName": call.interface})
        event.update(extra)
        return event

    async def _generate(self, server: asyncio.Server) -> None:
        """Start calls at random while the server serves; end them all when it stops."""
        try:
            while server.is_serving():
                if self.rate_per_minute > 0:
                    pause = self.rng.expovariate(self.rate_per_minute / 60.0)
                    while pause > 0 and server.is_serving():
                        await asyncio.sleep(min(pause, 0.5))
                        pause -= 0.5
                    if server.is_serving():
                        self.started += 1
                        self._spawn(self._call())
                else:
                    await asyncio.sleep(0.5)
        finally:
            for task in list(self._tasks):
                if task is not asyncio.current_task():
                    task.cancel()
            for client in list(self.clients):  # a stopped Asterisk hangs up on its managers too
                client.writer.close()

    async def _ringable(self, busy: set[str]) -> list[str]:
        try:
            found = await self.ringable()
        except Exception as exc:  # the demo's database is busy: nobody is rung this round
            log.info("simulated Asterisk: could not learn who is free (%s)", exc)
            return []
        return [extension for extension in found if extension not in busy]

    def _busy(self) -> set[str]:
        return {call.interface.partition("/")[2] for call in self.calls.values() if call.member is not None}

    async def _call(self) -> None:
        """One caller's call, from the queue to the hangup."""
        timing, rng = self.timing, self.rng
        uniqueid = self._uniqueid()
        caller = _Leg(f"PJSIP/kpn-trunk-{self._count:08x}", uniqueid, dutch_number(rng), "<unknown>", "from-trunk")
        queue = rng.choice(self.queues)
        call = _Call(uniqueid, queue, rng.choice(SERVICE_LINES), caller)
        self.calls[call.linkedid] = call
        gives_up = time.monotonic() + rng.uniform(*timing.patience)
        try:
            waiting = sum(1 for c in self.calls.values() if c.queue == queue and c.waiting)
            self._emit(self._event("Newchannel", call, "call,all"),
                       self._event("QueueCallerJoin", call, Queue=queue, Position=str(waiting), Count=str(waiting)))
            await asyncio.sleep(rng.uniform(*timing.wait))
            tried: set[str] = set()
            while True:
                if time.monotonic() >= gives_up:
                    self._abandon(call)
                    return
                free = await self._ringable(self._busy())
                candidates = [extension for extension in free if extension not in tried] or free
                if not candidates:
                    await asyncio.sleep(timing.retry)
                    continue
                extension = rng.choice(candidates)
                outcome = await self._ring(call, extension)
                if outcome == "answered":
                    await self._talk(call)
                    return
                if outcome == "abandoned":
                    return
                tried.add(extension)
        finally:
            self.calls.pop(call.linkedid, None)

    async def _ring(self, call: _Call, extension: str) -> str:
        """Ring one member: "answered", "rang out" or "abandoned"."""
        timing, rng = self.timing, self.rng
        call.interface = f"PJSIP/{extension}"
        call.member = _Leg(f"PJSIP/{extension}-{self._count:08x}", self._uniqueid(), extension, extension,
                           "from-queue", state="5")
        dial = {"DialString": extension}
        self._emit(self._event("DialBegin", call, "call,all", member=True, **dial),
                   self._event("AgentCalled", call, member=True))
        chance = rng.random()
        if chance < timing.abandoned:
            await asyncio.sleep(rng.uniform(*timing.ring) / 2)
            self._emit(self._event("DialEnd", call, "call,all", member=True, DialStatus="CANCEL"),
                       self._hangup(call.member, call, "16", "Normal Clearing"))
            call.member = None
            self._abandon(call)
            return "abandoned"
        if chance < timing.abandoned + timing.answered:
            await asyncio.sleep(rng.uniform(*timing.ring))
            self._answer_call(call)
            return "answered"
        await asyncio.sleep(timing.ring_out)
        self._emit(self._event("AgentRingNoAnswer", call, member=True, RingTime=str(int(timing.ring_out))),
                   self._event("DialEnd", call, "call,all", member=True, DialStatus="NOANSWER"),
                   self._hangup(call.member, call, "19", "No user responding"))
        call.member = None
        return "rang out"

    def _answer_call(self, call: _Call) -> None:
        assert call.member is not None
        call.member.state = "6"
        call.waiting = False
        bridge = str(uuid.UUID(int=self.rng.getrandbits(128)))
        held = str(int(time.monotonic() - call.caller.since))
        self._emit(self._event("DialEnd", call, "call,all", member=True, DialStatus="ANSWER"),
                   self._event("QueueCallerLeave", call, Queue=call.queue, Count="0", Position="1"),
                   self._event("AgentConnect", call, member=True, HoldTime=held, RingTime="5"))
        for leg in (call.member, call.caller):
            leg.bridge = bridge
            self._emit({"Event": "BridgeEnter", "Privilege": "call,all", "BridgeUniqueid": bridge,
                        "BridgeType": "basic", "BridgeTechnology": "simple_bridge", "BridgeCreator": "<unknown>",
                        "BridgeName": "<unknown>", "BridgeNumChannels": "2" if leg is call.caller else "1",
                        "BridgeVideoSourceMode": "none", **self._snapshot(leg, call)})

    async def _talk(self, call: _Call) -> None:
        started = time.monotonic()
        await asyncio.sleep(self.rng.uniform(*self.timing.talk))
        assert call.member is not None
        reason = self.rng.choice(("caller", "agent"))
        bridge = call.caller.bridge
        talked = str(int(time.monotonic() - started))
        leave = [{"Event": "BridgeLeave", "Privilege": "call,all", "BridgeUniqueid": bridge, "BridgeType": "basic",
                  "BridgeTechnology": "simple_bridge", "BridgeNumChannels": "0", **self._snapshot(leg, call)}
                 for leg in (call.caller, call.member)]
        self._emit(*leave, self._hangup(call.caller, call, "16", "Normal Clearing"),
                   self._event("AgentComplete", call, member=True, HoldTime="0", TalkTime=talked, Reason=reason),
                   {"Event": "BridgeDestroy", "Privilege": "call,all", "BridgeUniqueid": bridge,
                    "BridgeType": "basic", "BridgeTechnology": "simple_bridge", "BridgeNumChannels": "0"},
                   self._hangup(call.member, call, "16", "Normal Clearing"))

    def _abandon(self, call: _Call) -> None:
        held = str(int(time.monotonic() - call.caller.since))
        call.waiting = False
        self._emit(self._event("QueueCallerAbandon", call, Queue=call.queue, Position="1", OriginalPosition="1",
                               HoldTime=held),
                   self._event("QueueCallerLeave", call, Queue=call.queue, Count="0", Position="1"),
                   self._hangup(call.caller, call, "16", "Normal Clearing"))

    def _hangup(self, leg: _Leg, call: _Call, cause: str, text: str) -> Message:
        return {"Event": "Hangup", "Privilege": "call,all", **self._snapshot(leg, call), "Cause": cause,
                "Cause-txt": text}

    async def close(self) -> None:
        """End every call and connection (the server itself is the caller's to close)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in list(self.clients):
            client.writer.close()
            with contextlib.suppress(Exception):
                await client.writer.wait_closed()


async def serve(host: str, port: int, username: str, secret: str, rate_per_minute: float, ringable: Ringable, *,
                queues: Sequence[str] = ("service", "sales"), timing: Timing | None = None,
                rng: random.Random | None = None) -> asyncio.Server:
    """A simulated Asterisk manager interface on host:port whose queues take calls at
    `rate_per_minute`, ringing the extensions `ringable()` names. Closing the server stops the
    calls too."""
    pbx = SimulatedAsterisk(username, secret, rate_per_minute, ringable, queues=queues, timing=timing, rng=rng)
    return await pbx.start(host, port)
