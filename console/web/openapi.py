"""The OpenAPI description of the console's JSON endpoints, served at /openapi.json.

What integrations and operators call: the phone system's CTI endpoint (described by the
integration itself), health and readiness, metrics, and the export of a customer's personal
data. The HTML endpoints the page uses through htmx are not an API and are not described here.
The fuzz test (tests/console/web/test_openapi.py) sends what this description allows, and much
that it does not, to a running console.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from integrations.telephony import cti

VERSION = "1.0.0"


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}


def _text(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


OPERATORS = {"description": "from CONSOLE_OPERATOR_ADDRESSES, or with the bearer token CONSOLE_METRICS_TOKEN"}


@cache
def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Agent console", "version": VERSION,
                 "description": "The JSON endpoints of the agent console: the phone system's events, health, "
                                "metrics and personal data exports."},
        "paths": {
            **cti.openapi_paths(),
            "/healthz": {"get": {"operationId": "health", "summary": "The process answers",
                                 "responses": {"200": _text("ok")}}},
            "/readyz": {"get": {
                "operationId": "ready", "summary": "Database and bus reachable (for load balancers)",
                "security": [{}, {"metricsToken": []}],
                "responses": {
                    "200": {"description": "ready", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Readiness"}}}},
                    "403": _problem(OPERATORS["description"]),
                    "503": {"description": "not ready: what is unreachable",
                            "headers": {"Retry-After": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}},
                }}},
            "/metrics": {"get": {
                "operationId": "metrics", "summary": "Prometheus metrics",
                "security": [{}, {"metricsToken": []}],
                "responses": {"200": _text("the Prometheus text format"), "403": _problem(OPERATORS["description"])},
            }},
            "/customers/{id}/export.json": {"get": {
                "operationId": "exportCustomer",
                "summary": "Everything held about a customer (supervisors and admins; audited)",
                "security": [{"session": []}],
                "parameters": [{"name": "id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 1}}],
                "responses": {
                    "200": {"description": "the export, as a download",
                            "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": {"type": "object",
                                        "required": ["customer", "exported_at", "exported_by"]}}}},
                    "303": {"description": "not signed in, asked by a browser (Accept: text/html): to the login "
                                           "page"},
                    "401": _text("not signed in, or the session ended, asked by htmx (HX-Redirect: /login)",
                                 "text/html"),
                    "403": {"description": "only supervisors and admins export, and only from the console "
                                           "(not from a link on another site)",
                            "content": {"text/html": {"schema": {"type": "string"}},
                                        "text/plain": {"schema": {"type": "string"}}}},
                    "404": {"description": "no such customer (an id that is no number: no such page)",
                            "content": {"text/html": {"schema": {"type": "string"}},
                                        "text/plain": {"schema": {"type": "string"}}}},
                }}},
            "/openapi.json": {"get": {"operationId": "openapi", "summary": "This description",
                                      "responses": {"200": {"description": "OpenAPI 3.1",
                                                            "content": {"application/json": {}}}}}},
        },
        "components": {
            "schemas": {
                "Problem": {"type": "object", "required": ["error"],
                            "properties": {"error": {"type": "string", "description": "what is wrong, for a person"},
                                           "field": {"type": ["string", "null"],
                                                     "description": "the field at fault"}}},
                "Readiness": {"type": "object", "required": ["ready"],
                              "properties": {"ready": {"type": "boolean"}, "database": {"type": "string"},
                                             "bus": {"type": "string"}}},
            },
            "securitySchemes": {
                "metricsToken": {"type": "http", "scheme": "bearer", **OPERATORS},
                "session": {"type": "apiKey", "in": "cookie", "name": "console_session",
                            "description": "a signed-in session (log in at /login)"},
            },
        },
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(document())
