from pathlib import Path

import pytest

from console.errors import InvalidInput
from console.settings import load


def test_embedded_default_is_sqlite_under_var_and_the_memory_bus(tmp_path: Path) -> None:
    settings = load({"CONSOLE_VAR_DIR": str(tmp_path), "CONSOLE_SECRET_KEY": "s" * 32})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'console.db'}"
    assert settings.redis_url == "" and settings.default_region == "NL" and not settings.demo


def test_a_secret_key_is_required_outside_demo_mode(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="CONSOLE_SECRET_KEY is required"):
        load({"CONSOLE_VAR_DIR": str(tmp_path)})


def test_demo_mode_generates_and_keeps_a_secret_key_and_cti_token(tmp_path: Path) -> None:
    first = load({"CONSOLE_VAR_DIR": str(tmp_path), "CONSOLE_DEMO": "1"})
    second = load({"CONSOLE_VAR_DIR": str(tmp_path), "CONSOLE_DEMO": "true"})
    assert len(first.secret_key) >= 32 and first.secret_key == second.secret_key
    assert first.cti_token and first.cti_token == second.cti_token
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_region_and_database_url_are_checked(tmp_path: Path) -> None:
    base = {"CONSOLE_VAR_DIR": str(tmp_path), "CONSOLE_SECRET_KEY": "k" * 32}
    assert load({**base, "CONSOLE_DEFAULT_REGION": "be"}).default_region == "BE"
    with pytest.raises(InvalidInput, match="CONSOLE_DEFAULT_REGION"):
        load({**base, "CONSOLE_DEFAULT_REGION": "XX"})
    with pytest.raises(InvalidInput, match="CONSOLE_DATABASE_URL"):
        load({**base, "CONSOLE_DATABASE_URL": "mysql://x"})
    url = load({**base, "CONSOLE_DATABASE_URL": "postgresql://u@h/db"}).database_url
    assert url == "postgresql+asyncpg://u@h/db"


def test_login_limits_and_trusted_proxies_are_read_and_checked(tmp_path: Path) -> None:
    base = {"CONSOLE_VAR_DIR": str(tmp_path), "CONSOLE_SECRET_KEY": "k" * 32}
    default = load(base)
    assert default.trusted_proxies == ("127.0.0.1", "::1") and default.login_free_failures == 3
    settings = load({**base, "CONSOLE_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.5", "CONSOLE_LOGIN_FREE_FAILURES": "5",
                     "CONSOLE_LOGIN_DELAY": "1.5", "CONSOLE_LOGIN_ADDRESS_CEILING": "500",
                     "CONSOLE_LOGIN_WINDOW": "600"})
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.5")
    assert (settings.login_free_failures, settings.login_delay, settings.login_address_ceiling,
            settings.login_window_seconds) == (5, 1.5, 500, 600)
    with pytest.raises(InvalidInput, match=r"CONSOLE_TRUSTED_PROXIES: 'lb\.internal' is not an IP address"):
        load({**base, "CONSOLE_TRUSTED_PROXIES": "lb.internal"})
    with pytest.raises(InvalidInput, match="CONSOLE_LOGIN_FREE_FAILURES='many' must be a whole number"):
        load({**base, "CONSOLE_LOGIN_FREE_FAILURES": "many"})


def test_operator_addresses_and_metrics_token(tmp_path: Path) -> None:
    base = {"CONSOLE_VAR_DIR": str(tmp_path), "CONSOLE_SECRET_KEY": "k" * 32}
    assert load(base).operator_addresses == ("127.0.0.1", "::1") and load(base).metrics_token == ""
    settings = load({**base, "CONSOLE_OPERATOR_ADDRESSES": "10.1.0.0/16", "CONSOLE_METRICS_TOKEN": " t0ken "})
    assert settings.operator_addresses == ("10.1.0.0/16",) and settings.metrics_token == "t0ken"
    with pytest.raises(InvalidInput, match="CONSOLE_OPERATOR_ADDRESSES"):
        load({**base, "CONSOLE_OPERATOR_ADDRESSES": "prometheus"})


def test_session_lifetimes(tmp_path: Path) -> None:
    base = {"CONSOLE_VAR_DIR": str(tmp_path), "CONSOLE_SECRET_KEY": "k" * 32}
    assert (load(base).session_max_age, load(base).session_idle) == (12 * 3600, 4 * 3600)
    settings = load({**base, "CONSOLE_SESSION_LIFETIME": "28800", "CONSOLE_SESSION_IDLE": "1800"})
    assert (settings.session_max_age, settings.session_idle) == (28800, 1800)
    with pytest.raises(InvalidInput, match="CONSOLE_SESSION_IDLE"):
        load({**base, "CONSOLE_SESSION_IDLE": "10"})
