"""The database wrapper: an exhausted connection pool is 'try again later', not a server error."""

from __future__ import annotations

import pytest

from console.db import Database
from console.errors import Unavailable


async def test_a_full_pool_is_unavailable_not_an_error(pg_url: str) -> None:
    db = Database(pg_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    try:
        async with db.transaction() as first:
            await first.connection()
            with pytest.raises(Unavailable, match="busy"):
                async with db.transaction() as second:
                    await second.connection()
    finally:
        await db.close()
