"""B2's floor: a bare Starlette app whose websocket endpoint sends a pre-rendered fragment on an HTTP trigger.

No database, no rendering, no bus, no session: `POST /trigger/{n}` sends the fragment read at start
from BENCH_FRAGMENT_FILE to socket n and answers 200. It runs under uvicorn exactly as the console
does (`serve`: httptools, websockets-sansio with permessage-deflate, access log on), so B1/B2 is the
price of everything the console does for a pop beyond moving the bytes.

    python -m benchmarks.floor_app PORT
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

FRAGMENT = Path(os.environ["BENCH_FRAGMENT_FILE"]).read_text() if "BENCH_FRAGMENT_FILE" in os.environ else "<p>x</p>"
sockets: dict[int, WebSocket] = {}


async def live(websocket: WebSocket) -> None:
    number = int(websocket.path_params["n"])
    await websocket.accept()
    sockets[number] = websocket
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
    except WebSocketDisconnect:
        return
    finally:
        if sockets.get(number) is websocket:
            del sockets[number]


async def trigger(request: Request) -> Response:
    socket = sockets.get(int(request.path_params["n"]))
    if socket is None:
        return PlainTextResponse("no such socket", status_code=404)
    await socket.send_text(FRAGMENT)
    return PlainTextResponse("sent")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


app = Starlette(routes=[WebSocketRoute("/ws/{n:int}", live), Route("/trigger/{n:int}", trigger, methods=["POST"]),
                        Route("/healthz", healthz)])


if __name__ == "__main__":
    import uvicorn

    uvicorn.run("benchmarks.floor_app:app", host="127.0.0.1", port=int(sys.argv[1]), proxy_headers=True,
                log_level="info", ws="websockets-sansio")
