"""Who may work on a conversation (console.ownership): notes, tickets and canned responses."""

from collections.abc import Awaitable, Callable

import pytest

from console import canned, conversations, handoffs, notes, routing, tickets
from console.errors import Forbidden, NotFound
from console.handoffs import Target
from console.models import Channel
from console.ports import Context
from tests.helpers import add_agent, add_customer

Action = Callable[[Context, int, int], Awaitable[object]]


async def _note(ctx: Context, agent_id: int, conversation_id: int) -> object:
    return await notes.add(ctx, agent_id, "Called back about the invoice", conversation_id=conversation_id)


async def _ticket(ctx: Context, agent_id: int, conversation_id: int) -> object:
    return await tickets.open_ticket(ctx, agent_id, tickets.Draft(subject="Invoice wrong",
                                                                  conversation_id=conversation_id))


async def _canned(ctx: Context, agent_id: int, conversation_id: int) -> object:
    sanne = 3
    response = await canned.save(ctx, sanne, f"Greeting {agent_id}-{conversation_id}", "Hallo {customer.name}")
    return await canned.render_for(ctx, agent_id, response.id, conversation_id)


ACTIONS = {"note": _note, "ticket": _ticket, "canned fill": _canned}


@pytest.fixture
async def floor(ctx: Context) -> dict[str, int]:
    """Anna has a call ringing (then active); Bram is a colleague; Sanne supervises; Kees is asked
    to take it over."""
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    sanne = await add_agent(ctx.db, "sanne@x.nl", "Sanne", role="supervisor")
    kees = await add_agent(ctx.db, "kees@x.nl", "Kees", extension="204")
    assert sanne == 3
    await add_customer(ctx.db, "Piet Jansen", phones=("0612345678",))
    call = await conversations.arrive(ctx, channel=Channel.CALL, external_id="own-1", from_address="0612345678",
                                      to_address="0201234567", ringing=["201"])
    return {"anna": anna, "bram": bram, "sanne": sanne, "kees": kees, "call": call.conversation_id}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize(("who", "allowed"), [("anna", True), ("sanne", True), ("bram", False)])
async def test_only_the_agent_it_rings_for_and_supervisors_may_work_on_it(
        ctx: Context, floor: dict[str, int], action: str, who: str, allowed: bool) -> None:
    run = ACTIONS[action](ctx, floor[who], floor["call"])
    if allowed:
        await run
    else:
        with pytest.raises(Forbidden, match="handled by a colleague"):
            await run


@pytest.mark.parametrize("action", list(ACTIONS))
async def test_a_colleague_asked_to_take_it_over_may_add_to_it_and_a_bystander_still_not(
        ctx: Context, floor: dict[str, int], action: str) -> None:
    await conversations.answer(ctx, Channel.CALL, "own-1", ["201"])
    await routing.set_status(ctx, floor["kees"], "available")
    await handoffs.start(ctx, floor["anna"], floor["call"], Target(agent_id=floor["kees"]), "warm", "Over to you")
    await ACTIONS[action](ctx, floor["kees"], floor["call"])
    with pytest.raises(Forbidden):
        await ACTIONS[action](ctx, floor["bram"], floor["call"])


async def test_the_agent_keeps_their_own_conversation_after_it_is_over(ctx: Context, floor: dict[str, int]) -> None:
    await conversations.answer(ctx, Channel.CALL, "own-1", ["201"])
    await conversations.hang_up(ctx, Channel.CALL, "own-1", "normalClearing")
    await _note(ctx, floor["anna"], floor["call"])  # a follow-up note in wrap-up
    with pytest.raises(Forbidden):
        await _note(ctx, floor["bram"], floor["call"])


async def test_an_unknown_conversation_is_not_found_for_everyone(ctx: Context, floor: dict[str, int]) -> None:
    for who in ("anna", "bram"):
        with pytest.raises(NotFound):
            await _note(ctx, floor[who], 999_999)


async def test_a_waiting_conversation_nobody_holds_is_refused_not_missing(ctx: Context, floor: dict[str, int]) -> None:
    waiting = await conversations.arrive(ctx, channel=Channel.CALL, external_id="own-2", from_address="0687654321",
                                         to_address="0201234567")
    assert waiting.agent_id is None
    with pytest.raises(Forbidden):
        await _note(ctx, floor["bram"], waiting.conversation_id)
    await _note(ctx, floor["sanne"], waiting.conversation_id)
