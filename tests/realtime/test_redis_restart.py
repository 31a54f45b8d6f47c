"""Redis restarted under a node: its next commands work at once, and its sockets are told to resync.

A redis-server of the test's own (the shared one is never stopped), killed and started again on
the same port, empty, as after a crash without persistence.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from realtime import Overflow, make_bus
from tests.conftest import free_port, missing


async def until(check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        await asyncio.sleep(0.05)


class RedisServer:
    """A redis-server of this test's own on a fixed port, without persistence, that can be killed."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            missing("redis-server")
        assert executable is not None
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await until(self.answers, f"redis-server on port {self.port}", timeout=15)

    async def answers(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, "redis-server exited"
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 1)
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(b"PING\r\n")
            reply = await asyncio.wait_for(reader.readline(), 1)
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return reply == b"+PONG\r\n"

    async def kill(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()
        process = self.process
        await until(lambda: process.poll() is not None, "redis-server to exit", timeout=10)


async def test_a_node_idle_while_redis_restarted_publishes_at_once_and_its_readers_resync(tmp_path: Path) -> None:
    redis = RedisServer(free_port(), tmp_path)
    await redis.start()
    bus = make_bus(redis.url, prefix=f"console-test-{secrets.token_hex(6)}:")
    await bus.start()
    try:
        async with bus.subscribe("agent:1", maxsize=16) as subscription:
            # Several at once, so the pool keeps several connections, all to the server about to go.
            cursors = await asyncio.gather(*(bus.publish("agent:1", f"before {i}") for i in range(4)))
            for _ in range(4):
                await asyncio.wait_for(subscription.get(), 5)
            await redis.kill()
            await redis.start()  # empty: the frames and the streams went with the old server
            with pytest.raises(Overflow):  # the reader lost its connection: this socket must resync
                await asyncio.wait_for(subscription.get(), 10)
        # Nothing was published meanwhile; the next commands must not fail on the old connections.
        assert await bus.replay("agent:1", max(cursors, key=lambda c: bus.order(c) or ())) is None, \
            "a cursor of the old server asks for a snapshot"
        await asyncio.wait_for(asyncio.gather(*(bus.publish("agent:1", f"after {i}") for i in range(4))), 10)
        async with bus.subscribe("agent:1", maxsize=16) as subscription:
            await bus.publish("agent:1", "live")
            assert (await asyncio.wait_for(subscription.get(), 10)).payload == "live", "the reader is back"
        assert getattr(bus, "reconnects", 0) >= 1
    finally:
        await asyncio.wait_for(bus.close(), 10)
        await redis.kill()
