"""The JSON endpoints against their OpenAPI description (/openapi.json), fuzzed by schemathesis.

Every operation gets what the description allows and much that it does not (wrong types, missing
and extra fields, odd strings), on SQLite and PostgreSQL, sent to a real server: no answer may be
a server error or break the description, and nothing may log a traceback. A bounded budget per
operation keeps CI fast; a failure prints the request that caused it, to replay by hand.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from console.db import Database
from console.web import openapi
from tests.conftest import CTI_TOKEN, LiveServer
from tests.helpers import add_agent, add_customer, log_in

EXAMPLES = 60
schema = schemathesis.openapi.from_dict(openapi.document())
schema.config.generation.update(modes=["positive", "negative"], max_examples=EXAMPLES, database="none")

_signed_in: dict[str, dict[str, str]] = {}  # live server URL: a supervisor's session cookies


async def _supervisor(server: LiveServer, database_url: str) -> dict[str, str]:
    db = Database(database_url)
    try:
        await add_agent(db, "sanne@x.nl", "Sanne", role="supervisor")
        await add_customer(db, "Jan <b>Jansen</b>", phones=("0612345678",))
    finally:
        await db.close()
    async with httpx.AsyncClient(base_url=server.url) as client:
        await log_in(client, "sanne@x.nl")
        return dict(client.cookies)


def test_the_description_is_served_and_names_every_json_endpoint(live_server: LiveServer) -> None:
    served = httpx.get(f"{live_server.url}/openapi.json")
    assert served.status_code == 200 and served.json() == openapi.document()
    assert set(served.json()["paths"]) == {"/integrations/cti/{token}", "/healthz", "/readyz", "/metrics",
                                            "/customers/{id}/export.json", "/openapi.json"}


@schema.parametrize()
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                HealthCheck.filter_too_much])
def test_no_input_makes_a_json_endpoint_fail(case: Any, live_server: LiveServer, database_url: str,
                                             caplog: pytest.LogCaptureFixture) -> None:
    if live_server.url not in _signed_in:
        _signed_in[live_server.url] = asyncio.run(_supervisor(live_server, database_url))
    if "token" in (case.path_parameters or {}):
        case.path_parameters["token"] = CTI_TOKEN  # the token's own refusal has its tests
    if "console_session" in (case.cookies or {}):  # a case without it tries being signed out
        case.cookies["console_session"] = _signed_in[live_server.url]["console_session"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        response = case.call(base_url=live_server.url, allow_redirects=False)
    assert response.status_code < 500, (case.as_curl_command(), response.status_code, response.text[:300])
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, (case.as_curl_command(), tracebacks)
    # Methods the description does not name get 405 from the router, or 403 where the CSRF check
    # comes first (a PUT without a console page's token): a clear refusal either way.
    case.validate_response(response, excluded_checks=[schemathesis.checks.unsupported_method])
