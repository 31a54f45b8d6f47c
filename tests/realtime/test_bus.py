"""The bus contract; each backend runs the same tests (Redis joins with its backend)."""

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from realtime import Bus, Frame, Overflow, StreamClosed, Subscription, close_frame, make_bus
from realtime.backends.redis import RedisBus
from realtime.hub import Feed, follow, pump
from tests.conftest import REDIS_URL, redis_bus


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        bus = make_bus("memory://", backlog=5)
        await bus.start()
        yield bus
        await bus.close()
        return
    async with redis_bus(backlog=5) as bus:
        yield bus


async def test_replay_returns_the_frames_after_the_cursor_in_order(bus: Bus) -> None:
    first = await bus.publish("agent:1", "a")
    await bus.publish("agent:2", "other stream")
    await bus.publish("agent:1", "b")
    await bus.publish("agent:1", "c")
    frames = await bus.replay("agent:1", first)
    assert frames is not None and [f.payload for f in frames] == ["b", "c"]
    assert await bus.replay("agent:1", await bus.last_id("agent:1")) == []


async def test_an_unknown_or_too_old_cursor_asks_for_a_snapshot(bus: Bus) -> None:
    first = await bus.publish("agent:1", "0")
    for i in range(1, 400):  # Redis trims whole nodes of ~100 entries (MAXLEN ~)
        await bus.publish("agent:1", str(i))
    assert await bus.replay("agent:1", first) is None, "frames after it fell out of the backlog"
    assert await bus.replay("agent:1", "not-a-cursor") is None
    assert await bus.replay("agent:1", "deadbeef-3") is None
    assert await bus.replay("agent:1", "99999999999999-0") is None, "a cursor from the future"
    assert await bus.replay("agent:9", await bus.last_id("agent:9")) == [], "an empty stream has a cursor too"


async def test_a_subscriber_gets_new_frames_and_overflow_is_reported(bus: Bus) -> None:
    async with bus.subscribe("agent:1", maxsize=2) as subscription:
        await bus.publish("agent:1", "x")
        assert (await asyncio.wait_for(subscription.get(), 1)).payload == "x"
        for i in range(10):
            await bus.publish("agent:1", str(i))
        with pytest.raises(Overflow):  # once the frames it could not hold have reached it
            for _ in range(10):
                await asyncio.wait_for(subscription.get(), 1)


async def test_pump_sends_a_snapshot_then_live_frames_each_once(bus: Bus) -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    async def snapshot() -> str:
        await bus.publish("agent:1", "raced")  # published while the snapshot is built
        return "snapshot"

    task = asyncio.create_task(pump(bus, "agent:1", send, since=None, snapshot=snapshot,
                                    wrap=lambda payload, cursor: f"{payload}@{cursor}"))
    await until(lambda: len(sent) >= 2)
    await bus.publish("agent:1", "live")
    await until(lambda: len(sent) >= 3)
    task.cancel()
    assert [s.split("@")[0] for s in sent] == ["snapshot", "raced", "live"]
    cursors = [s.split("@")[1] for s in sent]
    assert len(set(cursors)) == 3


async def test_pump_replays_from_a_cursor_without_a_snapshot(bus: Bus) -> None:
    cursor = await bus.publish("agent:1", "seen")
    await bus.publish("agent:1", "missed")
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    async def snapshot() -> str:
        raise AssertionError("no snapshot when the cursor is known")

    task = asyncio.create_task(pump(bus, "agent:1", send, since=cursor, snapshot=snapshot,
                                    wrap=lambda payload, cursor: payload))
    await until(lambda: bool(sent))
    task.cancel()
    assert sent == ["missed"]


async def test_a_failed_subscription_tells_its_reader_to_resync(bus: Bus) -> None:
    async with bus.subscribe("agent:1", maxsize=4) as subscription:
        subscription.fail()  # what the Redis reader does when its connection breaks
        with pytest.raises(Overflow):
            await asyncio.wait_for(subscription.get(), 1)


async def test_a_long_gap_is_a_snapshot_not_a_replay(bus: Bus) -> None:
    cursor = await bus.publish("agent:1", "seen")
    for i in range(4):
        await bus.publish("agent:1", f"missed {i}")
    assert await bus.replay("agent:1", cursor, 3) is None, "more than the limit: take a snapshot"
    frames = await bus.replay("agent:1", cursor, 4)
    assert frames is not None and len(frames) == 4
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    async def snapshot() -> str:
        return "snapshot"

    task = asyncio.create_task(pump(bus, "agent:1", send, since=cursor, snapshot=snapshot,
                                    wrap=lambda payload, cursor: payload, max_replay=3))
    await until(lambda: bool(sent))
    task.cancel()
    assert sent == ["snapshot"]


async def payloads_until(subscription: Subscription, last: str) -> list[str]:
    seen: list[str] = []
    while not seen or seen[-1] != last:
        seen.append((await asyncio.wait_for(subscription.get(), 2)).payload)
    return seen


async def test_subscribers_of_one_stream_each_get_every_frame_from_when_they_joined(bus: Bus) -> None:
    """A frame published just before a subscriber joined may reach it too (the pump skips what its
    cursor already covers); none published after it joined may be missed."""
    async with bus.subscribe("agent:1", maxsize=10) as first:
        await bus.publish("agent:1", "one")
        # Two more join; none of them moves the first one's position.
        async with bus.subscribe("agent:1", maxsize=10) as second, bus.subscribe("agent:1", maxsize=10) as third:
            await bus.publish("agent:1", "two")
            assert await payloads_until(first, "two") == ["one", "two"]
            for later in (second, third):
                assert (await payloads_until(later, "two"))[-1:] == ["two"]
        await bus.publish("agent:1", "three")
        assert await payloads_until(first, "three") == ["three"]


async def test_concurrent_first_subscribers_both_receive(bus: Bus) -> None:
    async def one() -> str:
        async with bus.subscribe("agent:7", maxsize=10) as subscription:
            await until(lambda: len(joined) == 2)
            return (await asyncio.wait_for(subscription.get(), 2)).payload

    joined: list[int] = []

    async def joining() -> str:
        task = asyncio.create_task(one())
        await asyncio.sleep(0.05)
        joined.append(1)
        return await task

    results = asyncio.gather(joining(), joining())
    await until(lambda: len(joined) == 2)
    await asyncio.sleep(0.05)
    await bus.publish("agent:7", "hello")
    assert await asyncio.wait_for(results, 5) == ["hello", "hello"]


async def followers(bus: Bus, count: int, stream: str = "broadcast:supervisors"
                    ) -> tuple[list[list[str]], list[asyncio.Task[None]]]:
    received: list[list[str]] = [[] for _ in range(count)]
    tasks = []
    for inbox in received:
        async def send(text: str, inbox: list[str] = inbox) -> None:
            inbox.append(text)

        tasks.append(asyncio.create_task(follow(bus, stream, send, snapshot=None)))
    await asyncio.sleep(0.2)  # every follower subscribed
    return received, tasks


async def test_a_broadcast_published_once_reaches_every_follower_once(bus: Bus) -> None:
    received, tasks = await followers(bus, 200)
    await bus.publish("broadcast:supervisors", "<section id='wallboard'>1</section>")
    await bus.publish("agent:1", "not for followers")
    await until(lambda: all(inbox for inbox in received))
    await bus.publish("broadcast:supervisors", close_frame(4000, "bye"))
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(inbox == ["<section id='wallboard'>1</section>"] for inbox in received), "no cursor, no repeats"
    assert all(isinstance(result, StreamClosed) and result.code == 4000 for result in done)


async def test_a_broadcast_on_one_node_reaches_the_followers_on_another() -> None:
    async with redis_bus() as node_a:
        assert isinstance(node_a, RedisBus)
        node_b = make_bus(REDIS_URL, prefix=node_a.prefix)
        await node_b.start()
        try:
            received, tasks = await followers(node_b, 50)
            await node_a.publish("broadcast:supervisors", "queue figures")
            await until(lambda: all(inbox == ["queue figures"] for inbox in received))
            for task in tasks:
                task.cancel()
        finally:
            await node_b.close()


async def test_a_follower_starts_from_the_current_view() -> None:
    bus = make_bus("memory://")
    await bus.start()
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    async def snapshot() -> str:
        return "the board as it is"

    task = asyncio.create_task(follow(bus, "broadcast:x", send, snapshot=snapshot))
    await until(lambda: len(sent) == 1)
    await bus.publish("broadcast:x", "changed")
    await until(lambda: len(sent) == 2)
    task.cancel()
    await bus.close()
    assert sent == ["the board as it is", "changed"]


async def test_a_feed_sends_in_order_with_a_task_only_while_frames_wait_and_stops_once() -> None:
    sent: list[str] = []
    gate = asyncio.Event()
    stops: list[BaseException] = []

    async def send(text: str) -> None:
        await gate.wait()
        if text == "boom":
            raise RuntimeError("the socket is gone")
        sent.append(text)

    feed = Feed(send, maxsize=10, on_stop=stops.append)
    assert feed._sender is None, "an idle feed has no task"
    for text in ("a", "b", "c"):
        feed.put(text)
    gate.set()
    await asyncio.sleep(0.01)
    assert sent == ["a", "b", "c"] and feed._sender is None and feed.running()
    feed.put("d")  # the socket can take it: sent before put returns, no task made
    assert sent == ["a", "b", "c", "d"] and feed._sender is None
    gate.clear()
    feed.put("boom")
    feed.put("never")
    assert feed._sender is not None, "a socket that must wait gets a sender task"
    gate.set()
    assert isinstance(await asyncio.wait_for(feed.stopped(), 1), RuntimeError)
    feed.put("after")
    await asyncio.sleep(0.01)
    assert sent == ["a", "b", "c", "d"] and len(stops) == 1, "nothing is sent after the first error"


async def test_a_feed_that_cannot_keep_up_stops_with_overflow() -> None:
    async def never(_text: str) -> None:
        await asyncio.Event().wait()

    feed = Feed(never, maxsize=3)
    for i in range(5):
        feed.put(str(i))
    assert isinstance(await asyncio.wait_for(feed.stopped(), 1), Overflow)
    await feed.aclose()


async def test_a_close_frame_stops_the_feed_after_what_came_before_it_and_a_send_may_hand_over_more() -> None:
    sent: list[str] = []
    gate = asyncio.Event()
    feed: Feed

    async def send(text: str) -> None:
        if text == "first":
            feed.put("handed over while sending")  # a send that causes another frame queues it behind
        if text == "slow":
            await gate.wait()
        sent.append(text)

    feed = Feed(send, maxsize=10)
    feed.put("first")
    assert sent == ["first", "handed over while sending"]
    feed.put("slow")
    feed.put("waiting")
    feed.deliver(Frame("agent:1", "1-0", (1, 0), close_frame(1008, "logged out")), lambda payload, _c: payload)
    feed.put("after the close")
    gate.set()
    stopped = await asyncio.wait_for(feed.stopped(), 1)
    assert isinstance(stopped, StreamClosed) and stopped.code == 1008
    assert sent == ["first", "handed over while sending", "slow", "waiting"]
    await feed.aclose()


async def test_joining_a_channel_again_while_the_reader_runs_is_always_confirmed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A node that always follows one stream (the agent changes) while sockets come and go: every
    socket's subscription is confirmed. Redis's reply to SUBSCRIBE may be read before the call that
    sent it returns; it once left a count behind, and every later join of that channel timed out."""
    from realtime.backends import redis as backend

    monkeypatch.setattr(backend, "JOIN_TIMEOUT", 1.0)
    async with redis_bus() as bus, bus.subscribe("nodes:agents-changed", 10):
        for round_ in range(60):
            async with bus.subscribe(f"agent:{round_ % 3}", 10):
                pass
