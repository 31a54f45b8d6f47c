#!/usr/bin/env bash
# Extract the translatable strings into console/locale/messages.pot and merge them into the
# Dutch and English catalogs. Run from the repository root (`make messages`), then translate
# every new or empty msgstr in console/locale/nl/LC_MESSAGES/messages.po.
set -euo pipefail

PYBABEL="${PYBABEL:-.venv/bin/pybabel}"
LOCALE_DIR=console/locale
POT="$LOCALE_DIR/messages.pot"
LANGUAGES=(nl en)

if [[ ! -f babel.cfg ]]; then
    echo "messages.sh: run from the repository root (babel.cfg not found)" >&2
    exit 1
fi

new_pot="$(mktemp)"
trap 'rm -f "$new_pot"' EXIT

"$PYBABEL" --quiet extract \
    --mapping-file=babel.cfg \
    --output-file="$new_pot" \
    --no-location \
    --sort-output \
    --no-wrap \
    --project=agent-console \
    --copyright-holder="agent-console authors" \
    --no-default-keywords \
    --keywords=_ \
    --keywords=N_ \
    --keywords=gettext \
    --keywords=ngettext:1,2 \
    --keywords=InvalidInput \
    --keywords=NotFound \
    --keywords=Conflict \
    --keywords=Forbidden \
    --keywords=IdentityRefused \
    --keywords=TooManyAttempts \
    --keywords=TooLarge \
    --keywords=Unavailable \
    .

# Keep the old template (and with it the catalogs' POT-Creation-Date) when only the date changed.
without_date() { grep -v '^"POT-Creation-Date: ' "$1"; }
if [[ -f "$POT" ]] && cmp -s <(without_date "$POT") <(without_date "$new_pot"); then
    echo "$POT is up to date"
else
    cat "$new_pot" >"$POT"
    echo "wrote $POT"
fi

for lang in "${LANGUAGES[@]}"; do
    po="$LOCALE_DIR/$lang/LC_MESSAGES/messages.po"
    if [[ -f "$po" ]]; then
        "$PYBABEL" update \
            --input-file="$POT" \
            --output-dir="$LOCALE_DIR" \
            --locale="$lang" \
            --no-fuzzy-matching \
            --ignore-obsolete \
            --no-wrap
    else
        "$PYBABEL" init \
            --input-file="$POT" \
            --output-dir="$LOCALE_DIR" \
            --locale="$lang" \
            --no-wrap
    fi
done

# English falls back to the msgids; every Dutch entry needs a translation (tests/console/test_i18n.py).
"${PYTHON:-.venv/bin/python}" - "$LOCALE_DIR/nl/LC_MESSAGES/messages.po" <<'PY'
import sys

from babel.messages.pofile import read_po

with open(sys.argv[1], "rb") as handle:
    catalog = read_po(handle, locale="nl")
todo = [m.id for m in catalog if m.id and (m.fuzzy or not all(m.string if isinstance(m.string, tuple) else [m.string]))]
print(f"{sys.argv[1]}: {len(catalog)} messages, {len(todo)} to translate")
for msgid in todo:
    print(f"  {msgid!r}")
PY
