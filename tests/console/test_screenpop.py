"""What a pop shows of a live call: the customer once, this conversation's notes once."""

from console import conversations, notes, offers, routing
from console.models import Channel
from console.ports import Context
from console.screenpop import build_pop
from tests.helpers import add_agent, add_customer


async def test_a_note_on_the_call_shows_with_the_call_not_again_among_the_customers_recent_notes(
        ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    jan = await add_customer(ctx.db, "Jan Jansen", phones=("0612345678",))
    await notes.add(ctx, anna, "Called about the invoice last week", customer_id=jan)
    await routing.set_status(ctx, anna, "available")
    arrival = await conversations.arrive(ctx, channel=Channel.CALL, external_id="c1", from_address="0612345678",
                                         to_address="0201234567")
    await offers.accept(ctx, anna, arrival.conversation_id)
    await notes.add(ctx, anna, "Wants a callback on Friday", conversation_id=arrival.conversation_id)
    async with ctx.db.reading() as session:
        from console.changes import ConversationInfo
        from console.models import Conversation

        conversation = await session.get(Conversation, arrival.conversation_id)
        assert conversation is not None
        pop = await build_pop(session, ConversationInfo.of(conversation), False, ctx.region)
    assert [n.body for n in pop.notes] == ["Wants a callback on Friday"]
    assert pop.picture is not None
    assert [n.body for n in pop.picture.notes] == ["Called about the invoice last week"]
