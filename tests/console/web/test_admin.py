"""The admin pages over HTTP: what an admin sets there works, a bad value is shown in the form
with what was typed and stores nothing, and only admins get in."""

from __future__ import annotations

import asyncio
import collections
import html
import logging
import re
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from console.db import Database
from console.models import Agent, AgentSkill, AuditEvent, ChatSite, Disposition, Queue, QueueSkill, Role
from tests.conftest import make_settings, served
from tests.helpers import PASSWORD, add_agent, add_customer, form_token, log_in

HX = {"HX-Request": "true"}
PAGE = {"Accept": "text/html"}
HOSTILE = st.one_of(
    st.text(alphabet=st.characters(categories=["Cc", "L", "N", "P", "S", "Z"]), max_size=80),
    st.sampled_from(["1", "0", "-1", "999999999999", "1e9", "NaN", "inf", "2,5", "agent", "admin", "nl", "german:3",
                     "german:11", "german:x", "klingon:1", "service", "https://x.nl", "x" * 600, "Mars/Base",
                     "mon-fri 09:00-17:00", "../../etc/passwd", "<b>x</b>", " ", "https://a.nl\nhttps://a.nl"]))


async def prepare(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        return {"alex": await add_agent(db, "alex@x.nl", "Alex", role="admin"),
                "anna": await add_agent(db, "anna@x.nl", "Anna", extension="201"),
                "sanne": await add_agent(db, "sanne@x.nl", "Sanne", role="supervisor")}
    finally:
        await db.close()


async def as_admin(client: httpx.AsyncClient) -> dict[str, str]:
    return {"X-CSRF-Token": await log_in(client, "alex@x.nl"), **HX}


def shown_password(html: str) -> str:
    found = re.search(r'<code class="new-password">([^<]+)</code>', html)
    assert found, "the new password is shown once"
    return found.group(1)


async def count(url: str, model: type) -> int:
    db = Database(url)
    try:
        async with db.reading() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        await db.close()


async def test_an_admin_creates_an_agent_who_logs_in_with_the_password_shown(database_url: str,
                                                                            tmp_path: Path) -> None:
    ids = await prepare(database_url)
    async with served(make_settings(database_url, tmp_path)) as (_, client):
        headers = await as_admin(client)
        page = await client.get("/admin/agents", headers=PAGE)
        assert page.status_code == 200 and "New agent" in page.text and 'href="/admin"' in page.text
        assert '"X-CSRF-Token"' in page.text, "the page's forms send the CSRF token"
        made = await client.post("/admin/agents", headers=headers, data={
            "email": "Bram@X.nl", "name": "Bram Jansen", "password": "", "role": "agent", "extension": "202",
            "language": "nl"})
        assert made.status_code == 200 and "Bram Jansen can log in now as bram@x.nl" in made.text
        assert made.headers["cache-control"] == "no-store"
        password = shown_password(made.text)
        listed = await client.get("/admin/agents", headers=PAGE)
        assert password not in listed.text, "shown once only"
    async with served(make_settings(database_url, tmp_path)) as (_, bram):
        await log_in(bram, "bram@x.nl", password)
        assert "Bram Jansen" in (await bram.get("/")).text
    db = Database(database_url)
    try:
        async with db.reading() as session:
            made_by = await session.scalar(select(AuditEvent.agent_id).where(AuditEvent.action == "create"))
            bram_row = await session.scalar(select(Agent).where(Agent.email == "bram@x.nl"))
        assert made_by == ids["alex"], "the audit trail says which admin created the agent"
        assert bram_row is not None and (bram_row.extension, bram_row.language) == ("202", "nl")
    finally:
        await db.close()


async def test_a_bad_new_agent_is_shown_in_the_form_and_stores_nothing(sqlite_url: str, tmp_path: Path) -> None:
    await prepare(sqlite_url)
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client):
        headers = await as_admin(client)
        short = await client.post("/admin/agents", headers=headers, data={
            "email": "kees@x.nl", "name": "Kees", "password": "short", "role": "agent", "language": "en"})
        assert short.status_code == 422 and "A password needs at least 8 characters." in short.text
        assert 'id="error-password"' in short.text and 'value="kees@x.nl"' in short.text, "typed values stay"
        taken = await client.post("/admin/agents", headers=headers, data={
            "email": "kees@x.nl", "name": "Kees", "role": "agent", "extension": "201", "language": "en"})
        assert taken.status_code == 409 and "extension 201 belongs to anna@x.nl" in taken.text
        assert 'id="error-extension"' in taken.text
        again = await client.post("/admin/agents", headers=headers, data={
            "email": "ANNA@x.nl", "name": "Anna 2", "role": "agent", "language": "en"})
        assert again.status_code == 409 and "exists already" in again.text
        nul = await client.post("/admin/agents", headers=headers, data={"email": "a\x00@x.nl", "name": "A"})
        assert nul.status_code == 422 and "control characters" in nul.text
        role = await client.post("/admin/agents", headers=headers, data={
            "email": "kees@x.nl", "name": "Kees", "role": "root", "language": "en"})
        assert role.status_code == 422 and "role must be agent, supervisor or admin, not root" in role.text
    assert await count(sqlite_url, Agent) == 3


async def test_an_agents_settings_are_saved_together_or_not_at_all(database_url: str, tmp_path: Path) -> None:
    ids = await prepare(database_url)
    async with served(make_settings(database_url, tmp_path)) as (_, client), \
            served(make_settings(database_url, tmp_path)) as (_, anna):
        headers = await as_admin(client)
        await log_in(anna, "anna@x.nl")
        assert (await client.post("/admin/skills", headers=headers, data={"skill": "German"})).status_code == 200
        edit = {"name": "Anna de Vries", "role": "agent", "extension": "201", "language": "en",
                "capacity_call": "1", "capacity_chat": "-1", "capacity_mail": "5", "skills": "german:3"}
        refused = await client.post(f"/admin/agents/{ids['anna']}", headers=headers, data=edit)
        assert refused.status_code == 422 and "Enter a whole number, 0 or more." in refused.text
        assert 'aria-invalid="true" aria-describedby="error-capacity_chat"' in refused.text
        assert 'value="Anna de Vries"' in refused.text and 'value="german:3" selected' in refused.text
        too_many = await client.post(f"/admin/agents/{ids['anna']}", headers=headers,
                                     data={**edit, "capacity_chat": "51"})
        assert too_many.status_code == 422 and "chat capacity must be between 0 and 50, not 51" in too_many.text
        db = Database(database_url)
        try:
            async with db.reading() as session:
                agent = await session.get(Agent, ids["anna"])
                assert agent is not None and agent.name == "Anna" and agent.capacity_chat == 3, "nothing half-saved"
                assert await session.scalar(select(func.count()).select_from(AgentSkill)) == 0

            saved = await client.post(f"/admin/agents/{ids['anna']}", headers=headers,
                                      data={**edit, "capacity_chat": "2", "role": "supervisor"})
            assert saved.status_code == 200 and "Saved." in saved.text
            async with db.reading() as session:
                agent = await session.get(Agent, ids["anna"])
                assert agent is not None and (agent.name, agent.role, agent.capacity_chat) == (
                    "Anna de Vries", Role.SUPERVISOR, 2)
                assert await session.scalar(select(AgentSkill.level)) == 3
                detail = await session.scalar(select(AuditEvent.detail).where(
                    AuditEvent.agent_id == ids["alex"], AuditEvent.action == "update"))
                assert detail is not None and "role supervisor" in detail and "chat capacity 2" in detail
        finally:
            await db.close()
        assert (await anna.get("/tickets", headers=HX)).status_code == 401, "a new role ends their sessions"
        page = await client.get(f"/admin/agents/{ids['anna']}", headers=PAGE)
        assert "role supervisor" in page.text and "Alex" in page.text, "the page shows the audit trail"
        own = await client.post(f"/admin/agents/{ids['alex']}", headers=headers, data={
            **edit, "name": "Alex", "extension": "", "capacity_chat": "3", "role": "agent", "skills": ""})
        assert own.status_code == 422 and "cannot take away your own admin role" in own.text


async def login_answer(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/login")
    return await client.post("/login", data={"email": email, "password": password,
                                             "csrf_token": form_token(page.text)})


async def test_deactivating_ends_the_login_until_reactivated(database_url: str, tmp_path: Path) -> None:
    ids = await prepare(database_url)
    db = Database(database_url)
    customer = await add_customer(db, "Jan Jansen", owner_id=ids["anna"])
    async with served(make_settings(database_url, tmp_path)) as (_, client), \
            served(make_settings(database_url, tmp_path)) as (_, anna), \
            served(make_settings(database_url, tmp_path)) as (_, sanne):
        headers = await as_admin(client)
        await log_in(anna, "anna@x.nl")
        sanne_headers = {"X-CSRF-Token": await log_in(sanne, "sanne@x.nl"), **HX}
        done = await client.post(f"/admin/agents/{ids['anna']}/deactivate", headers=headers)
        assert done.status_code == 200 and "Anna is deactivated" in done.text
        assert ">Reactivate</button>" in done.text and "/deactivate" not in done.text
        assert (await anna.get("/tickets", headers=HX)).status_code == 401, "their session ended"
        anna.cookies.clear()
        refused = await login_answer(anna, "anna@x.nl")
        assert refused.status_code == 403 and "This account is deactivated. Ask an administrator." in refused.text
        wrong = await login_answer(anna, "anna@x.nl", "not her password")
        assert wrong.status_code == 400 and "deactivated" not in wrong.text, "a wrong password tells nothing"
        listed = await client.get("/admin/agents", headers=PAGE)
        assert listed.status_code == 200 and 'class="deactivated"' in listed.text and "Anna" in listed.text
        # Pickers leave her out: the ticket assignee list; the customer's owner only as the current owner.
        assignees = await sanne.get("/pickers/assignee", headers=sanne_headers)
        assert assignees.status_code == 200 and "Anna" not in assignees.text and "Alex" in assignees.text
        owner = await sanne.get(f"/customers/{customer}/edit", headers=sanne_headers)
        assert owner.status_code == 200 and f'value="{ids["anna"]}" selected' in owner.text
        self_off = await client.post(f"/admin/agents/{ids['alex']}/deactivate", headers=headers)
        assert self_off.status_code == 409 and "cannot deactivate yourself" in self_off.text
        reset = await client.post(f"/admin/agents/{ids['anna']}/password", headers=headers,
                                  data={"password": "her new password"})
        assert reset.status_code == 200 and reset.headers["cache-control"] == "no-store"
        assert shown_password(reset.text) == "her new password"
        assert (await login_answer(anna, "anna@x.nl", "her new password")).status_code == 403, "still deactivated"
        back = await client.post(f"/admin/agents/{ids['anna']}/reactivate", headers=headers)
        assert back.status_code == 200 and "Anna is active again" in back.text and "/deactivate" in back.text
        await log_in(anna, "anna@x.nl", "her new password")
        assert "Anna" in (await sanne.get("/pickers/assignee", headers=sanne_headers)).text
        missing = await client.post("/admin/agents/999/reactivate", headers=headers)
        assert missing.status_code == 404
    try:
        async with db.reading() as session:
            actions = list(await session.scalars(select(AuditEvent.action).where(
                AuditEvent.entity == "agent", AuditEvent.entity_id == ids["anna"]).order_by(AuditEvent.id)))
            agent = await session.get(Agent, ids["anna"])
        assert actions == ["deactivate", "password", "reactivate"]
        assert agent is not None and agent.deactivated_at is None
    finally:
        await db.close()


async def test_a_reset_takes_a_chosen_password_or_makes_one_up(sqlite_url: str, tmp_path: Path) -> None:
    ids = await prepare(sqlite_url)
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client), \
            served(make_settings(sqlite_url, tmp_path)) as (_, anna):
        headers = await as_admin(client)
        page = await client.get(f"/admin/agents/{ids['anna']}", headers=PAGE)
        assert 'name="password"' in page.text and 'autocomplete="new-password"' in page.text
        short = await client.post(f"/admin/agents/{ids['anna']}/password", headers=headers, data={"password": "short"})
        assert short.status_code == 422 and 'id="error-reset-password"' in short.text
        assert "A password needs at least 8 characters." in short.text and 'class="new-password"' not in short.text
        await log_in(anna, "anna@x.nl")  # the refused reset changed nothing
        made_up = await client.post(f"/admin/agents/{ids['anna']}/password", headers=headers, data={"password": ""})
        assert made_up.status_code == 200
        password = shown_password(made_up.text)
        assert len(password) == 19
        assert (await anna.get("/tickets", headers=HX)).status_code == 401, "their sessions ended"
        anna.cookies.clear()
        await log_in(anna, "anna@x.nl", password)
        missing = await client.post("/admin/agents/999/password", headers=headers)
        assert missing.status_code == 404


async def test_one_time_codes_are_turned_on_and_off_for_supervisors_and_admins(sqlite_url: str,
                                                                              tmp_path: Path) -> None:
    ids = await prepare(sqlite_url)
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client), \
            served(make_settings(sqlite_url, tmp_path)) as (_, sanne):
        headers = await as_admin(client)
        await log_in(sanne, "sanne@x.nl")
        agent_page = await client.get(f"/admin/agents/{ids['anna']}", headers=PAGE)
        assert "/totp" not in agent_page.text, "agents have no second factor"
        refused = await client.post(f"/admin/agents/{ids['anna']}/totp", headers=headers, data={"totp": "on"})
        assert refused.status_code == 422 and "One-time codes are for supervisors and admins" in refused.text
        turned = await client.post(f"/admin/agents/{ids['sanne']}/totp", headers=headers, data={"totp": "on"})
        assert turned.status_code == 200 and turned.headers["cache-control"] == "no-store"
        uri = re.search(r'<code class="new-password">(otpauth://[^<]+)</code>', turned.text)
        key = re.search(r'Key: <code class="new-password">([A-Z2-7]+)</code>', turned.text)
        assert uri and key and f"secret={key.group(1)}" in html.unescape(uri.group(1))
        assert "sanne%40x.nl" in uri.group(1) or "sanne@x.nl" in html.unescape(uri.group(1))
        assert (await sanne.get("/tickets", headers=HX)).status_code == 401, "a new key ends their sessions"
        sanne.cookies.clear()
        asks = await login_answer(sanne, "sanne@x.nl")
        assert asks.status_code == 200 and 'name="code"' in asks.text, "the login asks for a code"
        again = await client.get(f"/admin/agents/{ids['sanne']}", headers=PAGE)
        assert key.group(1) not in again.text, "the key is shown once"
        assert ">Turn off</button>" in again.text and ">New key</button>" in again.text
        off = await client.post(f"/admin/agents/{ids['sanne']}/totp", headers=headers, data={"totp": "off"})
        assert off.status_code == 200 and "Sanne logs in with the password alone now." in off.text
        sanne.cookies.clear()
        await log_in(sanne, "sanne@x.nl")
    db = Database(sqlite_url)
    try:
        async with db.reading() as session:
            details = list(await session.scalars(select(AuditEvent.detail).where(
                AuditEvent.action == "second factor", AuditEvent.agent_id == ids["alex"]).order_by(AuditEvent.id)))
            secret = await session.scalar(select(Agent.totp_secret).where(Agent.id == ids["sanne"]))
        assert details == ["turned on", "turned off"] and secret is None
    finally:
        await db.close()


async def test_queues_skills_and_dispositions(database_url: str, tmp_path: Path) -> None:
    await prepare(database_url)
    async with served(make_settings(database_url, tmp_path)) as (_, client):
        headers = await as_admin(client)
        assert (await client.post("/admin/skills", headers=headers, data={"skill": "german"})).status_code == 200
        twice = await client.post("/admin/skills", headers=headers, data={"skill": "German"})
        assert twice.status_code == 409 and "skill german exists already" in twice.text
        made = await client.post("/admin/queues", headers=headers, data={"name": "de"})
        assert made.status_code == 204
        url = made.headers["hx-redirect"]
        page = await client.get(url, headers=PAGE)
        assert page.status_code == 200 and 'name="service_level_goal" value="80"' in page.text
        form = {"offer_seconds": "30", "wrap_up_seconds": "90", "owner_first_seconds": "0",
                "service_level_seconds": "15", "service_level_goal": "101", "short_abandon_seconds": "3",
                "longest_wait_seconds": "45", "weight_a": "4", "weight_b": "2,5", "weight_c": "1",
                "skills": "german:3", "dispositions": "gelöst\nRückruf\n"}
        refused = await client.post(url, headers=headers, data=form)
        assert refused.status_code == 422
        assert "service level goal (percent) must be between 1 and 100, not 101" in refused.text
        assert 'id="error-service_level_goal"' in refused.text and 'value="30"' in refused.text
        nan = await client.post(url, headers=headers, data={**form, "service_level_goal": "90", "weight_b": "nan"})
        assert nan.status_code == 422 and "Enter a number" in nan.text
        saved = await client.post(url, headers=headers, data={**form, "service_level_goal": "90"})
        assert saved.status_code == 200 and "Saved." in saved.text
        duplicate = await client.post("/admin/queues", headers=headers, data={"name": "de"})
        assert duplicate.status_code == 409 and 'id="error-name"' in duplicate.text
        general = await client.post("/admin/dispositions", headers=headers, data={"dispositions": "  \n "})
        assert general.status_code == 422 and "at least one disposition code" in general.text
        general = await client.post("/admin/dispositions", headers=headers, data={"dispositions": "resolved\nsale"})
        assert general.status_code == 200 and "Saved." in general.text
    db = Database(database_url)
    try:
        async with db.reading() as session:
            queue = await session.scalar(select(Queue))
            assert queue is not None
            assert (queue.offer_seconds, queue.service_level_seconds, queue.service_level_goal,
                    queue.short_abandon_seconds, queue.longest_wait_seconds, queue.weight_b) == (30, 15, 90, 3, 45, 2.5)
            assert await session.scalar(select(QueueSkill.level)) == 3
            codes = {(q, c) for q, c in (await session.execute(select(Disposition.queue_id, Disposition.code)))}
            assert codes == {(queue.id, "gelöst"), (queue.id, "Rückruf"), (None, "resolved"), (None, "sale")}
    finally:
        await db.close()


async def test_chat_sites_are_set_up_with_their_embed_tag(sqlite_url: str, tmp_path: Path) -> None:
    await prepare(sqlite_url)
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client):
        headers = await as_admin(client)
        form = {"name": "Shop", "origins": "https://www.shop.nl\nhttps://shop.nl/", "queue": "", "greeting": "Hoi!",
                "hours": "mon-fri 09:00-17:00", "timezone": "Europe/Amsterdam", "idle_minutes": "15", "prechat": "1"}
        bad = await client.post("/admin/chat-sites", headers=headers, data={**form, "origins": "shop.nl"})
        assert bad.status_code == 422 and "shop.nl is not an origin" in bad.text and "Hoi!" in bad.text
        hours = await client.post("/admin/chat-sites", headers=headers, data={**form, "hours": "mon 17:00-09:00"})
        assert hours.status_code == 422 and "ends before it starts" in hours.text
        assert await count(sqlite_url, ChatSite) == 0
        made = await client.post("/admin/chat-sites", headers=headers, data=form)
        assert made.status_code == 204
        page = await client.get(made.headers["hx-redirect"], headers=PAGE)
        key = re.search(r'data-site="([^"]+)"', page.text)
        assert key and "/chat/widget.js" in page.text and "https://www.shop.nl\nhttps://shop.nl</textarea>" in page.text
        queue = await client.post(made.headers["hx-redirect"], headers=headers, data={**form, "queue": "nope"})
        assert queue.status_code == 404 and "no queue called nope" in queue.text
        saved = await client.post(made.headers["hx-redirect"], headers=headers,
                                  data={**form, "origins": "https://www.shop.nl", "prechat": ""})
        assert saved.status_code == 200 and "Saved." in saved.text
    db = Database(sqlite_url)
    try:
        async with db.reading() as session:
            site = await session.scalar(select(ChatSite))
            assert site is not None and site.origins == "https://www.shop.nl" and not site.prechat
            assert site.idle_minutes == 15 and site.key == key.group(1)
    finally:
        await db.close()


async def test_connections_are_shown_without_secrets(sqlite_url: str, tmp_path: Path) -> None:
    await prepare(sqlite_url)
    box = "imaps://support%40x.nl:s3cret@imap.x.nl/INBOX?queue=service&address=support@x.nl&acknowledge=1"
    settings = make_settings(sqlite_url, tmp_path, mailboxes=(("support", box),),
                             cti_token="a-long-cti-token-ending-in-wxyz")
    async with served(settings) as (_, client):
        await as_admin(client)
        page = await client.get("/admin/connections", headers=PAGE)
    assert page.status_code == 200
    assert "support@x.nl" in page.text and "imap.x.nl/INBOX" in page.text and "acknowledge=1" in page.text
    assert "s3cret" not in page.text and "a-long-cti-token" not in page.text
    assert "/integrations/cti/••••••••wxyz" in page.text and "CONSOLE_MAILBOX_" in page.text
    assert "Twilio is off" in page.text and "Asterisk is off" in page.text


async def test_twilio_and_asterisk_are_shown_with_their_state_and_without_secrets(sqlite_url: str,
                                                                                  tmp_path: Path) -> None:
    await prepare(sqlite_url)
    settings = make_settings(sqlite_url, tmp_path, twilio_auth_token="twilio-token-never-shown",
                             twilio_public_url="https://console.x.nl", twilio_account_sid="AC" + "1" * 28 + "9876",
                             twilio_whatsapp_templates=(("follow-up", "HX" + "2" * 32),),
                             asterisk_url="ami://console:ami-secret-never-shown@pbx.x.nl:5038")
    async with served(settings) as (_, client):
        await as_admin(client)
        page = await client.get("/admin/connections", headers=PAGE)
    assert page.status_code == 200
    for shown in ("https://console.x.nl/integrations/twilio/voice", "https://console.x.nl/integrations/twilio/messaging",
                  "AC…9876", "follow-up", "ami://console@pbx.x.nl:5038"):
        assert shown in page.text, shown
    assert "twilio-token-never-shown" not in page.text and "ami-secret-never-shown" not in page.text


async def test_only_admins_get_in(sqlite_url: str, tmp_path: Path) -> None:
    ids = await prepare(sqlite_url)
    async with served(make_settings(sqlite_url, tmp_path)) as (_, client):
        assert (await client.get("/admin", headers=PAGE)).headers["location"] == "/login"
        assert (await client.get("/admin/agents", headers=HX)).status_code == 401
        for email in ("anna@x.nl", "sanne@x.nl"):
            client.cookies.clear()
            token = await log_in(client, email)
            assert (await client.get("/admin", headers=PAGE)).status_code == 403
            posted = await client.post(f"/admin/agents/{ids['anna']}/password",
                                       headers={"X-CSRF-Token": token, **HX})
            assert posted.status_code == 403
        client.cookies.clear()
        await log_in(client, "alex@x.nl")
        overview = await client.get("/admin", headers=PAGE)
        assert overview.status_code == 200 and 'href="/admin/connections"' in overview.text
    async with served(make_settings(sqlite_url, tmp_path)) as (_, anna):
        await log_in(anna, "anna@x.nl")  # the password reset above was refused


ADMIN_FORMS = {
    "/admin/agents": ("email", "name", "password", "role", "extension", "language"),
    "/admin/agents/2": ("name", "role", "extension", "language", "capacity_call", "capacity_chat", "capacity_mail",
                        "skills"),
    "/admin/agents/2/password": ("password",),
    "/admin/agents/3/totp": ("totp",),
    "/admin/queues": ("name",),
    "/admin/queues/1": ("offer_seconds", "wrap_up_seconds", "owner_first_seconds", "service_level_seconds",
                        "service_level_goal", "short_abandon_seconds", "longest_wait_seconds", "weight_a", "weight_b",
                        "weight_c", "skills", "dispositions"),
    "/admin/skills": ("skill",),
    "/admin/dispositions": ("dispositions",),
    "/admin/chat-sites": ("name", "origins", "queue", "greeting", "hours", "timezone", "idle_minutes",
                          "identity_required", "prechat"),
    "/admin/chat-sites/1": ("origins", "queue", "greeting", "hours", "timezone", "idle_minutes", "identity_required",
                            "prechat"),
}


def test_no_admin_form_answers_500_to_any_input(database_url: str, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Hostile values in every field of every admin form: an answer below 500, and no traceback."""
    loop = asyncio.new_event_loop()
    serving = served(make_settings(database_url, tmp_path))
    seen: collections.Counter[int] = collections.Counter()

    async def setup() -> tuple[httpx.AsyncClient, dict[str, str]]:
        await prepare(database_url)
        _, http = await serving.__aenter__()
        client: httpx.AsyncClient = http  # type: ignore[assignment]
        headers = await as_admin(client)
        await client.post("/admin/skills", headers=headers, data={"skill": "german"})
        await client.post("/admin/queues", headers=headers, data={"name": "service"})
        await client.post("/admin/chat-sites", headers=headers, data={
            "name": "Shop", "origins": "https://shop.nl", "timezone": "UTC", "idle_minutes": "10"})
        return client, headers

    try:
        client, headers = loop.run_until_complete(setup())

        @settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
        @given(st.sampled_from(sorted(ADMIN_FORMS)).flatmap(
            lambda path: st.tuples(st.just(path), st.dictionaries(st.sampled_from(ADMIN_FORMS[path]), HOSTILE))))
        def send(request: tuple[str, dict[str, str]]) -> None:
            path, fields = request
            response = loop.run_until_complete(client.post(path, data=fields, headers=headers))
            seen[response.status_code] += 1
            assert response.status_code < 500, (path, fields, response.text[:300])

        with caplog.at_level(logging.INFO):
            send()
        assert not [r.getMessage() for r in caplog.records if r.exc_info], "a traceback was logged"
        assert seen[422], seen
    finally:
        loop.run_until_complete(serving.__aexit__(None, None, None))
        loop.close()
