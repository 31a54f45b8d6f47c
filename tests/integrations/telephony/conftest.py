"""Fixtures of the telephony tests: a scripted Asterisk manager interface per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integrations.telephony.amipeer import SECRET, AmiPeer


@pytest.fixture
async def peer() -> AsyncIterator[AmiPeer]:
    """A scripted Asterisk on a free port of 127.0.0.1, stopped after the test."""
    server = AmiPeer(secret=SECRET)
    await server.start()
    yield server
    await server.stop()
