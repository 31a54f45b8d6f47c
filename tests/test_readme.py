"""The README's settings table is the documentation of every setting: none may be missing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_the_code_reads_is_in_the_readmes_table() -> None:
    read = {name for package in ("console", "integrations", "realtime")
            for path in (ROOT / package).rglob("*.py")
            for name in re.findall(r'"(CONSOLE_[A-Z_]+)"', path.read_text())}
    # A family of settings (CONSOLE_MAILBOX_<NAME>) is read by its prefix and documented as one row.
    documented = set(re.findall(r"^\| `(CONSOLE_[A-Z_]+)(?:<[A-Z]+>)?` \|", (ROOT / "README.md").read_text(), re.M))
    assert len(read) > 20, "the search for settings found suspiciously few"
    assert read <= documented, f"settings missing from the README's table: {sorted(read - documented)}"


def test_the_readme_and_docs_stand_alone() -> None:
    """Nothing the project documents points outside the repository for its design."""
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        text = path.read_text()
        assert "../" not in re.sub(r"\]\((?!\.\./)[^)]*\)", "", text), f"{path.name} points outside the repository"
