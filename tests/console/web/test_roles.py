"""Every route, asked by every role: the table says who gets what.

The roles: the agent who holds the conversation, ticket and handoff in the path (Anna; for the
handoff's accept and decline the colleague it was offered to, Bram); another agent who has nothing
to do with them (Carla); a supervisor; an admin; and someone logged out. Each request runs on a
fresh copy of the same database, so one answer never depends on another, and a refusal (any 4xx)
must leave the database exactly as it was. A route that is not in the table fails the test: a new
route states its rule the day it is added.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from starlette.routing import Route

from console import chat, config, conversations, handoffs, offers, profile, routing, tickets
from console.db import Database
from console.migrations import upgrade
from console.models import Channel, ContactPoint, Tier
from console.ports import Context, NullNotifier
from tests.conftest import make_settings, served
from tests.helpers import PASSWORD, add_agent, add_customer, log_in

ROLES = ("holder", "other", "supervisor", "admin", "anonymous")
HOLDER, OTHER, SUPERVISOR, ADMIN = "anna@x.nl", "carla@x.nl", "sanne@x.nl", "alex@x.nl"
UNCHANGED_TABLES_SKIP = {"login_attempts", "live_sockets", "alembic_version"}

# Answers per role, in the order of ROLES. Logged out: 401 for what htmx asks (it goes to the
# login page), 303 to the login page for the page itself; signed in, the login page sends you to
# the console. 403: the role may not, whatever the state. 409: the state does not allow it (the
# call is active, so it cannot be accepted again; a call ends when it is hung up; its customer is
# on a live call, so it cannot be erased), and for what only the agent who holds a conversation
# *now* may do (link its customer, answer a handoff meant for them) the same "not yours (any
# more)", because a conversation that moves to a colleague mid-click is the usual case.
#                                                     holder other  super  admin  anon
TABLE: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("GET", "/"):                                       (200, 200, 200, 200, 303),
    ("GET", "/supervisor"):                             (403, 403, 200, 200, 303),
    ("GET", "/reports"):                                (403, 403, 200, 200, 303),
    ("GET", "/reports/{table}.csv"):                    (403, 403, 200, 200, 401),
    ("GET", "/supervisor/agents/{id}"):                 (403, 403, 200, 200, 401),
    ("POST", "/supervisor/agents/{id}/status"):         (403, 403, 200, 200, 401),
    ("GET", "/supervisor/conversations/{id}"):          (403, 403, 200, 200, 401),
    ("POST", "/supervisor/conversations/{id}/reassign"): (403, 403, 409, 409, 401),  # it is active
    ("GET", "/supervisor/agents/{id}/watch"):           (403, 403, 200, 200, 303),
    ("POST", "/supervisor/conversations/{id}/whisper"): (403, 403, 409, 409, 401),  # a call, not a chat
    ("POST", "/supervisor/conversations/{id}/take-over"): (403, 403, 409, 409, 401),
    ("GET", "/login"):                                  (303, 303, 303, 303, 200),
    ("POST", "/agent/status"):                          (204, 204, 204, 204, 401),
    ("POST", "/agent/language"):                        (204, 204, 204, 204, 401),
    ("GET", "/account"):                                (200, 200, 200, 200, 401),
    ("POST", "/account/password"):                      (204, 204, 204, 204, 401),
    ("POST", "/conversations/{id}/customer"):           (204, 409, 409, 409, 401),
    ("POST", "/conversations/{id}/accept"):             (409, 409, 409, 409, 401),
    ("POST", "/conversations/{id}/decline"):            (409, 409, 409, 409, 401),
    ("POST", "/conversations/{id}/wrap-up"):            (409, 409, 409, 409, 401),
    ("POST", "/conversations/{id}/end"):                (409, 409, 409, 409, 401),
    ("POST", "/conversations/{id}/messages"):           (422, 409, 409, 409, 401),
    ("POST", "/conversations/{id}/replies"):            (422, 409, 409, 409, 401),  # a call: no mail
    ("POST", "/conversations/{id}/typing"):             (422, 409, 409, 409, 401),
    ("POST", "/conversations/{id}/read"):               (422, 409, 409, 409, 401),
    ("POST", "/conversations/{id}/attachments"):        (422, 409, 409, 409, 401),  # a call: no files
    ("GET", "/attachments/{id}"):                       (404, 404, 404, 404, 401),
    ("GET", "/mails/{id}/html"):                        (404, 404, 404, 404, 401),
    ("POST", "/mails/{id}/send-again"):                 (404, 404, 404, 404, 401),
    ("POST", "/conversations/{id}/customers"):          (204, 409, 409, 409, 401),
    ("POST", "/conversations/{id}/notes"):              (204, 403, 204, 204, 401),
    ("POST", "/conversations/{id}/handoff"):            (409, 409, 409, 409, 401),
    ("POST", "/handoffs/{id}/accept"):                  (204, 409, 409, 409, 401),
    ("POST", "/handoffs/{id}/decline"):                 (204, 409, 409, 409, 401),
    ("POST", "/handoffs/{id}/cancel"):                  (204, 409, 409, 409, 401),
    ("GET", "/pickers/{kind}"):                         (200, 200, 200, 200, 401),
    ("GET", "/tickets"):                                (200, 200, 200, 200, 401),
    ("POST", "/tickets"):                               (200, 403, 200, 200, 401),
    ("GET", "/tickets/{id}"):                           (200, 200, 200, 200, 401),
    ("POST", "/tickets/{id}"):                          (200, 403, 200, 200, 401),
    ("POST", "/tickets/{id}/comments"):                 (200, 403, 200, 200, 401),
    ("GET", "/customers/search"):                       (200, 200, 200, 200, 401),
    ("POST", "/customers/close"):                       (204, 204, 204, 204, 401),
    ("POST", "/customers/{id}/open"):                   (204, 204, 204, 204, 401),
    ("POST", "/customers/{id}"):                        (200, 200, 200, 200, 401),
    ("GET", "/customers/{id}/edit"):                    (200, 200, 200, 200, 401),
    ("POST", "/customers/{id}/notes"):                  (204, 204, 204, 204, 401),
    ("POST", "/customers/{id}/mails"):                  (422, 422, 422, 422, 401),  # nothing written
    ("POST", "/customers/{id}/contact-points"):         (204, 204, 204, 204, 401),
    ("POST", "/customers/{id}/addresses"):              (204, 204, 204, 204, 401),
    ("POST", "/customers/{id}/contact-points/{detail}/delete"): (204, 204, 204, 204, 401),
    ("POST", "/customers/{id}/addresses/{detail}/delete"):      (204, 204, 204, 204, 401),
    ("POST", "/customers/{id}/contracts"):              (204, 204, 204, 204, 401),
    ("POST", "/customers/{id}/contracts/{detail}"):     (204, 204, 204, 204, 401),
    ("GET", "/customers/{id}/export"):                  (403, 403, 200, 200, 401),
    ("GET", "/customers/{id}/export.json"):             (403, 403, 200, 200, 401),
    ("POST", "/customers/{id}/erase"):                  (403, 403, 409, 409, 401),
    ("GET", "/customers/{id}/duplicates"):              (200, 200, 200, 200, 401),
    ("GET", "/audit/{entity}/{id}"):                    (403, 403, 200, 200, 401),
    ("POST", "/customers/{id}/merge"):                  (403, 403, 200, 200, 401),
    ("GET", "/duplicates"):                             (200, 200, 200, 200, 401),
    ("GET", "/canned"):                                 (200, 200, 200, 200, 401),
    ("POST", "/canned"):                                (403, 403, 200, 200, 401),
    ("POST", "/canned/{id}"):                           (403, 403, 200, 200, 401),
    ("POST", "/canned/{id}/delete"):                    (403, 403, 200, 200, 401),
    ("GET", "/canned/{id}/fill"):                       (200, 403, 200, 200, 401),
    # The admin pages: admins only, whatever the state ({id} is Anna, the queue or the chat site).
    ("GET", "/admin"):                                  (403, 403, 403, 200, 401),
    ("GET", "/admin/agents"):                           (403, 403, 403, 200, 401),
    ("POST", "/admin/agents"):                          (403, 403, 403, 200, 401),
    ("GET", "/admin/agents/{id}"):                      (403, 403, 403, 200, 401),
    ("POST", "/admin/agents/{id}"):                     (403, 403, 403, 200, 401),
    ("POST", "/admin/agents/{id}/password"):            (403, 403, 403, 200, 401),
    ("POST", "/admin/agents/{id}/deactivate"):          (403, 403, 403, 200, 401),
    ("POST", "/admin/agents/{id}/reactivate"):          (403, 403, 403, 200, 401),  # active already: no change
    ("POST", "/admin/agents/{id}/totp"):                (403, 403, 403, 200, 401),  # off (Anna is an agent)
    ("GET", "/admin/queues"):                           (403, 403, 403, 200, 401),
    ("POST", "/admin/queues"):                          (403, 403, 403, 204, 401),  # on to the new queue
    ("GET", "/admin/queues/{id}"):                      (403, 403, 403, 200, 401),
    ("POST", "/admin/queues/{id}"):                     (403, 403, 403, 200, 401),
    ("GET", "/admin/skills"):                           (403, 403, 403, 200, 401),
    ("POST", "/admin/skills"):                          (403, 403, 403, 200, 401),
    ("GET", "/admin/dispositions"):                     (403, 403, 403, 200, 401),
    ("POST", "/admin/dispositions"):                    (403, 403, 403, 200, 401),
    ("GET", "/admin/chat-sites"):                       (403, 403, 403, 200, 401),
    ("POST", "/admin/chat-sites"):                      (403, 403, 403, 204, 401),  # on to the new site
    ("GET", "/admin/chat-sites/{id}"):                  (403, 403, 403, 200, 401),
    ("POST", "/admin/chat-sites/{id}"):                 (403, 403, 403, 200, 401),
    ("GET", "/admin/connections"):                      (403, 403, 403, 200, 401),
    ("GET", "/healthz"):                                (200, 200, 200, 200, 200),
    ("GET", "/chat/widget.js"):                         (200, 200, 200, 200, 200),
    ("GET", "/chat/try"):                               (404, 404, 404, 404, 404),  # only in the demo
    # The widget's files answer to the site's key and the visitor's token, or to a signed link.
    ("POST", "/chat/attachments"):                      (404, 404, 404, 404, 404),
    ("GET", "/chat/files/{id}"):                        (403, 403, 403, 403, 403),
    ("GET", "/openapi.json"):                           (200, 200, 200, 200, 200),
    # Operators only, by address or token, whoever is logged in (the test client is on loopback).
    ("GET", "/readyz"):                                 (200, 200, 200, 200, 200),
    ("GET", "/metrics"):                                (200, 200, 200, 200, 200),
}
# Covered by their own tests: logging in and out changes who the client is.
# The phone systems' endpoints answer to their token or signature, not to a session (tests/integrations).
OWN_TESTS = {("POST", "/login"), ("POST", "/login/code"), ("POST", "/logout"), ("POST", "/integrations/cti/{token}"),
             *(("POST", f"/integrations/twilio/voice{step}") for step in ("", "/wait", "/dialed", "/status")),
             ("POST", "/integrations/twilio/messaging"), ("POST", "/integrations/twilio/messaging/status")}


@dataclass
class World:
    """The template database and what its rows are."""

    path: Path
    ids: dict[str, int]
    cookies: dict[str, tuple[dict[str, str], str]]  # email: (cookies, CSRF token)


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def _build(path: Path, tmp: Path) -> World:
    url = _url(path)
    await asyncio.to_thread(upgrade, url)
    db = Database(url)
    ctx = Context(db, NullNotifier(), "NL")
    try:
        anna = await add_agent(db, HOLDER, "Anna", extension="201")
        bram = await add_agent(db, "bram@x.nl", "Bram", extension="202")
        await add_agent(db, OTHER, "Carla", extension="203")
        await add_agent(db, SUPERVISOR, "Sanne", role="supervisor")
        await add_agent(db, ADMIN, "Alex", role="admin")
        jan = await add_customer(db, "Jan Jansen", phones=("0612345678",), tier=Tier.A)
        piet = await add_customer(db, "Jan Janssen", phones=("0687654321",))
        await profile.add_address(ctx, anna, jan, kind="postal", street="Dorpsstraat 1", postal_code="1234 AB",
                                  city="Utrecht", country="NL")
        await profile.add_contract(ctx, anna, jan, title="Onderhoud", status="active", starts_on="", ends_on="",
                                   terms="")
        await routing.set_status(ctx, anna, "available")
        await routing.set_status(ctx, bram, "available")
        call = await conversations.arrive(ctx, channel=Channel.CALL, external_id="c1", from_address="0612345678",
                                          to_address="0201234567")
        await offers.accept(ctx, anna, call.conversation_id)
        handoff = await handoffs.start(ctx, anna, call.conversation_id, handoffs.Target(agent_id=bram), "warm",
                                       "Wants the contract changed")
        ticket = await tickets.open_ticket(ctx, anna, tickets.Draft(
            subject="Contract", conversation_id=call.conversation_id, assignee_id=anna))
        async with db.transaction() as session:
            point = await session.scalar(text("SELECT id FROM contact_points WHERE customer_id = :c"), {"c": jan})
            address = await session.scalar(text("SELECT id FROM addresses"))
            contract = await session.scalar(text("SELECT id FROM contracts"))
            await session.execute(text("INSERT INTO canned_responses (title, body, updated_at) "
                                       "VALUES ('Hello', 'Dear {customer.first_name}', '2026-12-01 10:00:00')"))
            canned = await session.scalar(text("SELECT id FROM canned_responses"))
            await config.add_skill(session, "german")
            queue, _ = await config.configure_queue(session, "service", config.QueueSettings(dispositions=["done"]))
            site, _ = await chat.configure_site(session, "Shop", chat.SiteSettings(origins=["https://shop.x.nl"]))
        assert ContactPoint and point and address and contract and canned
    finally:
        await db.close()
    ids = {"conversation": call.conversation_id, "handoff": handoff.id, "ticket": ticket.id, "customer": jan,
           "other_customer": piet, "contact_point": int(point), "address": int(address), "contract": int(contract),
           "canned": int(canned), "anna": anna, "bram": bram, "queue": queue.id, "site": site.id}
    cookies: dict[str, tuple[dict[str, str], str]] = {}
    async with served(make_settings(url, tmp)) as (_, client):
        for email in (HOLDER, "bram@x.nl", OTHER, SUPERVISOR, ADMIN):
            client.cookies.clear()
            token = await log_in(client, email)  # type: ignore[arg-type]
            cookies[email] = (dict(client.cookies), token)  # type: ignore[attr-defined]
    return World(path, ids, cookies)


def _request(world: World, method: str, pattern: str) -> tuple[str, dict[str, str]]:
    """The path with the world's ids, and a form that is valid for the route."""
    ids = world.ids
    customer, conversation, ticket = ids["customer"], ids["conversation"], ids["ticket"]
    detail = {"contact-points": ids["contact_point"], "addresses": ids["address"], "contracts": ids["contract"]}
    path = pattern
    if "{detail}" in path:
        kind = path.split("/")[3]
        path = path.replace("{detail}", str(detail[kind]))
    key = {"/conversations/": conversation, "/handoffs/": ids["handoff"], "/tickets/": ticket,
           "/customers/": customer, "/canned/": ids["canned"], "/audit/": customer, "/attachments/": 99, "/mails/": 99,
           "/chat/files/": 1, "/admin/agents/": ids["anna"], "/admin/queues/": ids["queue"],
           "/admin/chat-sites/": ids["site"], "/supervisor/agents/": ids["anna"],
           "/supervisor/conversations/": conversation}
    for prefix, value in key.items():
        if path.startswith(prefix):
            path = path.replace("{id}", str(value))
    path = path.replace("{entity}", "customer").replace("{kind}", "handoff").replace("{table}", "queue")
    forms: dict[str, dict[str, str]] = {
        "/agent/status": {"status": "available"},
        "/agent/language": {"language": "nl"},
        "/account/password": {"current": PASSWORD, "password": "a-new-password", "repeat": "a-new-password"},
        f"/conversations/{conversation}/customer": {"customer_id": str(ids["other_customer"])},
        f"/conversations/{conversation}/wrap-up": {"disposition": "resolved"},
        f"/conversations/{conversation}/customers": {"name": "Nieuwe Klant"},
        f"/conversations/{conversation}/notes": {"body": "Wants a callback"},
        f"/conversations/{conversation}/messages": {"client_id": "m-1", "text": "Hello"},
        f"/conversations/{conversation}/replies": {"client_id": "r-1", "text": "Hello"},
        f"/conversations/{conversation}/read": {"upto": "10"},
        f"/conversations/{conversation}/handoff": {"target": f"agent:{ids['bram']}", "mode": "cold", "note": "x"},
        f"/handoffs/{ids['handoff']}/decline": {"reason": "Busy"},
        "/tickets": {"subject": "Follow up", "conversation_id": str(conversation), "priority": "normal"},
        f"/tickets/{ticket}": {"version": "1", "subject": "Contract change", "priority": "high", "status": "open",
                               "assignee_id": str(ids["anna"])},
        f"/tickets/{ticket}/comments": {"body": "Called back"},
        f"/customers/{customer}": {"version": "3", "name": "Jan Jansen", "tier": "A", "lifetime_value": "0"},
        f"/customers/{customer}/notes": {"body": "Prefers mail"},
        f"/customers/{customer}/contact-points": {"kind": "email", "value": "jan@jansen.nl"},
        f"/customers/{customer}/addresses": {"kind": "billing", "street": "Kerkweg 2", "city": "Utrecht",
                                             "country": "NL"},
        f"/customers/{customer}/contracts": {"title": "Service", "status": "active"},
        f"/customers/{customer}/contracts/{ids['contract']}": {"title": "Onderhoud plus", "status": "active"},
        f"/customers/{customer}/merge": {"other_id": str(ids["other_customer"])},
        "/canned": {"title": "Bye", "body": "Goodbye"},
        f"/supervisor/agents/{ids['anna']}/status": {"status": "away", "reason": "Break"},
        f"/supervisor/conversations/{conversation}/reassign": {"queue": str(ids["queue"])},
        f"/supervisor/conversations/{conversation}/whisper": {"text": "Offer the voucher"},
        f"/canned/{ids['canned']}": {"title": "Hello", "body": "Hi {customer.first_name}"},
        "/admin/agents": {"email": "dirk@x.nl", "name": "Dirk", "role": "agent", "language": "en"},
        f"/admin/agents/{ids['anna']}": {"name": "Anna", "role": "agent", "extension": "201", "language": "en",
                                  "capacity_call": "1", "capacity_chat": "2", "capacity_mail": "5",
                                  "skills": "german:2"},
        f"/admin/agents/{ids['anna']}/password": {"password": "a-chosen-password"},
        f"/admin/agents/{ids['anna']}/totp": {"totp": "off"},
        "/admin/queues": {"name": "billing"},
        f"/admin/queues/{ids['queue']}": {
            "offer_seconds": "25", "wrap_up_seconds": "60", "owner_first_seconds": "15",
            "service_level_seconds": "20", "service_level_goal": "80", "short_abandon_seconds": "5",
            "longest_wait_seconds": "60", "weight_a": "3", "weight_b": "2", "weight_c": "1", "skills": "german:1",
            "dispositions": "done\nescalated"},
        "/admin/skills": {"skill": "french"},
        "/admin/dispositions": {"dispositions": "resolved\nsale"},
        "/admin/chat-sites": {"name": "Blog", "origins": "https://blog.x.nl", "timezone": "Europe/Amsterdam",
                              "idle_minutes": "10"},
        f"/admin/chat-sites/{ids['site']}": {"origins": "https://www.shop.x.nl", "timezone": "Europe/Amsterdam",
                                             "idle_minutes": "5"},
    }
    query = {"/customers/search": "?q=Jan", f"/canned/{ids['canned']}/fill": f"?conversation={conversation}"}
    return path + query.get(path, ""), forms.get(path, {}) if method == "POST" else {}


async def _digest(url: str) -> str:
    """Every row of every table (but login bookkeeping), for 'a refusal changes nothing'."""
    db = Database(url)
    digest = hashlib.sha256()
    try:
        async with db.engine.connect() as connection:
            names = [row[0] for row in await connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"))]
            for name in names:
                if name in UNCHANGED_TABLES_SKIP:
                    continue
                # Reading is audited too (a refused change shows the ticket again): not a change.
                where = " WHERE action <> 'view'" if name == "audit_events" else ""
                rows = await connection.execute(text(f'SELECT * FROM "{name}"{where} ORDER BY 1'))
                digest.update(repr((name, [tuple(r) for r in rows])).encode())
    finally:
        await db.close()
    return digest.hexdigest()


async def _answer(world: World, tmp: Path, method: str, pattern: str, role: str) -> tuple[int, str, bool]:
    case = tmp / "case.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(case) + suffix).unlink(missing_ok=True)
    shutil.copyfile(world.path, case)
    url = _url(case)
    before = await _digest(url)
    path, form = _request(world, method, pattern)
    email = {"holder": "bram@x.nl" if pattern in ("/handoffs/{id}/accept", "/handoffs/{id}/decline") else HOLDER,
             "other": OTHER, "supervisor": SUPERVISOR, "admin": ADMIN}.get(role)
    headers = {"HX-Request": "true"}
    cookies: dict[str, str] = {}
    if email is not None:
        cookies, token = world.cookies[email]
        headers["X-CSRF-Token"] = token
    async with served(make_settings(url, tmp), cookies=cookies) as (_, client):
        response = await client.request(method, path, data=form or None, headers=headers)  # type: ignore[attr-defined]
    unchanged = await _digest(url) == before
    return response.status_code, response.text[:200], unchanged


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("roles")
    return asyncio.run(_build(tmp / "template.db", tmp))


def test_every_route_is_in_the_table(tmp_path: Path) -> None:
    from console.web.app import create_app

    app = create_app(make_settings(_url(tmp_path / "x.db"), tmp_path))
    routes = {(method, route.path.replace(":int", "")) for route in app.routes if isinstance(route, Route)
              for method in (route.methods or ()) if method in ("GET", "POST")}
    assert routes - set(TABLE) - OWN_TESTS == set(), "a route without its rule in the table"
    assert set(TABLE) - routes == set(), "the table names a route the app does not have"


@pytest.mark.parametrize("route", sorted(TABLE), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_role_gets_the_answer_the_table_says(route: tuple[str, str], world: World, tmp_path: Path) -> None:
    method, pattern = route
    found: dict[str, Any] = {}
    for role in ROLES:
        status, body, unchanged = asyncio.run(_answer(world, tmp_path, method, pattern, role))
        found[role] = status
        if 400 <= status < 500:
            assert unchanged, f"{method} {pattern} as {role}: refused with {status} but changed the database"
        assert status < 500, f"{method} {pattern} as {role}: {status} {body}"
    assert tuple(found[r] for r in ROLES) == TABLE[route], f"{method} {pattern}: {found}"
