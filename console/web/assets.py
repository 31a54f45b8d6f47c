"""Where templates/ and static/ are: inside the installed package, or at the repository root."""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

IMMUTABLE = "public, max-age=31536000, immutable"
PACKAGE = Path(__file__).resolve().parent.parent


def asset_dir(name: str) -> Path:
    for candidate in (PACKAGE / name, PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"cannot find the {name}/ directory next to {PACKAGE}")


class Versions:
    """Static URLs that carry a hash of the file: browsers keep them for a year, and a new
    release is a new URL, so nobody runs yesterday's script against today's page."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._urls: dict[str, str] = {}

    def url(self, path: str) -> str:
        if path not in self._urls:
            digest = hashlib.sha256((self.root / path).read_bytes()).hexdigest()[:12]
            self._urls[path] = f"/static/{path}?v={digest}"
        return self._urls[path]


class StaticAssets(StaticFiles):
    """Static files with cache headers: versioned URLs are immutable, others are checked each time."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        versioned = b"v=" in scope.get("query_string", b"")
        response.headers["Cache-Control"] = IMMUTABLE if versioned and response.status_code == 200 else "no-cache"
        return response
