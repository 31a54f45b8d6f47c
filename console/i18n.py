"""Translations (English and Dutch) read from the gettext catalogs under console/locale/."""

from __future__ import annotations

import gettext
from datetime import datetime
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime, get_timezone
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES = ("en", "nl")
TIMEZONE = "Europe/Amsterdam"


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where it is shown."""
    return message


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalog for `language`, compiled in memory from its .po file (no build step needed)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language not in LANGUAGES or not po.exists():
        return gettext.NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def pick_language(accept_language: str, default: str = "en") -> str:
    """The first of our languages named in an Accept-Language header."""
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return default


def money(value: Decimal | float, language: str, currency: str = "EUR") -> str:
    return format_currency(value, currency, locale=Locale.parse(language))


def when(value: datetime | None, language: str, fmt: str = "medium", timezone: str = TIMEZONE) -> str:
    if value is None:
        return ""
    return format_datetime(value, fmt, tzinfo=get_timezone(timezone), locale=Locale.parse(language))
