"""A mail as it was sent, for an agent: its sanitised HTML in a page of its own that can run nothing.

The HTML was cleaned when the mail came in (no scripts, no handlers, no styles that reach out);
this page adds a second wall: a policy that runs no script at all, loads nothing from elsewhere
unless the agent asks for the remote images, and opens links in a new tab. The view is audited.
"""

from __future__ import annotations

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from console import audit, i18n, mail
from console.errors import NotFound
from console.web.wiring import Wiring

BLOCKED = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'none'; " \
          "frame-ancestors 'self'; base-uri 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
REMOTE = BLOCKED.replace("img-src 'self' data:", "img-src 'self' data: https: http:")


async def mail_html(request: Request) -> Response:
    from console.web.pages import agent_id_of
    from console.web.security import signed_out
    from console.web.workspace import language_of

    agent_id = await agent_id_of(request)
    if agent_id is None:
        return signed_out()
    w: Wiring = request.app.state.wiring
    remote = request.query_params.get("images") == "1"
    async with w.ctx.transaction() as session:
        view = await mail.html_for_agent(session, request.path_params["id"], agent_id, remote=remote)
        audit.record(session, agent_id, audit.VIEW, audit.CONVERSATION, view.conversation_id,
                     f"mail {view.mail_id} as sent" + (" with remote images" if remote else ""))
    gettext = i18n.translations(await language_of(request, agent_id)).gettext
    if view.remote_images and not remote:
        bar = Markup('<p style="background:#fff4d6;padding:.5em;font:14px sans-serif">{} <a href="?images=1" '
                     'target="_self">{}</a></p>').format(
            gettext("Remote images are blocked: loading them tells the sender that the mail was read."),
            gettext("Load them"))
    else:
        bar = Markup("")
    page = Markup('<!doctype html><html><head><meta charset="utf-8"><title>{}</title><base target="_blank">'
                  '</head><body>{}{}</body></html>').format(
        view.subject or "mail", bar, Markup(view.html))  # noqa: S704 -- sanitised with nh3 when the mail came
    return HTMLResponse(str(page), headers={
        "Content-Security-Policy": REMOTE if remote else BLOCKED, "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store", "Referrer-Policy": "no-referrer"})



async def write_mail(request: Request) -> Response:
    """The agent writes a new mail to the customer whose page is open (not a reply: their consent
    is checked); the id from the page makes a resend go out once."""
    from console.web.pages import act, field, record_id

    customer_id = record_id(request.path_params["id"], NotFound("This customer does not exist."))
    return await act(request, lambda ctx, agent_id, form: mail.write_new(
        ctx, agent_id, customer_id, field(form, "to", 320), field(form, "subject", mail.MAX_SUBJECT + 50),
        field(form, "text", mail.MAX_REPLY + 100), field(form, "client_id", 64)))
