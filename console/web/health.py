"""Liveness and readiness for load balancers and orchestrators, and who may read what a node reveals.

`/healthz` says only that the process answers. `/readyz` (database and bus state) and `/metrics`
(volumes, latencies) are for operators: reachable from CONSOLE_OPERATOR_ADDRESSES, or with
`Authorization: Bearer <CONSOLE_METRICS_TOKEN>`.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from console.web.security import operators_only
from console.web.wiring import Wiring

CHECK_TIMEOUT = 2.0


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


@operators_only
async def readyz(request: Request) -> Response:
    w: Wiring = request.app.state.wiring
    checks: dict[str, str] = {}
    for name, probe in (("database", w.ctx.db.ping), ("bus", w.bus.ping)):
        try:
            await asyncio.wait_for(probe(), CHECK_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unreachable: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"ready": ready, **checks}
    if w.mailboxes is not None:
        # Each mailbox's state is shown, but a failing mailbox does not take the node out of the load
        # balancer: agents and calls still work, and the reader keeps trying on its own.
        body["mailboxes"] = {s.name: s.as_json() for s in w.mailboxes.states()}
    # Phone and messaging connectors likewise: shown, never taking the node out.
    body["connectors"] = {c.name: c.as_json() for c in w.connectors()}
    return JSONResponse(body, status_code=200 if ready else 503,
                        headers={} if ready else {"Retry-After": "5"})
