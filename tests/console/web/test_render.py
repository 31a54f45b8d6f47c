import re
from pathlib import Path

from console import routing
from console.ports import Context
from console.web.push import Pusher
from console.web.render import Renderer, agent_stream
from realtime import make_bus
from tests.helpers import add_agent


async def test_a_status_change_pushes_the_status_fragments_only(ctx: Context) -> None:
    bus = make_bus("")
    pusher = Pusher(ctx.db, bus, Renderer(), "NL", file_secret="test")
    ctx.notify = pusher
    agent = await add_agent(ctx.db, "anna@x.nl", "Anna")
    start = await bus.last_id(agent_stream(agent))
    for status in ("available", "away", "available", "away"):
        await routing.set_status(ctx, agent, status)
    await pusher.drain()
    frames = await bus.replay(agent_stream(agent), start)
    assert frames and "status-away" in frames[-1].payload
    versions = [int(v) for f in frames for v in re.findall(r'id="agent-status"[^>]*data-v="(\d+)"', f.payload)]
    assert versions == sorted(versions) and len(set(versions)) == 4, "each change carries a newer version"
    assert all('id="screen-pop"' not in f.payload for f in frames), "a change is not the whole view"
    await pusher.close()


def test_untrusted_names_are_escaped_in_the_pop() -> None:
    from console.changes import ConversationInfo
    from console.models import Agent, AgentStatus, Channel, Conversation, Customer, Direction, Role, State, utcnow
    from console.screenpop import AgentView, Pop, Presence

    agent = Agent(id=1, name="<script>x</script>", language="en", status=AgentStatus.AVAILABLE,
                  status_since=utcnow(), email="a@x.nl", role=Role.AGENT)
    conversation = Conversation(id=7, channel=Channel.CALL, direction=Direction.IN, state=State.OFFERED,
                                from_address="<img src=x onerror=alert(1)>", to_address="", created_at=utcnow())
    candidate = Customer(id=3, name="<b>Bold</b>", company="A&B")
    candidate.contact_points = []
    presence = Presence(1, AgentStatus.AVAILABLE, None, utcnow(), 1)
    pop = Pop(ConversationInfo.of(conversation), True, conversation.from_address, candidates=[candidate])
    html = Renderer().live(AgentView(agent, [pop], presence=presence))
    assert "<script>" not in html and "<img" not in html and "<b>Bold" not in html
    assert "&lt;b&gt;Bold&lt;/b&gt;" in html and "A&amp;B" in html



EVALUATED = re.compile(r"""(hx-confirm|hx-vals|hx-prompt)=(?:"([^"]*)"|'([^']*)')""")


def test_no_untrusted_text_reaches_attributes_htmx_evaluates() -> None:
    """htmx runs hx-confirm and hx-vals values that start with "js:" as script: such attributes
    hold fixed texts and ids only, never a name or an address someone typed."""
    checked = 0
    for template in Path("templates").rglob("*.html"):
        for match in EVALUATED.finditer(template.read_text()):
            value = match.group(2) if match.group(2) is not None else match.group(3)
            for expression in re.findall(r"{{(.*?)}}", value):
                checked += 1
                assert re.fullmatch(r"\s*(_\('[^']*'\)|[a-z_.]*\.id)\s*", expression), (template, expression)
    assert checked >= 4


def _status_html(status: str, after: str | None = None, language: str = "en") -> str:
    from console.models import AgentStatus, utcnow
    from console.screenpop import Presence

    presence = Presence(1, AgentStatus(status), None, utcnow(), 5, AgentStatus(after) if after else None,
                        "Lunch" if after == "away" else None, 2 if after else 0)
    return Renderer().render("partials/status.html", language, presence=presence, away_reasons=("Break", "Lunch"))


def test_the_status_line_shows_the_real_state_and_offers_only_what_can_be_chosen() -> None:
    busy = _status_html("busy")
    assert "<strong>Busy</strong>" in busy and 'data-since="' in busy, "the state, with its timer"
    assert 'value="available"' not in busy, "nothing draws Available pressed while busy"
    assert "Away after this contact" in busy and 'value="Lunch"' in busy
    available = _status_html("available")
    assert 'value="available"' not in available, "already available"
    assert '<details class="go-away">' in available, "the reasons show only when going away"
    away = _status_html("away")
    assert 'id="go-available"' in away
    chosen = _status_html("busy", after="away")
    after = re.search(r'<div id="agent-after"[^>]*data-v="2" data-key="after">(.*?)</div>\s*</section>', chosen, re.S)
    assert after and "Away" in after.group(1) and "(Lunch)" in after.group(1) and "Stay available" in after.group(1)
    assert "go-away" not in chosen, "the choice is made; taking it back is the one thing offered"
    assert re.search(r'<div id="agent-after"[^>]*data-v="0" data-key="after">.*go-away', busy, re.S), \
        "what can be chosen has the version of the choice, so an older frame cannot bring old buttons back"
    dutch = _status_html("wrap_up", after="offline", language="nl")
    assert "Daarna: <strong>Offline</strong>" in dutch and "Beschikbaar blijven" in dutch
    assert "Stay available" not in dutch and "Then" not in dutch


def test_a_live_calls_state_line_shows_the_line_dialled_the_wait_and_a_talk_timer() -> None:
    from dataclasses import replace
    from datetime import timedelta

    from console.changes import ConversationInfo
    from console.models import Channel, Direction, State, utcnow
    from console.screenpop import Pop

    arrived = utcnow() - timedelta(seconds=100)
    info = ConversationInfo(7, Channel.CALL, Direction.IN, State.ACTIVE, "0612345678", "0201234567", arrived,
                            arrived + timedelta(seconds=75), None, None, None, None, None)
    html = Renderer().render("partials/pop_state.html", "nl", pop=Pop(info, False, info.address))
    assert "Gekozen nummer: +31 20 123 4567" in html
    assert "Gewacht 1:15" in html, "the time the caller waited before someone answered"
    assert info.answered_at is not None
    assert f'data-since="{info.answered_at.isoformat()}"' in html, "the talk timer counts from the answer"
    waiting = replace(info, state=State.OFFERED, answered_at=None)
    ringing = Renderer().render("partials/pop_state.html", "en", pop=Pop(waiting, True, info.address))
    assert f'Waiting <time class="timer" datetime="{arrived.isoformat()}"' in ringing


def test_the_customers_language_is_named_in_the_agents_language() -> None:
    from console import i18n

    assert i18n.language_name("nl", "nl") == "Nederlands" and i18n.language_name("nl", "en") == "Dutch"
    assert i18n.language_name("not a language", "en") == "not a language"
