"""One Settings object, read from CONSOLE_* environment variables."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from console.errors import InvalidInput
from console.ports import DEFAULT_AWAY_REASONS

TRUE = {"1", "true", "yes", "on"}


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in TRUE


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str
    redis_url: str = ""
    redis_prefix: str = "console:"
    secret_key: str
    default_region: str = "NL"
    cti_token: str = ""
    var_dir: Path = Path("var")
    demo: bool = False
    default_language: str = "en"
    timezone: str = "Europe/Amsterdam"
    cookie_secure: bool = False
    session_max_age: int = 12 * 3600  # absolute: a login lasts this long at most
    session_idle: int = 4 * 3600  # a session without a request for this long has ended
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    stream_backlog: int = 1000
    socket_queue_size: int = 256
    # Chat, per node: messages a visitor may send a minute; from one client address (all its
    # visitors: an office or a mobile network shares one), and new visitors from one address.
    chat_messages_per_minute: int = 30
    chat_address_messages_per_minute: int = 300
    chat_address_visitors_per_minute: int = 120
    login_free_failures: int = 3
    login_delay: float = 2.0
    login_max_delay: float = 900.0
    login_address_ceiling: int = 100
    login_window_seconds: int = 900
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    operator_addresses: tuple[str, ...] = ("127.0.0.1", "::1")
    metrics_token: str = ""
    presence_grace: float = 30.0
    sweep_interval: float = 1.0
    write_wait: float = 2.0
    away_reasons: tuple[str, ...] = DEFAULT_AWAY_REASONS
    # Days to keep (None: for ever): conversations are anonymised after, notes and audit entries deleted.
    retain_conversations_days: int | None = None
    retain_notes_days: int | None = None
    retain_audit_days: int | None = None
    # Mailboxes to read: (name, URL) from CONSOLE_MAILBOX_<NAME>; the mail integrations read the URLs.
    mailboxes: tuple[tuple[str, str], ...] = ()
    smtp_url: str = ""  # where replies are sent (integrations.email.smtp_out reads it)
    dkim_selector: str = ""
    dkim_key_file: str = ""
    # Twilio (integrations.telephony.twilio, integrations.messaging.twilio): on when the auth token
    # is set; the public URL is the console's address as Twilio reaches it (signatures cover it).
    twilio_auth_token: str = ""
    twilio_account_sid: str = ""
    twilio_public_url: str = ""
    twilio_api_url: str = "https://api.twilio.com"
    twilio_dial: str = "client:{extension}"
    twilio_whatsapp_templates: tuple[tuple[str, str], ...] = ()
    # Asterisk's manager interface (integrations.telephony.asterisk): ami://user:secret@host:5038
    asterisk_url: str = ""

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _seconds(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise InvalidInput(f"{name}={raw!r} must be a number of seconds between 0 and 86400", field=name)
    return value


def _count(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(f"{name}={raw!r} must be a whole number from {low} to {high}", field=name)
    return int(raw)


def _days(env: dict[str, str], name: str) -> int | None:
    """A retention in days; unset or empty keeps for ever."""
    if not env.get(name, "").strip():
        return None
    return _count(env, name, 0, 1, 36_500)


def _networks(env: dict[str, str], name: str) -> tuple[str, ...]:
    """Addresses or networks (comma-separated), `*` for any; loopback when unset."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return ("127.0.0.1", "::1")
    found: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if item == "*":
            found.append(item)
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            message = f"{name}: {item!r} is not an IP address or network such as 10.0.0.0/8"
            raise InvalidInput(message, field=name) from None
        found.append(item)
    return tuple(found)


def _kept_secret(var_dir: Path, name: str) -> str:
    """A random value generated once and kept under var/ (demo and embedded use)."""
    path = var_dir / name
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


MAILBOX_PREFIX = "CONSOLE_MAILBOX_"


def _mailboxes(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """CONSOLE_MAILBOX_<NAME>=<url>, one per mailbox; the name (letters, digits, _) names it in the
    console, its logs and /metrics."""
    found = []
    for key in sorted(env):
        if not key.startswith(MAILBOX_PREFIX) or not env[key].strip():
            continue
        name = key.removeprefix(MAILBOX_PREFIX).lower()
        if not name or len(name) > 100 or not all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in name):
            raise InvalidInput(f"{key}: a mailbox's name has letters, digits and _ only", field=key)
        found.append((name, env[key].strip()))
    return tuple(found)


def _url(env: dict[str, str], name: str, schemes: tuple[str, ...], default: str = "") -> str:
    """A URL setting with one of `schemes` (checked here; the integration reads the rest)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() not in schemes or not rest.strip("/"):
        raise InvalidInput(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}", field=name)
    return raw


def _twilio(env: dict[str, str]) -> dict[str, object]:
    token = env.get("CONSOLE_TWILIO_AUTH_TOKEN", "").strip()
    public = _url(env, "CONSOLE_TWILIO_PUBLIC_URL", ("https", "http")).rstrip("/")
    if token and not public:
        raise InvalidInput("CONSOLE_TWILIO_PUBLIC_URL is required with CONSOLE_TWILIO_AUTH_TOKEN: the console's "
                           "address as Twilio reaches it, such as https://console.example.com",
                           field="CONSOLE_TWILIO_PUBLIC_URL")
    sid = env.get("CONSOLE_TWILIO_ACCOUNT_SID", "").strip()
    if sid and not (sid.startswith("AC") and len(sid) == 34 and sid.isalnum()):
        raise InvalidInput("CONSOLE_TWILIO_ACCOUNT_SID must be the account SID from Twilio's console (AC and 32 "
                           "characters)", field="CONSOLE_TWILIO_ACCOUNT_SID")
    dial = env.get("CONSOLE_TWILIO_DIAL", "").strip() or "client:{extension}"
    if "{extension}" not in dial or not dial.startswith(("client:", "sip:", "+", "{extension}")):
        raise InvalidInput("CONSOLE_TWILIO_DIAL must contain {extension} and start with client:, sip: or +, such "
                           "as client:{extension} or sip:{extension}@pbx.example.com", field="CONSOLE_TWILIO_DIAL")
    templates = []
    for item in (part.strip() for part in env.get("CONSOLE_TWILIO_WHATSAPP_TEMPLATES", "").split(",")):
        if not item:
            continue
        name, sep, content_sid = (p.strip() for p in item.partition("="))
        if not sep or not name or not (content_sid.startswith("HX") and content_sid.isalnum()):
            problem = (f"{item!r} in CONSOLE_TWILIO_WHATSAPP_TEMPLATES is not name=HX... (an approved template's "
                       "content SID); the setting is a comma-separated list of them")
            raise InvalidInput(problem, field="CONSOLE_TWILIO_WHATSAPP_TEMPLATES")
        templates.append((name[:100], content_sid))
    return {"twilio_auth_token": token, "twilio_account_sid": sid, "twilio_public_url": public,
            "twilio_api_url": _url(env, "CONSOLE_TWILIO_API_URL", ("https", "http"),
                                   "https://api.twilio.com").rstrip("/"),
            "twilio_dial": dial, "twilio_whatsapp_templates": tuple(templates)}


def load(
    environ: dict[str, str] | None = None, *, demo: bool | None = None, need_secret: bool = True
) -> Settings:
    """Read settings from the environment; raise InvalidInput with the variable's name on error."""
    env = dict(os.environ if environ is None else environ)
    var_dir = Path(env.get("CONSOLE_VAR_DIR") or "var")
    is_demo = _flag(env.get("CONSOLE_DEMO")) if demo is None else demo
    database_url = env.get("CONSOLE_DATABASE_URL") or f"sqlite+aiosqlite:///{var_dir / 'console.db'}"
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+asyncpg://" + database_url.removeprefix("postgresql://")
    if not database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise InvalidInput(
            "CONSOLE_DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://",
            field="CONSOLE_DATABASE_URL",
        )
    secret_key = env.get("CONSOLE_SECRET_KEY", "")
    if not secret_key and need_secret:
        if not is_demo:
            raise InvalidInput(
                "CONSOLE_SECRET_KEY is required outside demo mode "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                field="CONSOLE_SECRET_KEY",
            )
        secret_key = _kept_secret(var_dir, "secret_key")
    cti_token = env.get("CONSOLE_CTI_TOKEN", "")
    if not cti_token and is_demo:
        cti_token = _kept_secret(var_dir, "cti_token")
    region = (env.get("CONSOLE_DEFAULT_REGION") or "NL").upper()
    import phonenumbers

    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(
            f"CONSOLE_DEFAULT_REGION={region!r} is not a region code such as NL, BE, DE or GB",
            field="CONSOLE_DEFAULT_REGION",
        )
    language = env.get("CONSOLE_DEFAULT_LANGUAGE") or "en"
    if language not in ("en", "nl"):
        raise InvalidInput("CONSOLE_DEFAULT_LANGUAGE must be en or nl", field="CONSOLE_DEFAULT_LANGUAGE")
    timezone = env.get("CONSOLE_TIMEZONE") or "Europe/Amsterdam"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"CONSOLE_TIMEZONE={timezone!r} is not a time zone such as Europe/Amsterdam",
                           field="CONSOLE_TIMEZONE") from None
    grace = _seconds(env, "CONSOLE_PRESENCE_GRACE", 30.0)
    interval = _seconds(env, "CONSOLE_SWEEP_INTERVAL", 1.0)
    if interval > grace / 3:
        raise InvalidInput("CONSOLE_SWEEP_INTERVAL must be at most a third of CONSOLE_PRESENCE_GRACE",
                           field="CONSOLE_SWEEP_INTERVAL")
    reasons = tuple(r.strip()[:100] for r in env.get("CONSOLE_AWAY_REASONS", "").split(",") if r.strip())
    reasons = tuple(dict.fromkeys(reasons or DEFAULT_AWAY_REASONS))
    origins = tuple(o.strip().rstrip("/") for o in env.get("CONSOLE_ALLOWED_ORIGINS", "").split(",") if o.strip())
    return Settings(
        database_url=database_url,
        redis_url=env.get("CONSOLE_REDIS_URL", ""),
        redis_prefix=env.get("CONSOLE_REDIS_PREFIX") or "console:",
        secret_key=secret_key,
        default_region=region,
        cti_token=cti_token,
        var_dir=var_dir,
        demo=is_demo,
        default_language=language,
        timezone=timezone,
        presence_grace=grace,
        sweep_interval=interval,
        write_wait=_seconds(env, "CONSOLE_WRITE_WAIT", 2.0),
        away_reasons=reasons,
        cookie_secure=_flag(env.get("CONSOLE_COOKIE_SECURE"), default=not is_demo),
        allowed_origins=origins,
        chat_messages_per_minute=_count(env, "CONSOLE_CHAT_MESSAGES_PER_MINUTE", 30, 1, 10_000),
        chat_address_messages_per_minute=_count(env, "CONSOLE_CHAT_ADDRESS_MESSAGES_PER_MINUTE", 300, 1, 1_000_000),
        chat_address_visitors_per_minute=_count(env, "CONSOLE_CHAT_ADDRESS_VISITORS_PER_MINUTE", 120, 1, 1_000_000),
        login_free_failures=_count(env, "CONSOLE_LOGIN_FREE_FAILURES", 3, 1, 100),
        login_delay=_seconds(env, "CONSOLE_LOGIN_DELAY", 2.0),
        login_max_delay=_seconds(env, "CONSOLE_LOGIN_MAX_DELAY", 900.0),
        login_address_ceiling=_count(env, "CONSOLE_LOGIN_ADDRESS_CEILING", 100, 1, 100_000),
        login_window_seconds=_count(env, "CONSOLE_LOGIN_WINDOW", 900, 60, 86400),
        session_max_age=_count(env, "CONSOLE_SESSION_LIFETIME", 12 * 3600, 300, 30 * 86400),
        session_idle=_count(env, "CONSOLE_SESSION_IDLE", 4 * 3600, 60, 30 * 86400),
        trusted_proxies=_networks(env, "CONSOLE_TRUSTED_PROXIES"),
        operator_addresses=_networks(env, "CONSOLE_OPERATOR_ADDRESSES"),
        metrics_token=env.get("CONSOLE_METRICS_TOKEN", "").strip(),
        retain_conversations_days=_days(env, "CONSOLE_RETAIN_CONVERSATIONS_DAYS"),
        retain_notes_days=_days(env, "CONSOLE_RETAIN_NOTES_DAYS"),
        retain_audit_days=_days(env, "CONSOLE_RETAIN_AUDIT_DAYS"),
        mailboxes=_mailboxes(env),
        smtp_url=env.get("CONSOLE_SMTP_URL", "").strip(),
        dkim_selector=env.get("CONSOLE_DKIM_SELECTOR", "").strip(),
        dkim_key_file=env.get("CONSOLE_DKIM_KEY_FILE", "").strip(),
        asterisk_url=_url(env, "CONSOLE_ASTERISK_URL", ("ami", "amis")),
        **_twilio(env),  # type: ignore[arg-type]
    )
