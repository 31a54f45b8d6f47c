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
    pusher = Pusher(ctx.db, bus, Renderer(), "NL")
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
