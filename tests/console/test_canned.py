"""Canned responses: placeholders filled in, managed by supervisors only."""

import pytest

from console import canned, conversations
from console.errors import Conflict, Forbidden, InvalidInput
from console.models import Channel
from console.ports import Context
from tests.helpers import add_agent, add_customer


async def test_supervisors_save_responses_and_agents_get_them_filled_in(ctx: Context) -> None:
    sanne = await add_agent(ctx.db, "sanne@x.nl", "Sanne de Boer", role="supervisor")
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna Visser", extension="201")
    await add_customer(ctx.db, "Piet Jansen", company="Bakkerij Jansen", phones=("0612345678",))
    call = await conversations.arrive(ctx, channel=Channel.CALL, external_id="c1", from_address="0612345678",
                                      to_address="0201234567", ringing=["201"])
    response = await canned.save(ctx, sanne, "Greeting", "Hallo {customer.first_name}, met {agent.name}.")
    assert await canned.render_for(ctx, anna, response.id, call.conversation_id) == "Hallo Piet, met Anna Visser."
    assert await canned.render_for(ctx, anna, response.id, None) == "Hallo , met Anna Visser."
    with pytest.raises(Forbidden, match="supervisors"):
        await canned.save(ctx, anna, "Mine", "text")
    with pytest.raises(Conflict, match="exists already"):
        await canned.save(ctx, sanne, "Greeting", "other")
    with pytest.raises(InvalidInput, match="Unknown placeholder"):
        await canned.save(ctx, sanne, "Bye", "Dag {customer.shoe_size}")
    with pytest.raises(InvalidInput, match="empty"):
        await canned.save(ctx, sanne, "Bye", " ")
