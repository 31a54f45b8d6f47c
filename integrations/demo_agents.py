"""Demo colleagues: simulated agents who work the demo through the console's own doors.

Each logs in with the login form, keeps its agent page's socket open (so it is present, and the
simulated phone, visitors and mailers send work), goes available and reads its frames as a page
would: what rings it accepts after a few seconds; a chat it answers with a line or two and ends;
a mail it answers; a call the simulated phone connects and hangs up; then it wraps up with one of
the queue's dispositions. Now and then it takes a short break. So the wallboard moves while a
newcomer watches it as a supervisor, and the newcomer's own agent gets work beside them.

Everything goes through public endpoints (POST /login, WS /ws, the page's own POSTs); nothing
reads the database. Errors are logged and the colleague logs in again, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from websockets.asyncio.client import connect

log = logging.getLogger("integrations.demo_agents")

_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
_CSRF_HEADER = re.compile(r'"X-CSRF-Token": "([^"]+)"')
_ACCEPT = re.compile(r'hx-post="/conversations/(\d+)/accept"')
_CHAT = re.compile(r'hx-post="/conversations/(\d+)/messages"')
_MAIL = re.compile(r'hx-post="/conversations/(\d+)/replies"')
_WRAP_UP = re.compile(r'<form id="wrap-up-(\d+)".*?<select name="disposition"[^>]*>(.*?)</select>', re.S)
_OPTION = re.compile(r'<option value="([^"]+)"')

CHAT_LINES = {
    "nl": ("Goedemiddag! Ik kijk het even voor u na.", "Dank voor uw geduld, het is geregeld.",
           "Kan ik verder nog iets voor u doen?"),
    "en": ("Good afternoon! Let me look into that for you.", "Thanks for waiting, it is sorted.",
           "Is there anything else I can do for you?"),
}
Job = Callable[[httpx.AsyncClient, dict[str, str], int], Awaitable[None]]
MAIL_REPLY = ("Beste klant,\n\nDank voor uw bericht. We hebben het uitgezocht en het is geregeld; u hoort het "
              "als er nog iets nodig is.\n\nMet vriendelijke groet,\n{name}")


@dataclass
class _Desk:
    """What the colleague's page shows now, as far as it acts on it."""

    ringing: set[int] = field(default_factory=set)
    chats: set[int] = field(default_factory=set)
    mails: set[int] = field(default_factory=set)
    wrap_ups: dict[int, list[str]] = field(default_factory=dict)
    accepted: set[int] = field(default_factory=set)
    busy: set[tuple[int, str]] = field(default_factory=set)  # (conversation, job) a task works on now
    finished: set[tuple[int, str]] = field(default_factory=set)  # done: later frames of it change nothing


class Colleague:
    def __init__(self, url: str, email: str, password: str, name: str, *, rng: random.Random | None = None,
                 pace: float = 1.0, language: str = "nl") -> None:
        self.url = url.rstrip("/")
        self.email, self.password, self.name = email, password, name
        self.rng = rng or random.Random()
        self.pace = pace  # 1.0: human pauses; less in tests
        self.lines = CHAT_LINES.get(language, CHAT_LINES["en"])
        self.desk = _Desk()
        self.handled = 0

    async def work(self) -> None:
        """Log in and work until cancelled; start again after any failure."""
        while True:
            try:
                await self._shift()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("demo colleague %s stopped (%s: %s); logging in again shortly", self.email,
                            type(exc).__name__, exc)
            await asyncio.sleep(5 * self.pace)

    async def _shift(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=15) as client:
            token = await self._log_in(client)
            headers = {"X-CSRF-Token": token, "HX-Request": "true"}
            cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
            ws_url = self.url.replace("http", "ws", 1) + "/ws"
            async with connect(ws_url, origin=self.url,  # type: ignore[arg-type]
                               additional_headers={"Cookie": cookie}) as socket:
                await self._post(client, "/agent/status", headers, status="available")
                tasks: set[asyncio.Task[None]] = set()
                breaks = asyncio.create_task(self._breaks(client, headers))
                try:
                    async for frame in socket:
                        self._read(str(frame))
                        for task in self._due(client, headers):
                            tasks.add(task)
                            task.add_done_callback(tasks.discard)
                finally:
                    breaks.cancel()
                    for task in tasks:
                        task.cancel()

    async def _log_in(self, client: httpx.AsyncClient) -> str:
        page = await client.get("/login")
        found = _CSRF_FIELD.search(page.text)
        if found is None:
            raise RuntimeError("the login page has no form token")
        done = await client.post("/login", data={"email": self.email, "password": self.password,
                                                "csrf_token": found.group(1)})
        if done.status_code != 303:
            raise RuntimeError(f"login refused ({done.status_code})")
        token = _CSRF_HEADER.search((await client.get("/")).text)
        if token is None:
            raise RuntimeError("the agent page has no request token")
        return token.group(1)

    def _read(self, html: str) -> None:
        """Take in a frame: what rings, which chats and mails are open, what waits for wrap-up."""
        desk = self.desk
        desk.ringing |= {int(c) for c in _ACCEPT.findall(html)}
        desk.chats |= {int(c) for c in _CHAT.findall(html)}
        desk.mails |= {int(c) for c in _MAIL.findall(html)}
        for cid, options in _WRAP_UP.findall(html):
            desk.wrap_ups[int(cid)] = [o for o in _OPTION.findall(options) if o]

    def _due(self, client: httpx.AsyncClient, headers: dict[str, str]) -> list[asyncio.Task[None]]:
        """Start what the page now asks for: accept what rings; answer the chats and mails it
        accepted (their composers show while they still ring, disabled); wrap up what ended."""
        desk, started = self.desk, []
        work: list[tuple[int, Job]] = [(cid, self._accept) for cid in desk.ringing]
        work += [(cid, self._chat) for cid in desk.chats & desk.accepted]
        work += [(cid, self._mail) for cid in desk.mails & desk.accepted]
        work += [(cid, self._wrap_up) for cid in desk.wrap_ups]
        for cid, job in work:
            key = (cid, job.__name__)
            if key in desk.busy or key in desk.finished:
                continue
            desk.busy.add(key)
            started.append(asyncio.create_task(self._run(client, headers, cid, job, key)))
        return started

    async def _run(self, client: httpx.AsyncClient, headers: dict[str, str], cid: int, job: Job,
                   key: tuple[int, str]) -> None:
        try:
            await job(client, headers, cid)
            self.desk.finished.add(key)
        except Exception as exc:  # tried once: a chat the visitor ended, a contact taken elsewhere
            log.info("demo colleague %s: %s on conversation %s failed (%s)", self.email, job.__name__, cid, exc)
            if job != self._accept:
                self.desk.finished.add(key)
        finally:
            self.desk.busy.discard(key)

    async def _pause(self, low: float, high: float) -> None:
        await asyncio.sleep(self.rng.uniform(low, high) * self.pace)

    async def _accept(self, client: httpx.AsyncClient, headers: dict[str, str], cid: int) -> None:
        await self._pause(2, 6)
        self.desk.ringing.discard(cid)
        response = await self._post(client, f"/conversations/{cid}/accept", headers, ok=(204, 409))
        if response.status_code == 204:
            self.desk.accepted.add(cid)

    async def _chat(self, client: httpx.AsyncClient, headers: dict[str, str], cid: int) -> None:
        for line in self.lines[:self.rng.randint(2, 3)]:
            await self._pause(4, 10)
            await self._post(client, f"/conversations/{cid}/messages", headers, client_id=uuid.uuid4().hex,
                             text=line)
        await self._pause(5, 15)
        self.desk.chats.discard(cid)
        await self._post(client, f"/conversations/{cid}/end", headers, ok=(204, 409))

    async def _mail(self, client: httpx.AsyncClient, headers: dict[str, str], cid: int) -> None:
        await self._pause(10, 30)
        await self._post(client, f"/conversations/{cid}/replies", headers, client_id=uuid.uuid4().hex,
                         text=MAIL_REPLY.format(name=self.name))
        await self._pause(2, 5)
        self.desk.mails.discard(cid)
        await self._post(client, f"/conversations/{cid}/end", headers, ok=(204, 409))

    async def _wrap_up(self, client: httpx.AsyncClient, headers: dict[str, str], cid: int) -> None:
        await self._pause(3, 12)
        codes = self.desk.wrap_ups.pop(cid, [])
        if codes:
            await self._post(client, f"/conversations/{cid}/wrap-up", headers, ok=(204, 409),
                             disposition=self.rng.choice(codes))
            self.handled += 1

    async def _breaks(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        """A short break now and then (the wallboard shows them away, with the reason)."""
        while True:
            await self._pause(420, 900)
            await self._post(client, "/agent/status", headers, status="away", reason="Break")
            await self._pause(60, 150)
            await self._post(client, "/agent/status", headers, status="available")

    async def _post(self, client: httpx.AsyncClient, path: str, headers: dict[str, str], *,
                    ok: tuple[int, ...] = (204,), **form: str) -> httpx.Response:
        response = await client.post(path, data=form, headers=headers)
        if response.status_code not in ok:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text[:200]}")
        return response


async def run_colleagues(url: str, colleagues: list[tuple[str, str, str, str]], *, pace: float = 1.0,
                         rng: random.Random | None = None) -> None:
    """Work as each of `colleagues` ((email, password, name, language)) until cancelled."""
    rng = rng or random.Random()
    workers = [Colleague(url, email, password, name, rng=random.Random(rng.random()), pace=pace, language=language)
               for email, password, name, language in colleagues]
    await asyncio.gather(*(worker.work() for worker in workers))
