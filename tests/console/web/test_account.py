"""An agent's own account: the panel, and changing the password from the page."""

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from console import auth
from console.db import Database
from console.models import AuditEvent
from tests.conftest import make_settings, served
from tests.helpers import PASSWORD, add_agent, form_token, log_in

BASE = "http://console.test"
NEW = "paard-batterij-nietje"


@pytest.fixture
async def two(sqlite_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Anna signed in on two devices (two browsers)."""
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna", extension="201", language="nl")
    await db.close()
    settings = make_settings(sqlite_url, tmp_path, login_free_failures=3)
    async with served(settings, BASE) as (_, desk), served(settings, BASE) as (_, laptop):
        yield desk, laptop


def _form(current: str = PASSWORD, new: str = NEW, repeat: str | None = None) -> dict[str, str]:
    return {"current": current, "password": new, "repeat": new if repeat is None else repeat}


async def _post(client: httpx.AsyncClient, token: str, form: dict[str, str]) -> httpx.Response:
    return await client.post("/account/password", data=form, headers={"HX-Request": "true", "X-CSRF-Token": token})


async def test_the_account_panel_shows_who_you_are_and_the_password_form(
        two: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    desk, _ = two
    await log_in(desk, "anna@x.nl")
    page = await desk.get("/")
    assert 'hx-get="/account"' in page.text, "the name in the top bar opens the account"
    panel = await desk.get("/account", headers={"HX-Request": "true"})
    assert panel.status_code == 200
    assert "Je account" in panel.text and "anna@x.nl" in panel.text and "201" in panel.text
    assert 'autocomplete="current-password"' in panel.text and 'autocomplete="new-password"' in panel.text


async def test_changing_the_password_keeps_this_session_and_ends_the_others(
        two: tuple[httpx.AsyncClient, httpx.AsyncClient], sqlite_url: str) -> None:
    desk, laptop = two
    token = await log_in(desk, "anna@x.nl")
    await log_in(laptop, "anna@x.nl")
    changed = await _post(desk, token, _form())
    assert changed.status_code == 204 and changed.headers["HX-Refresh"] == "true"
    page = await desk.get("/")
    assert page.status_code == 200, "the device that changed it stays signed in"
    assert "Je wachtwoord is gewijzigd" in page.text, "and is told so once"
    assert "Je wachtwoord is gewijzigd" not in (await desk.get("/")).text
    elsewhere = await laptop.get("/")
    assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/login"
    laptop.cookies.clear()
    await log_in(laptop, "anna@x.nl", NEW)
    laptop.cookies.clear()
    form = await laptop.get("/login")
    old = await laptop.post("/login", data={"email": "anna@x.nl", "password": PASSWORD,
                                            "csrf_token": form_token(form.text)})
    assert old.status_code == 400 and "password is wrong" in old.text, "the old password no longer works"
    db = Database(sqlite_url)
    async with db.transaction() as session:
        actions = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.entity == "agent")))
    await db.close()
    assert actions == ["password"]


@pytest.mark.parametrize(("form", "says"), [
    (_form(current="wrong password"), "Je huidige wachtwoord klopt niet."),
    (_form(current=""), "Vul je huidige wachtwoord in."),
    (_form(new="kort"), "minstens 8 tekens"),
    (_form(repeat="paard-batterij-nietjes"), "verschillen"),
    (_form(new=PASSWORD), "je huidige"),
])
async def test_a_refused_change_says_why_in_the_form_and_changes_nothing(
        two: tuple[httpx.AsyncClient, httpx.AsyncClient], form: dict[str, str], says: str) -> None:
    desk, laptop = two
    token = await log_in(desk, "anna@x.nl")
    await log_in(laptop, "anna@x.nl")
    refused = await _post(desk, token, form)
    assert refused.status_code == 422
    assert says in refused.text and 'aria-invalid="true"' in refused.text
    assert NEW not in refused.text and PASSWORD not in refused.text, "passwords are never sent back"
    assert (await laptop.get("/")).status_code == 200, "no session ended"


async def test_guessing_the_current_password_from_an_open_page_is_held_like_logins(
        two: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    desk, _ = two
    token = await log_in(desk, "anna@x.nl")
    for _ in range(3):
        assert (await _post(desk, token, _form(current="guess guess"))).status_code == 422
    held = await _post(desk, token, _form())
    assert held.status_code == 429 and "Te veel verkeerde wachtwoorden" in held.text, "even the right one waits"
    assert int(held.headers["Retry-After"]) >= 1


async def test_a_reset_by_an_admin_ends_every_session_and_hands_over_a_new_password(
        two: tuple[httpx.AsyncClient, httpx.AsyncClient], sqlite_url: str) -> None:
    desk, _ = two
    await log_in(desk, "anna@x.nl")
    desk.cookies.clear()
    form = await desk.get("/login")
    for _ in range(4):  # she forgot it: she is held now
        await desk.post("/login", data={"email": "anna@x.nl", "password": "forgotten", "csrf_token":
                                        form_token(form.text)})
    db = Database(sqlite_url)
    async with db.transaction() as session:
        given = await auth.reset_password(session, "Anna@x.nl", by="root on the command line")
        detail = await session.scalar(select(AuditEvent.detail).where(AuditEvent.entity == "agent"))
    await db.close()
    assert detail == "reset by root on the command line"
    assert len(given) == 19 and given.count("-") == 3
    await log_in(desk, "anna@x.nl", given)  # at once: the reset ended the wait
