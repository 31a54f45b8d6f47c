from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from console.db import Database
from console.web.app import create_app
from tests.conftest import make_settings, served
from tests.helpers import PASSWORD, add_agent, form_token, log_in, page_token

BASE = "http://console.test"


@pytest.fixture
async def client(sqlite_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna", extension="201", language="nl")
    await db.close()
    async with served(make_settings(sqlite_url, tmp_path, login_free_failures=3), BASE) as (_, client):
        yield client


async def test_the_agent_page_sends_strangers_to_the_login_form(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"


async def test_login_opens_the_agent_page_in_the_agents_language(client: httpx.AsyncClient) -> None:
    await log_in(client, "anna@x.nl")
    page = await client.get("/")
    assert "Anna" in page.text and 'lang="nl"' in page.text and "Beschikbaar" in page.text


async def test_session_cookie_is_httponly_and_samesite(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    response = await client.post("/login", data={"email": "anna@x.nl", "password": PASSWORD,
                                                 "csrf_token": form_token(page.text)})
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header


async def test_a_wrong_password_shows_an_error_in_the_form(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    response = await client.post("/login", data={"email": "anna@x.nl", "password": "wrong",
                                                 "csrf_token": form_token(page.text)})
    assert response.status_code == 400
    assert "Email address or password is wrong." in response.text
    assert 'value="anna@x.nl"' in response.text


async def _try(client: httpx.AsyncClient, password: str, address: str, email: str = "anna@x.nl") -> httpx.Response:
    """A login from `address` (the test client is a trusted proxy, as a load balancer would be)."""
    page = await client.get("/login")
    return await client.post("/login", data={"email": email, "password": password,
                                             "csrf_token": form_token(page.text)},
                             headers={"X-Forwarded-For": address})


async def test_repeated_failures_make_that_client_wait_with_a_clear_message(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await _try(client, "wrong", "203.0.113.5")).status_code == 400
    held = await _try(client, PASSWORD, "203.0.113.5")
    assert held.status_code == 429 and held.headers["retry-after"] in ("1", "2")
    assert "Te veel mislukte inlogpogingen. Wacht" in held.text or "Too many failed logins. Wait" in held.text


async def test_a_stranger_cannot_lock_the_agent_out(client: httpx.AsyncClient) -> None:
    """An attacker who knows Anna's email address fails again and again; Anna still logs in."""
    for _ in range(6):
        await _try(client, "guess", "203.0.113.5")
    assert (await _try(client, "guess", "203.0.113.5")).status_code == 429
    anna = await _try(client, PASSWORD, "198.51.100.7")
    assert anna.status_code == 303 and anna.headers["location"] == "/"


async def _time_passes(db: Database, seconds: int) -> None:
    """Every login attempt stored so far moves `seconds` into the past."""
    from datetime import timedelta

    from sqlalchemy import select, update

    from console.models import LoginAttempt

    async with db.transaction() as session:
        for attempt_id, at in (await session.execute(select(LoginAttempt.id, LoginAttempt.created_at))).all():
            await session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id)
                                  .values(created_at=at - timedelta(seconds=seconds)))


async def test_the_wait_grows_with_each_failure_and_ends(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna")
    settings = make_settings(sqlite_url, tmp_path, login_free_failures=2, login_delay=10.0)
    async with served(settings, BASE) as (_, client):
        waits = []
        for _ in range(4):
            response = await _try(client, "wrong", "203.0.113.5")
            if response.status_code == 429:
                waits.append(int(response.headers["retry-after"]))
                await _time_passes(db, waits[-1] + 1)
                response = await _try(client, "wrong", "203.0.113.5")
            assert response.status_code == 400
        held = await _try(client, PASSWORD, "203.0.113.5")
        assert held.status_code == 429
        waits.append(int(held.headers["retry-after"]))
        assert waits == [10, 20, 40], waits  # after 2 free failures: 10 s, then doubling
        await _time_passes(db, 41)
        assert (await _try(client, PASSWORD, "203.0.113.5")).status_code == 303
    await db.close()


async def test_a_flood_from_one_address_is_refused_there_only(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna")
    await db.close()
    async with served(make_settings(sqlite_url, tmp_path, login_address_ceiling=5), BASE) as (_, client):
        for n in range(5):  # one failure each for five accounts: no pair is held, the address floods
            assert (await _try(client, "wrong", "203.0.113.5", f"nobody{n}@x.nl")).status_code == 400
        flooded = await _try(client, PASSWORD, "203.0.113.5")
        assert flooded.status_code == 429 and 800 < int(flooded.headers["retry-after"]) <= 900
        assert "15" in flooded.text  # minutes
        assert (await _try(client, PASSWORD, "198.51.100.7")).status_code == 303


async def test_a_flood_from_one_ipv6_network_counts_together(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna")
    await db.close()
    async with served(make_settings(sqlite_url, tmp_path, login_address_ceiling=5), BASE) as (_, client):
        for n in range(5):  # a new address of the same /64 for every try
            assert (await _try(client, "wrong", f"2001:db8:1:2::{n + 1:x}", f"nobody{n}@x.nl")).status_code == 400
        assert (await _try(client, PASSWORD, "2001:db8:1:2:ffff::9")).status_code == 429, "the whole /64 waits"
        assert (await _try(client, PASSWORD, "2001:db8:1:3::1")).status_code == 303, "the next /64 does not"


def test_login_attempts_count_per_ipv4_address_and_ipv6_network() -> None:
    from console.auth import throttle_key

    assert throttle_key("203.0.113.5") == "203.0.113.5"
    assert throttle_key("::ffff:203.0.113.5") == "203.0.113.5"
    assert throttle_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64"
    assert throttle_key("device:abcdef0123456789") == "device:abcdef0123456789"
    assert throttle_key("x" * 100) == "x" * 64


async def test_forwarded_addresses_count_only_from_trusted_proxies(sqlite_url: str, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna")
    await db.close()
    settings = make_settings(sqlite_url, tmp_path, login_free_failures=2, trusted_proxies=("10.0.0.1",))
    async with served(settings, BASE) as (_, client):
        # The test client (127.0.0.1) is no trusted proxy here: its X-Forwarded-For is ignored, so
        # both "addresses" are the same client and its failures hold the second one too.
        for _ in range(2):
            await _try(client, "wrong", "203.0.113.5")
        assert (await _try(client, PASSWORD, "198.51.100.7")).status_code == 429


async def test_login_without_the_form_token_is_refused(client: httpx.AsyncClient) -> None:
    await client.get("/login")
    response = await client.post("/login", data={"email": "anna@x.nl", "password": PASSWORD})
    assert response.status_code == 403 and "CSRF" in response.text


async def test_actions_need_the_csrf_header(client: httpx.AsyncClient) -> None:
    token = await log_in(client, "anna@x.nl")
    refused = await client.post("/agent/status", data={"status": "available"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = await client.post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": "forged"})
    assert wrong.status_code == 403
    ok = await client.post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 204 and ok.text == "", "the socket carries the change"


async def test_an_action_after_the_session_ended_sends_the_page_to_the_login(client: httpx.AsyncClient) -> None:
    token = await log_in(client, "anna@x.nl")
    await client.post("/logout", headers={"X-CSRF-Token": token})
    late = await client.post("/agent/status", data={"status": "available"}, headers={"X-CSRF-Token": token})
    assert late.status_code == 401 and late.headers["hx-redirect"] == "/login"
    assert "Log in again" in late.text


async def test_requests_from_another_site_are_refused_even_with_the_token(client: httpx.AsyncClient) -> None:
    token = await log_in(client, "anna@x.nl")
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        response = await client.post("/agent/status", data={"status": "available"},
                                     headers={"X-CSRF-Token": token, **headers})
        assert response.status_code == 403, headers
    same = await client.post("/agent/status", data={"status": "away"},
                             headers={"X-CSRF-Token": token, "Origin": BASE, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 204


async def test_a_bad_status_is_a_clear_error(client: httpx.AsyncClient) -> None:
    token = await log_in(client, "anna@x.nl")
    response = await client.post("/agent/status", data={"status": "dancing"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 422
    assert "dancing" in response.text and 'role="alert"' in response.text


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    token = await log_in(client, "anna@x.nl")
    response = await client.post("/logout", headers={"X-CSRF-Token": token})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert (await client.get("/")).status_code == 303


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).text == "ok"
    ready = await client.get("/readyz")
    body = ready.json()
    assert ready.status_code == 200 and body.pop("connectors") == {
        name: {"state": "off", "last_error": None, "last_error_at": None, "last_event_at": None, "events": 0,
               "failures": 0} for name in ("twilio", "asterisk")}
    assert body == {"ready": True, "database": "ok", "bus": "ok"}


async def test_readiness_says_not_ready_when_the_database_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/nothing", tmp_path)
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert ready.json()["database"].startswith("unreachable") and ready.headers["retry-after"]


async def test_concurrent_wrong_passwords_cannot_exceed_the_limit(ctx: object) -> None:
    import asyncio

    from console import auth
    from console.errors import TooManyAttempts
    from console.ports import Context

    assert isinstance(ctx, Context)
    await add_agent(ctx.db, "anna@x.nl", "Anna")

    async def attempt() -> str:
        try:
            async with ctx.db.transaction() as session:
                await auth.authenticate(session, "anna@x.nl", "wrong", "10.0.0.1",
                                        auth.LoginPolicy(free_failures=5, delay=900))
            return "checked"
        except TooManyAttempts:
            return "refused"

    results = await asyncio.gather(*(attempt() for _ in range(12)))
    assert results.count("checked") == 5 and results.count("refused") == 7


async def test_odd_ids_and_tokens_are_clear_errors_not_crashes(client: httpx.AsyncClient) -> None:
    token = await log_in(client, "anna@x.nl")
    headers = {"X-CSRF-Token": token}
    for path, data in (("/conversations/99999999999999999999/customer", {"customer_id": "1"}),
                       ("/conversations/1/customer", {"customer_id": "²"}),
                       ("/conversations/1/customer", {"customer_id": "99999999999999999999"}),
                       ("/conversations/5/customers", {"name": "X"})):
        response = await client.post(path, data=data, headers=headers)
        assert response.status_code == 404, (path, data, response.text)
        assert "bestaat niet" in response.text  # Anna reads Dutch
    odd = await client.post("/agent/status", data={"status": "away"}, headers={"X-CSRF-Token": "é".encode()})
    assert odd.status_code == 403
    page = await client.get("/login")
    assert page.status_code in (200, 303)


def test_access_logs_do_not_show_the_cti_token() -> None:
    import logging

    from console.web.app import HideCTIToken

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d', (
        "127.0.0.1:5000", "POST", "/integrations/cti/s3cr3t-token?x=1", "1.1", 200), None)
    HideCTIToken().filter(record)
    assert "s3cr3t" not in record.getMessage() and "/integrations/cti/***?x=1" in record.getMessage()


async def test_every_response_carries_its_request_id(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "pbx-123"})
    assert echoed.headers["x-request-id"] == "pbx-123"
    fresh = await client.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 16


async def test_every_answer_carries_the_browser_policy(client: httpx.AsyncClient) -> None:
    for path in ("/login", "/static/console.js", "/healthz", "/no-such-page"):
        response = await client.get(path)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "same-origin" and response.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in response.headers, "plain HTTP: no HSTS"


async def test_a_server_error_carries_the_browser_policy_too(sqlite_url: str, tmp_path: Path) -> None:
    from starlette.routing import Route

    async def broken(request: object) -> None:
        raise RuntimeError("a bug")

    app = create_app(make_settings(sqlite_url, tmp_path))
    app.router.routes.append(Route("/broken", broken))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        response = await client.get("/broken", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 500 and "logged" in response.text and "a bug" not in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["x-frame-options"] == "DENY"
    assert response.headers["strict-transport-security"], "over HTTPS (a trusted proxy said so) with HSTS"


async def test_hsts_when_a_trusted_proxy_terminated_https(client: httpx.AsyncClient) -> None:
    response = await client.get("/login", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"})
    assert response.headers["strict-transport-security"] == "max-age=31536000"


async def test_readiness_and_metrics_are_for_operators_only(sqlite_url: str, tmp_path: Path) -> None:
    settings = make_settings(sqlite_url, tmp_path, operator_addresses=("10.1.0.0/16",), metrics_token="m" * 24)
    async with served(settings, BASE) as (_, client):
        # The test client connects from 127.0.0.1, which this node does not count as an operator.
        for path in ("/readyz", "/metrics"):
            refused = await client.get(path)
            assert refused.status_code == 403 and "CONSOLE_OPERATOR_ADDRESSES" in refused.json()["error"]
            wrong = await client.get(path, headers={"Authorization": "Bearer " + "x" * 24})
            assert wrong.status_code == 403
            assert (await client.get(path, headers={"Authorization": "Bearer " + "m" * 24})).status_code == 200
        # A trusted proxy's X-Forwarded-For names the client: an operator's address inside 10.1/16.
        assert (await client.get("/metrics", headers={"X-Forwarded-For": "10.1.4.2"})).status_code == 200
        assert (await client.get("/healthz")).text == "ok", "liveness stays open: it tells nothing"


async def test_a_session_ends_when_idle_and_after_its_lifetime(sqlite_url: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna")
    await db.close()
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    settings = make_settings(sqlite_url, tmp_path, session_idle=600, session_max_age=1500)
    async with served(settings, BASE) as (_, client):
        await log_in(client, "anna@x.nl")
        for _ in range(2):  # each request within the idle time keeps the session going
            clock[0] += 500
            assert (await client.get("/")).status_code == 200
        clock[0] += 601
        idle = await client.get("/")
        assert idle.status_code == 303 and idle.headers["location"] == "/login", "idle for too long"

        await log_in(client, "anna@x.nl")
        for _ in range(3):
            clock[0] += 500
            page = await client.get("/")
        assert page.status_code == 200, "1500 s after the login, active all the while"
        clock[0] += 10
        ended = await client.get("/")
        assert ended.status_code == 303 and ended.headers["location"] == "/login", "past its lifetime"


async def test_a_new_role_ends_the_agents_sessions(client: httpx.AsyncClient, sqlite_url: str) -> None:
    from console import config

    await log_in(client, "anna@x.nl")
    db = Database(sqlite_url)
    async with db.transaction() as session:
        await config.configure_agent(session, "anna@x.nl", role="agent")  # unchanged: nothing ends
    assert (await client.get("/")).status_code == 200
    async with db.transaction() as session:
        await config.configure_agent(session, "anna@x.nl", role="supervisor")
    await db.close()
    response = await client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    await log_in(client, "anna@x.nl")  # and the next login is a session in the new role


async def test_a_supervisor_with_a_second_factor_logs_in_with_password_and_code(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    from urllib.parse import parse_qs, urlsplit

    import pyotp

    from console import auth
    from console.errors import InvalidInput

    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna")
    await add_agent(db, "sanne@x.nl", "Sanne", role="supervisor")
    async with db.transaction() as session:
        with pytest.raises(InvalidInput, match="for supervisors and admins"):
            await auth.enable_totp(session, "anna@x.nl")
    async with db.transaction() as session:
        uri = await auth.enable_totp(session, "sanne@x.nl")
    await db.close()
    assert uri.startswith("otpauth://totp/") and "issuer=Agent%20console" in uri
    totp = pyotp.TOTP(parse_qs(urlsplit(uri).query)["secret"][0])

    async with served(make_settings(sqlite_url, tmp_path), BASE) as (_, client):
        async def password_then(code: str) -> httpx.Response:
            page = await client.get("/login")
            asked = await client.post("/login", data={"email": "sanne@x.nl", "password": PASSWORD,
                                                      "csrf_token": form_token(page.text)})
            assert asked.status_code == 200 and 'name="code"' in asked.text
            assert (await client.get("/")).status_code == 303, "the password alone does not sign in"
            return await client.post("/login/code", data={"code": code, "csrf_token": form_token(asked.text)})

        wrong = await password_then("000000" if totp.now() != "000000" else "111111")
        assert wrong.status_code == 400 and "wrong or was used already" in wrong.text
        code = totp.now()
        ok = await password_then(code[:3] + " " + code[3:])  # as apps show it
        agent_page = await client.get("/")
        assert ok.status_code == 303 and agent_page.status_code == 200
        await client.post("/logout", headers={"X-CSRF-Token": page_token(agent_page.text)})
        replayed = await password_then(code)
        assert replayed.status_code == 400, "a code works once"

        # The code must follow the password within five minutes.
        page = await client.get("/login")
        asked = await client.post("/login", data={"email": "sanne@x.nl", "password": PASSWORD,
                                                  "csrf_token": form_token(page.text)})
        later = time.time() + 301
        monkeypatch.setattr(time, "time", lambda: later)
        late = await client.post("/login/code", data={"code": totp.at(later), "csrf_token": form_token(asked.text)})
        assert late.status_code == 400 and "within five minutes" in late.text


async def test_one_time_codes_cannot_be_guessed_and_odd_digits_are_a_clear_error(sqlite_url: str,
                                                                                  tmp_path: Path) -> None:
    from console import auth

    db = Database(sqlite_url)
    await add_agent(db, "sanne@x.nl", "Sanne", role="supervisor")
    async with db.transaction() as session:
        await auth.enable_totp(session, "sanne@x.nl")
    await db.close()
    async with served(make_settings(sqlite_url, tmp_path), BASE) as (_, client):
        async def guess(code: str, address: str) -> httpx.Response:
            page = await client.get("/login")
            asked = await client.post("/login", data={"email": "sanne@x.nl", "password": PASSWORD,
                                                      "csrf_token": form_token(page.text)},
                                      headers={"X-Forwarded-For": address})
            assert asked.status_code == 200, asked.text
            return await client.post("/login/code", data={"code": code, "csrf_token": form_token(asked.text)},
                                     headers={"X-Forwarded-For": address})

        arabic = await guess("١٢٣٤٥٦", "203.0.113.5")  # digits, but not ASCII ones
        assert arabic.status_code == 400 and "wrong" in arabic.text
        # The right password again does not reset the streak of wrong codes from this address.
        for _ in range(2):
            assert (await guess("000001", "203.0.113.5")).status_code == 400
        assert (await guess("000002", "203.0.113.5")).status_code == 429
        # From many addresses: at most 10 wrong codes per account in the window, then no more tries.
        for n in range(7):
            assert (await guess("000003", f"198.51.100.{n}")).status_code == 400
        refused = await guess("000004", "192.0.2.1")
        assert refused.status_code == 429 and "Retry-After" in refused.headers


async def test_a_browser_that_logged_in_before_is_not_held_up_by_strangers_on_its_address(
        sqlite_url: str, tmp_path: Path) -> None:
    """One office NAT address for the whole floor: a stranger there floods and fails Anna's account;
    Anna's own browser, which logged in before, still gets in; an unknown browser there waits."""
    db = Database(sqlite_url)
    await add_agent(db, "anna@x.nl", "Anna")
    await db.close()
    async with served(make_settings(sqlite_url, tmp_path, login_address_ceiling=5), BASE) as (app, anna):
        assert (await _try(anna, PASSWORD, "203.0.113.5")).status_code == 303
        assert "console_device" in anna.cookies
        await anna.post("/logout", headers={"X-CSRF-Token": page_token((await anna.get("/")).text)})
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as stranger:
            for n in range(6):
                await _try(stranger, "guess", "203.0.113.5", "anna@x.nl" if n % 2 else f"x{n}@x.nl")
            assert (await _try(stranger, PASSWORD, "203.0.113.5")).status_code == 429
        assert (await _try(anna, PASSWORD, "203.0.113.5")).status_code == 303
