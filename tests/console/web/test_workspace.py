"""The workspace over HTTP: notes, handoffs, tickets, the customer page, search, merge, canned responses.

Each bad input gets a message in the page and changes nothing; untrusted text is escaped.
"""

from __future__ import annotations

import re

import httpx

from console.db import Database
from console.models import Tier
from tests.conftest import LiveServer
from tests.console.web.test_live import frame_with, post_call, socket
from tests.helpers import add_agent, add_customer, log_in

HX = {"HX-Request": "true"}


async def prepare(database_url: str) -> dict[str, int]:
    db = Database(database_url)
    try:
        anna = await add_agent(db, "anna@x.nl", "Anna de Vries", extension="201")
        bram = await add_agent(db, "bram@x.nl", "Bram", extension="202")
        await add_agent(db, "sanne@x.nl", "Sanne", role="supervisor")
        jan = await add_customer(db, "Jan <b>Jansen</b>", phones=("0612345678",), company="Jansen & Zonen",
                                 tier=Tier.A, lifetime_value="125000")
        return {"anna": anna, "bram": bram, "jan": jan}
    finally:
        await db.close()


async def on_a_call(client: httpx.AsyncClient, token: str) -> int:
    """Anna goes available, a call arrives and she accepts it; returns the conversation id."""
    headers = {"X-CSRF-Token": token}
    assert (await client.post("/agent/status", data={"status": "available"}, headers=headers)).status_code == 204
    reply = await post_call(client, "ws-1")
    conversation = int(reply["conversation"])
    accepted = await client.post(f"/conversations/{conversation}/accept", headers=headers)
    assert accepted.status_code == 204, "the answer is empty: the socket carries the change"
    return conversation


async def page_now(client: httpx.AsyncClient) -> str:
    """The agent page as it is now: what a reload shows (the socket pushes the same partials)."""
    response = await client.get("/")
    assert response.status_code == 200
    return response.text


async def test_notes_tickets_and_handoff_refusals_in_the_page(live_server: LiveServer, database_url: str) -> None:
    ids = await prepare(database_url)
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        token = await log_in(client, "anna@x.nl")
        headers = {"X-CSRF-Token": token, **HX}
        conversation = await on_a_call(client, token)

        added = await client.post(f"/conversations/{conversation}/notes", data={"body": "<i>wants</i> a refund"},
                                  headers=headers)
        assert added.status_code == 204 and added.text == ""
        page = await page_now(client)
        assert "&lt;i&gt;wants&lt;/i&gt; a refund" in page and "<i>wants" not in page
        assert "Bram" not in page, "colleagues are loaded when a form opens, not pushed with every view"
        assignees = await client.get("/pickers/assignee", headers=HX)
        assert f'<option value="{ids["bram"]}">Bram</option>' in assignees.text, "tickets go to offline colleagues too"
        targets = await client.get("/pickers/handoff", headers=HX)
        assert "Bram" not in targets.text and "Anna" not in targets.text, "only reachable colleagues, not oneself"
        assert (await client.get("/pickers/salaries", headers=HX)).status_code == 404
        empty = await client.post(f"/conversations/{conversation}/notes", data={"body": "  "}, headers=headers)
        assert empty.status_code == 422 and "the note is empty" in empty.text
        nul = await client.post(f"/conversations/{conversation}/notes", data={"body": "a\x00b"}, headers=headers)
        assert nul.status_code == 422 and "control characters" in nul.text
        huge = await client.post(f"/conversations/{conversation}/notes", data={"body": "x" * 5001}, headers=headers)
        assert huge.status_code == 422 and "longer than 5000 characters" in huge.text

        offline = await client.post(f"/conversations/{conversation}/handoff", headers=headers, data={
            "target": f"agent:{ids['bram']}", "mode": "warm", "note": "please"})
        assert offline.status_code == 422 and "Bram is offline" in offline.text
        unknown = await client.post(f"/conversations/{conversation}/handoff", headers=headers, data={
            "target": "agent:999", "mode": "warm", "note": "please"})
        assert unknown.status_code == 404 and "colleague does not exist" in unknown.text
        nothing = await client.post(f"/conversations/{conversation}/handoff", headers=headers, data={
            "target": "", "mode": "warm", "note": "please"})
        assert nothing.status_code == 422

        opened = await client.post("/tickets", headers=headers, data={
            "subject": "Refund <script>", "priority": "high", "status": "new", "assignee_id": str(ids["anna"]),
            "conversation_id": str(conversation)})
        assert opened.status_code == 200 and "Ticket #1 opened" in opened.text
        assert '<div id="flash" class="flash ok" role="status" hx-swap-oob="true">Ticket #1 opened.' in opened.text
        assert "Refund &lt;script&gt;" in await page_now(client), "the pop's open tickets show it, escaped"
        too_long = await client.post("/tickets", headers=headers, data={"subject": "x" * 400})
        assert too_long.status_code == 422 and "longer than" in too_long.text

        mine = await client.get("/tickets", headers=HX)
        assert "Refund &lt;script&gt;" in mine.text
        ticket = await client.get("/tickets/1", headers=HX)
        version = re.search(r'name="version" value="(\d+)"', ticket.text)
        assert version and version.group(1) == "1"
        saved = await client.post("/tickets/1", headers=headers, data={
            "version": "1", "subject": "Refund", "description": "", "priority": "high", "status": "open",
            "assignee_id": str(ids["anna"])})
        assert saved.status_code == 200 and "status new → open" in saved.text
        stale = await client.post("/tickets/1", headers=headers, data={
            "version": "1", "subject": "My own subject", "description": "", "priority": "low", "status": "solved"})
        assert stale.status_code == 409
        assert "changed this ticket while you were editing" in stale.text
        assert 'value="My own subject"' in stale.text, "what the agent typed stays in the form"


async def test_customer_page_search_merge_and_edit_conflicts(live_server: LiveServer, database_url: str) -> None:
    ids = await prepare(database_url)
    db = Database(database_url)
    try:
        twin = await add_customer(db, "Jan Jansen", phones=("+31612345678",))
    finally:
        await db.close()
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        token = await log_in(client, "anna@x.nl")
        headers = {"X-CSRF-Token": token, **HX}
        found = await client.get("/customers/search", params={"q": "jans"}, headers=HX)
        assert "Jan &lt;b&gt;Jansen&lt;/b&gt;" in found.text and "<b>Jansen" not in found.text
        by_phone = await client.get("/customers/search", params={"q": "06 1234"}, headers=HX)
        assert by_phone.text.count('role="option"') == 2

        opened = await client.post(f"/customers/{ids['jan']}/open", headers=headers)
        assert opened.status_code == 204
        page = await page_now(client)
        assert 'id="customer-panel"' in page and "no email address" in page
        assert (await client.post("/customers/99999/open", headers=headers)).status_code == 404

        form = await client.get(f"/customers/{ids['jan']}/edit", headers=HX)
        assert 'name="version" value="1"' in form.text
        saved = await client.post(f"/customers/{ids['jan']}", headers=headers, data={
            "version": "1", "name": "Jan Jansen", "tier": "B", "lifetime_value": "10"})
        assert saved.status_code == 200 and "Saved." in saved.text
        stale = await client.post(f"/customers/{ids['jan']}", headers=headers, data={
            "version": "1", "name": "Johannes", "tier": "A"})
        assert stale.status_code == 409 and "Anna de Vries changed this customer" in stale.text
        assert 'value="Johannes"' in stale.text
        bad = await client.post(f"/customers/{ids['jan']}", headers=headers, data={"version": "2", "name": ""})
        assert bad.status_code == 422 and "Name is required" in bad.text

        duplicates = await client.get(f"/customers/{ids['jan']}/duplicates", headers=HX)
        assert "same phone" in duplicates.text
        assert 'name="other_id"' not in duplicates.text, "merging is for supervisors"
        refused = await client.post(f"/customers/{ids['jan']}/merge", headers=headers, data={"other_id": str(twin)})
        assert refused.status_code == 403 and "Only supervisors merge customers" in refused.text
    async with httpx.AsyncClient(base_url=live_server.url) as supervisor:
        token = await log_in(supervisor, "sanne@x.nl")
        headers = {"X-CSRF-Token": token, **HX}
        offered = await supervisor.get(f"/customers/{ids['jan']}/duplicates", headers=HX)
        assert f'name="other_id" value="{twin}"' in offered.text
        itself = await supervisor.post(f"/customers/{ids['jan']}/merge", headers=headers,
                                       data={"other_id": str(ids["jan"])})
        assert itself.status_code == 422 and "cannot be merged with itself" in itself.text
        merged = await supervisor.post(f"/customers/{ids['jan']}/merge", headers=headers,
                                       data={"other_id": str(twin)})
        assert merged.status_code == 200 and "was merged into this customer" in merged.text
        assert (await supervisor.post(f"/customers/{twin}/open", headers=headers)).status_code == 404


async def test_canned_responses_are_for_supervisors_to_manage(live_server: LiveServer, database_url: str) -> None:
    await prepare(database_url)
    async with httpx.AsyncClient(base_url=live_server.url) as supervisor:
        token = await log_in(supervisor, "sanne@x.nl")
        created = await supervisor.post("/canned", headers={"X-CSRF-Token": token, **HX},
                                        data={"title": "Hello", "body": "Dag {customer.first_name}, met {agent.name}"})
        assert created.status_code == 200 and "Hello" in created.text
        wrong = await supervisor.post("/canned", headers={"X-CSRF-Token": token, **HX},
                                      data={"title": "Bad", "body": "{customer.iban}"})
        assert wrong.status_code == 422 and "Unknown placeholder" in wrong.text
    async with httpx.AsyncClient(base_url=live_server.url) as agent:
        token = await log_in(agent, "anna@x.nl")
        conversation = await on_a_call(agent, token)
        refused = await agent.post("/canned", headers={"X-CSRF-Token": token, **HX},
                                   data={"title": "Mine", "body": "text"})
        assert refused.status_code == 403 and "Only supervisors" in refused.text
        filled = await agent.get(f"/canned/1/fill?conversation={conversation}", headers=HX)
        assert filled.text == "Dag Jan, met Anna de Vries"


async def test_the_page_has_the_shortcut_help_and_a_live_region(live_server: LiveServer, database_url: str) -> None:
    await prepare(database_url)
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        await log_in(client, "anna@x.nl")
        page = (await client.get("/")).text
    assert 'id="announcer"' in page and 'aria-live="assertive"' in page
    assert 'id="help"' in page and "Open a ticket from the current conversation" in page
    assert 'id="customer-search"' in page


async def test_an_unknown_caller_is_linked_to_a_customer_found_by_search(live_server: LiveServer,
                                                                          database_url: str) -> None:
    ids = await prepare(database_url)
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        token = await log_in(client, "anna@x.nl")
        headers = {"X-CSRF-Token": token, **HX}
        assert (await client.post("/agent/status", data={"status": "available"}, headers=headers)).status_code == 204
        reply = await post_call(client, "stranger", number="0655555555")
        conversation = int(reply["conversation"])
        found = await client.get("/customers/search", params={"q": "jansen", "link": str(conversation)}, headers=HX)
        assert f'hx-post="/conversations/{conversation}/customer"' in found.text
        linked = await client.post(f"/conversations/{conversation}/customer", headers=headers,
                                   data={"customer_id": str(ids["jan"])})
        assert linked.status_code == 204
        assert "+31 6 55555555" in await page_now(client), "the new number is on the customer"
        again = await client.get("/customers/search", params={"q": "0655555555"}, headers=HX)
        assert "Jan &lt;b&gt;Jansen&lt;/b&gt;" in again.text

        refused = await client.get(f"/audit/customer/{ids['jan']}", headers=HX)
        assert refused.status_code == 403 and "Only supervisors" in refused.text
    async with httpx.AsyncClient(base_url=live_server.url) as supervisor:
        await log_in(supervisor, "sanne@x.nl")
        trail = await supervisor.get(f"/audit/customer/{ids['jan']}", headers=HX)
        assert trail.status_code == 200 and "Anna de Vries: changed" in trail.text
        calls = await supervisor.get(f"/audit/conversation/{conversation}", headers=HX)
        assert calls.status_code == 200 and "Audit trail: Conversation #" in calls.text
        assert (await supervisor.get("/audit/payroll/1", headers=HX)).status_code == 404
        assert (await supervisor.get(f"/audit/customer/{ids['jan']}")).status_code == 303, "only inside the page"


async def test_a_note_is_pushed_to_a_colleague_who_has_the_customer_open(live_server: LiveServer,
                                                                         database_url: str) -> None:
    ids = await prepare(database_url)
    async with httpx.AsyncClient(base_url=live_server.url) as anna, \
            httpx.AsyncClient(base_url=live_server.url) as bram:
        anna_token = await log_in(anna, "anna@x.nl")
        bram_token = await log_in(bram, "bram@x.nl")
        opened = await bram.post(f"/customers/{ids['jan']}/open", headers={"X-CSRF-Token": bram_token, **HX})
        assert opened.status_code == 204
        async with socket(live_server, bram) as ws:
            await frame_with(ws, 'id="customer-panel"')  # the snapshot on connect
            added = await anna.post(f"/customers/{ids['jan']}/notes", data={"body": "Called back about <the> order"},
                                    headers={"X-CSRF-Token": anna_token, **HX})
            assert added.status_code == 204
            frame = await frame_with(ws, "Called back about &lt;the&gt; order")
            assert 'id="customer-panel"' in frame
