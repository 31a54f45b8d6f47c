"""Twilio as the tests play it: webhooks signed with Twilio's own library, and its REST API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
from twilio.request_validator import RequestValidator

TOKEN = "twilio-auth-token-" + "t" * 14
ACCOUNT = "AC" + "a" * 32
PUBLIC = "https://console.example.com"
TWILIO_SETTINGS: dict[str, object] = {"twilio_auth_token": TOKEN, "twilio_public_url": PUBLIC,
                                      "twilio_account_sid": ACCOUNT, "twilio_api_url": "https://api.twilio.test"}


def new_sid(prefix: str = "CA") -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class FakeApi:
    """Twilio's REST API as the console calls it: what it was asked, and an answer (`status`,
    with Twilio's error `code` when it refuses)."""

    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    status: int = 200
    code: int = 20003

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        self.requests.append((request.url.path, form))
        if self.status >= 500:
            return httpx.Response(self.status, text="upstream trouble")
        if self.status >= 400:
            return httpx.Response(self.status, json={"code": self.code, "message": "Refused by the fake"})
        prefix = "SM" if request.url.path.endswith("/Messages.json") else "CA"
        return httpx.Response(201, json={"sid": new_sid(prefix), "status": "queued"})


@dataclass
class Signer:
    """Sends webhooks as Twilio does: to the console's internal address, signed for the public one."""

    client: httpx.AsyncClient
    token: str = TOKEN
    public: str = PUBLIC

    async def post(self, path: str, params: dict[str, str], *, signed_url: str | None = None,
                   signature: str | None = None) -> httpx.Response:
        url = signed_url or self.public + path
        sign = signature if signature is not None else RequestValidator(self.token).compute_signature(url, params)
        return await self.client.post(path, data=params, headers={"X-Twilio-Signature": sign})
