"""The embedded default on a full disk: a clear refusal, nothing accepted then lost, no corruption.

The SQLite database lives on a small tmpfs of the test's own, which a filler file then fills to the
last byte, while the phone system posts calls and an agent works. Every write is refused with 503,
Retry-After and a message that names the disk; reads (the agent's page) go on; whatever was
answered 200 before is still there; once space is freed the same node stores again, and SQLite's
integrity check finds nothing wrong. Needs root (to mount the tmpfs): CI runs as root.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from console.db import Database
from console.models import Conversation
from tests.conftest import CTI_TOKEN, IN_CI, make_settings, migrated_sqlite, served
from tests.helpers import add_agent, log_in

URL = f"/integrations/cti/{CTI_TOKEN}"


@pytest.fixture
def small_disk() -> Iterator[Path]:
    mountpoint = Path(tempfile.mkdtemp(prefix="console-full-"))
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)], capture_output=True).returncode == 0
    if not mounted:
        mountpoint.rmdir()
        message = "mounting a small tmpfs needs root (the full-disk test fills one)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        mountpoint.rmdir()


def _fill(disk: Path) -> Path:
    """Fill the disk to its last byte."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(descriptor, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(descriptor)
    return filler


def _new_call(call_id: str) -> dict[str, str]:
    return {"event": "newCall", "from": "0612345678", "to": "0201234567", "direction": "in", "callId": call_id}


@pytest.fixture
def url_on_small_disk(small_disk: Path) -> str:
    return migrated_sqlite(small_disk / "console.db")


async def test_a_full_disk_refuses_writes_clearly_and_loses_nothing(small_disk: Path, url_on_small_disk: str,
                                                                   tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    url = url_on_small_disk
    db = Database(url)
    try:
        await add_agent(db, "anna@x.nl", "Anna", extension="201")
    finally:
        await db.close()
    async with served(make_settings(url, tmp_path)) as (_, client):
        token = await log_in(client, "anna@x.nl")  # type: ignore[arg-type]
        before = [await client.post(URL, data=_new_call(f"before-{n}")) for n in range(5)]  # type: ignore[attr-defined]
        assert all(r.status_code == 200 for r in before)

        filler = _fill(small_disk)
        with caplog.at_level(logging.WARNING):
            refused = [await client.post(URL, data=_new_call(f"full-{n}")) for n in range(20)]  # type: ignore[attr-defined]
            status = await client.post("/agent/status", data={"status": "available"},  # type: ignore[attr-defined]
                                       headers={"X-CSRF-Token": token, "HX-Request": "true"})
            page = await client.get("/")  # type: ignore[attr-defined]
        answers = {r.status_code for r in refused}
        stored_anyway = [r for r in refused if r.status_code == 200]
        assert answers <= {200, 503}, [r.text for r in refused if r.status_code not in (200, 503)]
        assert len(stored_anyway) < len(refused), "a full disk was noticed"
        for response in refused:
            if response.status_code == 503:
                assert response.headers["retry-after"] and "disk" in response.json()["error"]
        assert status.status_code == 503 and "disk" in status.text, "the agent is told why"
        assert page.status_code == 200, "reading goes on"
        assert not [r for r in caplog.records if r.exc_info], "no traceback, a line that says what is wrong"
        assert any("disk" in r.getMessage() and r.levelno >= logging.ERROR for r in caplog.records), \
            "the admin is told in the log"

        filler.unlink()
        after = await client.post(URL, data=_new_call("after"))  # type: ignore[attr-defined]
        assert after.status_code == 200, "the same node stores again once there is room"
        retried = [await client.post(URL, data=_new_call(f"full-{n}")) for n in range(20)]  # type: ignore[attr-defined]
        assert all(r.status_code == 200 for r in retried), "the phone system's retries are stored"

    db = Database(url)
    try:
        async with db.reading() as session:
            assert (await session.execute(text("PRAGMA integrity_check"))).scalar() == "ok"
            ids = set(await session.scalars(select(Conversation.external_id)))
            count = await session.scalar(select(func.count()).select_from(Conversation))
    finally:
        await db.close()
    assert ids == {f"before-{n}" for n in range(5)} | {f"full-{n}" for n in range(20)} | {"after"}
    assert count == len(ids), "each call once"
    shutil.rmtree(tmp_path, ignore_errors=True)
