"""The command line as an admin uses it: python -m console ..."""

import os
import subprocess
import sys
from pathlib import Path


def console(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONSOLE_VAR_DIR": str(tmp_path / "var"), "CONSOLE_DATABASE_URL": "",
           "CONSOLE_SECRET_KEY": "", "CONSOLE_DEMO": "", **(env or {})}
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


def test_migrate_create_agent_and_import_customers(tmp_path: Path) -> None:
    assert console(tmp_path, "migrate").returncode == 0
    assert (tmp_path / "var" / "console.db").exists()
    created = console(tmp_path, "create-agent", "--email", "Anna@X.nl", "--name", "Anna", "--password",
                      "long enough", "--extension", "201")
    assert created.returncode == 0 and "anna@x.nl" in created.stdout
    again = console(tmp_path, "create-agent", "--email", "anna@x.nl", "--name", "Anna", "--password", "long enough")
    assert again.returncode == 2 and "exists already" in again.stderr
    short = console(tmp_path, "create-agent", "--email", "b@x.nl", "--name", "B", "--password", "short")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr

    csv = tmp_path / "customers.csv"
    csv.write_text("name,phones,emails,owner\nJan,0612345678,jan@x.nl,anna@x.nl\nPiet,12,,\n", encoding="utf-8")
    imported = console(tmp_path, "import-customers", str(csv))
    assert imported.returncode == 0, imported.stderr
    assert "1 created, 0 updated, 1 rows with errors" in imported.stdout
    assert "line 3: '12' is not a valid phone" in imported.stderr
    missing = console(tmp_path, "import-customers", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_serve_needs_a_secret_key_and_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    no_key = console(tmp_path, "serve")
    assert no_key.returncode == 2 and "CONSOLE_SECRET_KEY is required" in no_key.stderr
    workers = console(tmp_path, "serve", "--workers", "2", env={"CONSOLE_SECRET_KEY": "k" * 40})
    assert workers.returncode == 2
    assert "SQLite serves one process only" in workers.stderr and "use PostgreSQL" in workers.stderr
    no_bus = console(tmp_path, "serve", "--workers", "2", env={
        "CONSOLE_SECRET_KEY": "k" * 40, "CONSOLE_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/none"})
    assert no_bus.returncode == 2 and "CONSOLE_REDIS_URL" in no_bus.stderr


def test_routing_is_configured_from_the_command_line(tmp_path: Path) -> None:
    assert console(tmp_path, "migrate").returncode == 0
    assert console(tmp_path, "create-agent", "--email", "anna@x.nl", "--name", "Anna", "--password",
                   "long enough").returncode == 0
    assert console(tmp_path, "skill", "german").returncode == 0
    made = console(tmp_path, "queue", "de", "--skill", "german:3", "--offer-seconds", "30", "--weights", "4,2,1",
                   "--disposition", "gelöst", "--disposition", "Rückruf")
    assert made.returncode == 0 and "created queue de: offers ring 30 s" in made.stdout
    unknown = console(tmp_path, "queue", "fr", "--skill", "french")
    assert unknown.returncode == 2 and "unknown skill french (known: german)" in unknown.stderr
    negative = console(tmp_path, "agent", "anna@x.nl", "--capacity", "chat=-1")
    assert negative.returncode == 2 and "chat capacity must be between 0 and 50" in negative.stderr
    ok = console(tmp_path, "agent", "anna@x.nl", "--skill", "german:4", "--capacity", "chat=2,mail=4")
    assert ok.returncode == 0 and "chat 2, mail 4" in ok.stdout


def test_an_admin_sets_extension_and_language_and_resets_a_password(tmp_path: Path) -> None:
    assert console(tmp_path, "migrate").returncode == 0
    for email, extension in (("anna@x.nl", "201"), ("bram@x.nl", "202")):
        assert console(tmp_path, "create-agent", "--email", email, "--name", email[:4], "--password",
                       "long enough", "--extension", extension).returncode == 0
    taken = console(tmp_path, "agent", "anna@x.nl", "--extension", "202")
    assert taken.returncode == 2 and "extension 202 belongs to bram@x.nl" in taken.stderr
    moved = console(tmp_path, "agent", "anna@x.nl", "--extension", "205", "--language", "nl")
    assert moved.returncode == 0 and "ext. 205, nl" in moved.stdout
    gone = console(tmp_path, "agent", "anna@x.nl", "--extension", "")
    assert gone.returncode == 0 and "ext. none" in gone.stdout
    made_up = console(tmp_path, "reset-password", "anna@x.nl")
    assert made_up.returncode == 0 and "their sessions have ended" in made_up.stdout
    assert "new password: " in made_up.stdout
    chosen = console(tmp_path, "reset-password", "bram@x.nl", "--password", "short")
    assert chosen.returncode == 2 and "at least 8 characters" in chosen.stderr
    unknown = console(tmp_path, "reset-password", "nobody@x.nl")
    assert unknown.returncode == 2 and "no agent with email nobody@x.nl" in unknown.stderr


def test_a_queues_service_level_and_an_agents_name_are_set_from_the_command_line(tmp_path: Path) -> None:
    assert console(tmp_path, "migrate").returncode == 0
    made = console(tmp_path, "queue", "service")
    assert made.returncode == 0
    assert "service level 80% within 20 s, short abandon 5 s, longest wait 60 s" in made.stdout, "the defaults"
    changed = console(tmp_path, "queue", "service", "--service-level-seconds", "15", "--service-level-goal", "90",
                      "--short-abandon-seconds", "3", "--longest-wait-seconds", "45")
    assert changed.returncode == 0, changed.stderr
    assert "updated queue service" in changed.stdout
    assert "service level 90% within 15 s, short abandon 3 s, longest wait 45 s" in changed.stdout
    for option, value, error in (
            ("--service-level-goal", "101", "service level goal (percent) must be between 1 and 100, not 101"),
            ("--service-level-seconds", "0", "service level seconds must be between 1 and 3600, not 0"),
            ("--short-abandon-seconds", "601", "short abandon seconds must be between 0 and 600, not 601"),
            ("--longest-wait-seconds", "-1", "longest wait seconds must be between 1 and 3600, not -1")):
        refused = console(tmp_path, "queue", "service", option, value, "--offer-seconds", "30")
        assert refused.returncode == 2 and error in refused.stderr
    kept = console(tmp_path, "queue", "service")
    assert "offers ring 20 s" in kept.stdout and "service level 90% within 15 s" in kept.stdout, "nothing half-saved"
    assert console(tmp_path, "create-agent", "--email", "anna@x.nl", "--name", "Anna", "--password",
                   "long enough").returncode == 0
    renamed = console(tmp_path, "agent", "anna@x.nl", "--name", "Anna de Vries")
    assert renamed.returncode == 0 and renamed.stdout.startswith("Anna de Vries (agent")
    empty = console(tmp_path, "agent", "anna@x.nl", "--name", " ")
    assert empty.returncode == 2 and "A name has 1 to 200 characters." in empty.stderr
