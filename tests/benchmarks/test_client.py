"""The benchmarks' own HTTP client: a reply without a body must not hold its connection."""

from __future__ import annotations

import asyncio

from benchmarks.client import HttpPool


async def test_a_204_reply_is_read_without_waiting_for_the_server_to_close() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                # As uvicorn answers an agent action: no Content-Length, the connection kept alive.
                writer.write(b"HTTP/1.1 204 No Content\r\nserver: test\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = HttpPool(f"http://127.0.0.1:{port}", size=1)
    try:
        # The guard only keeps a regression from hanging the suite; it times nothing.
        first = await asyncio.wait_for(pool.request("POST", "/a", {"x": "1"}), 30)
        second = await asyncio.wait_for(pool.request("POST", "/b", {"x": "2"}), 30)
    finally:
        await pool.close()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
    assert first == (204, b"") and second == (204, b"")
    assert len(writers) == 1  # the kept-alive connection served the second request too
