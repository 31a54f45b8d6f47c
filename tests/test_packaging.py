"""A wheel carries the templates, static files, catalogs and migrations the app needs."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_includes_templates_static_files_catalogs_and_migrations(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ["console/templates/agent.html", "console/templates/partials/pop.html",
                   "console/static/vendor/htmx-4.0.1/htmx.min.js", "console/static/vendor/htmx-4.0.1/hx-ws.js",
                   "console/static/console.js", "console/locale/nl/LC_MESSAGES/messages.po",
                   "console/migrations/versions/0001_first_tables.py", "console/migrations/script.py.mako",
                   "realtime/hub.py", "integrations/telephony/cti.py"]:
        assert needed in names, needed


def test_the_app_finds_its_templates_from_any_working_directory(tmp_path: Path) -> None:
    code = "from console.web.assets import asset_dir; print(asset_dir('templates'), asset_dir('static'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, capture_output=True, text=True)
    templates, static = result.stdout.split()
    assert Path(templates, "agent.html").exists() and Path(static, "console.css").exists()
