import asyncio
import re
from pathlib import Path

from console import routing
from console.ports import Context
from console.web.render import Renderer, WebNotifier, agent_stream
from realtime import make_bus
from tests.helpers import add_agent


async def test_concurrent_changes_end_with_the_newest_view_published(ctx: Context) -> None:
    bus = make_bus("")
    notifier = WebNotifier(ctx.db, bus, Renderer(), "NL")
    ctx.notify = notifier
    agent = await add_agent(ctx.db, "anna@x.nl", "Anna")
    start = await bus.last_id(agent_stream(agent))
    for status in ("available", "away", "available", "away"):
        await routing.set_status(ctx, agent, status)
    await asyncio.gather(*(notifier.agents_changed([agent]) for _ in range(5)))
    frames = await bus.replay(agent_stream(agent), start)
    assert frames and "status-away" in frames[-1].payload
    # Concurrent notifications for one agent coalesce instead of rendering once each.
    assert len(frames) < 4 + 5


def test_untrusted_names_are_escaped_in_the_pop() -> None:
    from console.models import Agent, AgentStatus, Channel, Conversation, Customer, Direction, State, utcnow
    from console.screenpop import AgentView, Pop

    agent = Agent(id=1, name="<script>x</script>", language="en", status=AgentStatus.AVAILABLE,
                  status_since=utcnow(), email="a@x.nl")
    conversation = Conversation(id=7, channel=Channel.CALL, direction=Direction.IN, state=State.OFFERED,
                                from_address="<img src=x onerror=alert(1)>", to_address="", created_at=utcnow())
    candidate = Customer(id=3, name="<b>Bold</b>", company="A&B")
    candidate.contact_points = []
    html = Renderer().live(AgentView(agent, [Pop(conversation, True, conversation.from_address,
                                                 candidates=[candidate])]))
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
