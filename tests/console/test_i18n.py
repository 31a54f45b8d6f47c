"""The Dutch catalog keeps up with the code: every UI string has a Dutch translation with the same placeholders."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from console import i18n
from console.web.render import Renderer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "messages.sh"
DUTCH = ROOT / "console" / "locale" / "nl" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\((\w+)\)[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")
FIX = "Run `make messages` and translate the new entries in console/locale/nl/LC_MESSAGES/messages.po."


def keywords() -> list[str]:
    """The extraction keywords of scripts/messages.sh, so the test extracts exactly what `make messages` does."""
    found = re.findall(r"--keywords=(\S+)", SCRIPT.read_text(encoding="utf-8"))
    assert "_" in found, f"no --keywords=_ found in {SCRIPT}"
    return found


def extract(tmp_path: Path) -> Catalog:
    pot = tmp_path / "messages.pot"
    command = [sys.executable, "-m", "babel.messages.frontend", "--quiet", "extract",
               "--mapping-file=babel.cfg", f"--output-file={pot}", "--no-location", "--sort-output",
               "--no-default-keywords", *(f"--keywords={k}" for k in keywords()), "."]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"extraction failed:\n{done.stdout}\n{done.stderr}"
    with pot.open("rb") as handle:
        return read_po(handle)


def dutch() -> Catalog:
    with DUTCH.open("rb") as handle:
        return read_po(handle, locale="nl")


def key(message: Message) -> str:
    return message.id[0] if isinstance(message.id, tuple) else message.id


def strings(value: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def placeholders(texts: list[str]) -> set[str]:
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


def test_every_extracted_message_has_a_dutch_translation(tmp_path: Path) -> None:
    extracted = [m for m in extract(tmp_path) if m.id]
    assert len(extracted) > 20, "the extraction found suspiciously few messages; check babel.cfg"
    catalog = dutch()
    missing = []
    for message in extracted:
        translated = catalog.get(message.id)
        if translated is None:
            missing.append(f"{key(message)!r} (not in the Dutch catalog)")
        elif translated.fuzzy:
            missing.append(f"{key(message)!r} (marked fuzzy)")
        elif not strings(translated.string) or not all(strings(translated.string)):
            missing.append(f"{key(message)!r} (empty translation)")
    listing = "\n  ".join(missing)
    assert not missing, f"{len(missing)} message(s) without a Dutch translation:\n  {listing}\n{FIX}"


def test_dutch_catalog_has_no_fuzzy_entries() -> None:
    fuzzy = [key(m) for m in dutch() if m.id and m.fuzzy]
    assert not fuzzy, f"fuzzy entries in {DUTCH.relative_to(ROOT)}: {fuzzy}; review them and drop the fuzzy flag"


def test_dutch_translations_keep_the_placeholders() -> None:
    wrong = []
    for message in dutch():
        if not message.id or not message.string:
            continue
        expected = placeholders(strings(message.id))
        for text in strings(message.string):
            got = placeholders([text])
            if got != expected:
                wrong.append(f"{key(message)!r}: msgid has {sorted(expected)}, msgstr {text!r} has {sorted(got)}")
            elif expected and "python-format" not in message.flags:
                wrong.append(f"{key(message)!r}: has placeholders but no python-format flag")
            elif expected:
                try:
                    text % dict.fromkeys(expected, "x")
                except (ValueError, TypeError, KeyError) as exc:
                    wrong.append(f"{key(message)!r}: msgstr {text!r} does not format ({exc})")
    assert not wrong, "placeholders differ between English and Dutch:\n  " + "\n  ".join(wrong)


def test_dutch_is_served() -> None:
    assert i18n.translations("nl").gettext("Available") == "Beschikbaar"
    assert i18n.translations("en").gettext("Available") == "Available"


def test_login_page_in_dutch() -> None:
    html = Renderer().render("login.html", "nl", csrf="x", error="", email="")
    assert "Inloggen" in html
    assert "Wachtwoord" in html
    assert '<html lang="nl">' in html
    english = Renderer().render("login.html", "en", csrf="x", error="", email="")
    assert "Log in" in english
    assert "Inloggen" not in english
