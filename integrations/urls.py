"""The parts of a connection URL with credentials (a mailbox's, Asterisk's manager interface),
checked the same way for every integration; the messages never hold the password."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn
from urllib.parse import SplitResult, unquote

from console.logs import UNSAFE


def credentials(parts: SplitResult, fail: Callable[[str], NoReturn], *, shape: str, secret_word: str,
                user_hint: str = "", secret_hint: str = "", port_hint: str = "") -> tuple[str, str, str, int | None]:
    """User, secret, host and port (None: the scheme's default) of `parts`; `fail` is told what
    is wrong, in words that name `shape` (the URL's form) and `secret_word` (password, secret)."""
    if "@" not in parts.netloc:
        # A / ? or # in the secret ends the host part early: urlsplit then finds no user at all.
        fail(f"the URL has no user and {secret_word}: write {shape}, with a / ? # @ or % in the user or "
             f"{secret_word} written as %2F %3F %23 %40 %25")
    userinfo, _, _ = parts.netloc.rpartition("@")
    user_text, colon, secret_text = userinfo.partition(":")
    user, secret = unquote(user_text), unquote(secret_text)
    if not user:
        fail(f"the URL has no user name before the {secret_word} ({shape}{user_hint})")
    if not colon or not secret:
        fail(f"the URL has no {secret_word} after the user name ({shape}{secret_hint})")
    if UNSAFE.search(user) or UNSAFE.search(secret):
        fail(f"the user name or {secret_word} holds a control character (a line break or the like)")
    try:
        host = parts.hostname
    except ValueError:
        host = None
    if not host:
        fail(f"the URL has no host name after the @ ({shape})")
    if UNSAFE.search(host) or " " in host:
        fail("the host name holds a space or a control character")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        fail(f"the port after the host name must be a number from 1 to 65535{port_hint}")
    return user, secret, host, port
