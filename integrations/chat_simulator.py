"""Simulated website visitors for the demo: they chat through the public widget endpoint.

Each visitor opens /chat/ws as the widget does (from the demo shop's origin), says hello, writes
a first question, and then waits for the agent: after each answer they type for a moment and
write the next line of their little script, and after the last one they leave. Some send a
photo after their first line (through the widget's upload endpoint, as the widget does), and some
end the chat themselves and rate it. A visitor nobody answers within `patience` seconds leaves
too. New visitors come at most `rate` a minute, and only while agents are logged in
(`staffing`), at most `at_once` at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import struct
import uuid
import zlib
from collections.abc import Awaitable, Callable

import httpx
from websockets.asyncio.client import ClientConnection, connect

log = logging.getLogger("integrations.chat_simulator")

SCRIPTS = {
    "nl": [
        ["Hallo, ik heb vorige week een bestelling geplaatst maar nog niets ontvangen.",
         "Het bestelnummer is 2026-48213.", "Fijn, dank u wel!"],
        ["Goedemiddag, kan ik mijn abonnement per volgende maand opzeggen?",
         "Ja, per 1 januari graag.", "Top, bedankt voor de hulp."],
        ["Mijn factuur klopt niet, er staat twee keer hetzelfde bedrag op.",
         "Factuur 2026-10049, van november.", "Oké, ik wacht de creditnota af. Bedankt!"],
    ],
    "en": [
        ["Hi, I ordered last week and the parcel has not arrived yet.",
         "The order number is 2026-48213.", "Great, thank you!"],
        ["Hello, can I change the delivery address of my order?",
         "It should go to Kerkstraat 12, Utrecht.", "Perfect, thanks a lot."],
    ],
}


PHOTO_NAMES = {"nl": "foto-van-de-doos.png", "en": "photo-of-the-box.png"}


def photo(rng: random.Random, size: int = 48) -> bytes:
    """A small picture (a block of one colour), as a PNG file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    colour = bytes(rng.randrange(40, 220) for _ in range(3))
    rows = b"".join(b"\x00" + colour * size for _ in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


class _Visitor:
    def __init__(self, url: str, origin: str, rng: random.Random, patience: float,
                 pause: tuple[float, float]) -> None:
        self.url, self.origin, self.rng, self.patience, self.pause = url, origin, rng, patience, pause
        self.language = rng.choice(("nl", "nl", "en"))
        self.lines = list(rng.choice(SCRIPTS[self.language]))
        self.sends_photo = rng.random() < 1 / 3
        self.ends_and_rates = rng.random() < 1 / 2

    async def chat(self) -> str:
        async with connect(f"{self.url}&lang={self.language}", origin=self.origin,  # type: ignore[arg-type]
                           open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "hello", "visitor": None, "after": 0, "lang": self.language,
                                      "page": f"{self.origin}/chat/try", "identifier": "", "identifier_hash": ""}))
            welcome = await self._next(ws, "welcome", 10)
            if welcome is None:
                return "no welcome"
            token = str(welcome.get("visitor") or "")
            for number, line in enumerate(self.lines):
                if number:
                    await ws.send(json.dumps({"type": "typing"}))
                    await asyncio.sleep(self.rng.uniform(*self.pause))
                await ws.send(json.dumps({"type": "message", "id": uuid.uuid4().hex, "text": line}))
                if number == 0 and self.sends_photo and await self._next(ws, "ack", 10):
                    await self._send_photo(token)  # after the first line is in: the chat exists
                if number == len(self.lines) - 1:
                    return await self._leave(ws)
                if await self._answer(ws) is None:
                    return f"left unanswered after {number + 1} messages"
        return "done"

    async def _send_photo(self, token: str) -> None:
        """A photo, uploaded as the widget does it: from the shop's page, with the visitor's token."""
        base = self.url.replace("ws", "http", 1).split("/chat/ws?site=", 1)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                f"{base[0]}/chat/attachments?site={base[1]}&lang={self.language}", content=photo(self.rng),
                headers={"Origin": self.origin, "Content-Type": "image/png", "X-Chat-Visitor": token,
                         "X-Chat-Message": uuid.uuid4().hex, "X-Chat-Filename": PHOTO_NAMES[self.language]})
        if response.status_code != 200:
            log.warning("a simulated visitor's photo was refused (%s): %s", response.status_code, response.text[:200])

    async def _leave(self, ws: ClientConnection) -> str:
        """After the last line: some wait for the agent's goodbye, end the chat and rate it."""
        if not self.ends_and_rates:
            return "done"
        answer = await self._answer(ws)
        if answer is None:
            return "done"
        await ws.send(json.dumps({"type": "end"}))
        chat_id = answer.get("chat")
        await ws.send(json.dumps({"type": "rating", "chat": chat_id, "score": self.rng.choice((3, 4, 4, 5, 5, 5))}))
        rated = await self._next(ws, "rated", 10)
        return "done, ended and rated" if rated else "done, ended (the rating was refused)"

    async def _answer(self, ws: ClientConnection) -> dict[str, object] | None:
        """The next message from an agent, or None when none came in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.patience
        while (left := deadline - loop.time()) > 0:
            frame = await self._next(ws, "message", left)
            if frame is None:
                return None
            message = frame.get("message")
            if isinstance(message, dict) and message.get("from") == "agent":
                await ws.send(json.dumps({"type": "read", "upto": message.get("id", 0)}))
                return message
        return None

    @staticmethod
    async def _next(ws: ClientConnection, kind: str, within: float) -> dict[str, object] | None:
        """The next frame of this kind within `within` seconds, or None."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while (left := deadline - loop.time()) > 0:
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), left))
            except TimeoutError:
                return None
            if isinstance(frame, dict) and frame.get("type") == kind:
                return frame
        return None


async def run_chat_visitors(
    url: str,
    site_key: str,
    origin: str,
    *,
    rate: float = 1.0,
    at_once: int = 2,
    staffing: Callable[[], Awaitable[int]] | None = None,
    patience: float = 180.0,
    pause: tuple[float, float] = (4.0, 10.0),
    rng: random.Random | None = None,
) -> None:
    """Bring simulated visitors to the chat until cancelled."""
    rng = rng or random.Random()
    socket_url = url.replace("http", "ws", 1).rstrip("/") + f"/chat/ws?site={site_key}"
    chats: set[asyncio.Task[None]] = set()
    interval = 60.0 / rate if rate > 0 else 1.0

    async def one() -> None:
        try:
            outcome = await _Visitor(socket_url, origin, rng, patience, pause).chat()
        except Exception as exc:  # one visitor's trouble must not stop the others
            log.warning("a simulated chat visitor failed: %s: %s", type(exc).__name__, exc)
        else:
            log.info("simulated chat visitor: %s", outcome)

    try:
        while True:
            await asyncio.sleep(interval * rng.uniform(0.6, 1.4))
            staffed = 0
            if staffing is not None:
                try:
                    staffed = await staffing()
                except Exception:
                    staffed = 0
            if staffed <= 0 or len(chats) >= at_once:
                continue
            task = asyncio.create_task(one())
            chats.add(task)
            task.add_done_callback(chats.discard)
    finally:
        for task in chats:
            task.cancel()
        await asyncio.gather(*chats, return_exceptions=True)
