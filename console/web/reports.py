"""The reports page (`GET /reports`) and each of its tables as CSV (`GET /reports/{table}.csv`),
for supervisors and admins. The chart is SVG drawn by the template: no chart script in the page."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from console import i18n, reports
from console.errors import ConsoleError, InvalidInput, NotFound
from console.metrics import Tally
from console.web.pages import wiring
from console.web.security import csrf_token
from console.web.supervisor import me, supervisors

NO_TABLE = NotFound("There is no such table; choose time, queue, channel, agent or dispositions.")


async def _report(request: Request) -> tuple[reports.Report, str]:
    w = wiring(request)
    zone = ZoneInfo(w.settings.timezone)
    params = request.query_params
    today = datetime.now(zone).date()
    span = reports.parse_range(_param(params, "from"), _param(params, "to"), zone, today)
    async with w.ctx.db.reading() as session:
        report = await reports.build(session, span, _param(params, "interval") or "day", zone)
    return report, zone.key


def _param(params: QueryParams, name: str) -> str:
    value = params.get(name, "")
    if len(value) > 20:
        raise InvalidInput("This value is too long.", field=name)
    return value


@supervisors(page=True)
async def reports_page(request: Request, by: int) -> Response:
    w = wiring(request)
    name, language, role = await me(w, by)
    values = {"name": name, "role": role, "here": "/reports", "csrf": csrf_token(request.session),
              "query": request.url.query, "params": request.query_params}
    try:
        report, zone = await _report(request)
    except ConsoleError as exc:  # a wrong date: the form says which, and nothing else is shown
        html = w.renderer.render("reports.html", language, report=None, zone=w.settings.timezone,
                                 error=exc.translated(i18n.translations(language).gettext), error_field=exc.field,
                                 **values)
        return HTMLResponse(html, status_code=422)
    html = w.renderer.render("reports.html", language, report=report, zone=zone, error="", error_field=None,
                             **values)
    return HTMLResponse(html)


def _figures(t: Tally) -> list[str]:
    def num(value: float | None, digits: int = 1) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    return [str(t.offered), str(t.answered), str(t.answered_in_threshold), str(t.abandoned), str(t.short_abandoned),
            num(None if t.service_level is None else t.service_level * 100), num(t.speed_of_answer),
            num(t.handle_time), num(None if t.abandonment_rate is None else t.abandonment_rate * 100),
            str(t.handled), str(t.wrap_timeouts), str(t.rated), num(t.satisfaction, 2)]


FIGURE_COLUMNS = ["offered", "answered", "answered_within_threshold", "abandoned", "short_abandoned",
                  "service_level_percent", "average_speed_of_answer_seconds", "average_handle_time_seconds",
                  "abandonment_rate_percent", "handled", "wrap_up_timeouts", "rated", "satisfaction"]


def csv_rows(report: reports.Report, table: str) -> list[list[str]]:
    """One table of the report as CSV rows, the header first (column names in English, stable)."""
    if table == "dispositions":
        return [["queue", "disposition", "count"], *([q, c, str(n)] for q, c, n in report.dispositions)]
    first, lines = {"time": (report.interval, report.over_time), "queue": ("queue", report.by_queue),
                    "channel": ("channel", report.by_channel), "agent": ("agent", report.by_agent)}[table]
    return [[first, *FIGURE_COLUMNS], *([line.label, *_figures(line.figures)] for line in lines)]


@supervisors()
async def report_csv(request: Request, by: int) -> Response:
    table = request.path_params["table"]
    if table not in reports.TABLES:
        raise NO_TABLE
    report, _ = await _report(request)
    out = io.StringIO()
    writer = csv.writer(out)
    for row in csv_rows(report, table):
        # A cell a spreadsheet would run as a formula (a queue named "=cmd|..."): kept as text.
        writer.writerow(["'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(cell) else cell
                         for cell in row])
    name = f"report-{table}-{report.range.first.isoformat()}-{report.range.last.isoformat()}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
