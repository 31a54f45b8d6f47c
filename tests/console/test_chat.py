"""Chat sites, visitors and messages, on each database."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from console import chat, hours, offers, routing
from console.errors import Conflict, Forbidden, InvalidInput, NotFound
from console.models import Author, Channel, Conversation, Message, Queue, State
from console.ports import Context
from tests.helpers import add_agent, add_customer

ORIGIN = "https://www.bakkerij.example"


async def make_site(ctx: Context, **values: object) -> chat.ChatSite:
    settings = chat.SiteSettings(**{"origins": [ORIGIN + "/"], **values})  # type: ignore[arg-type]
    async with ctx.db.transaction() as session:
        site, created = await chat.configure_site(session, "Bakkerij", settings)
        assert created
        session.expunge(site)
    return site


async def test_a_site_is_used_only_from_its_origins_and_by_its_key(ctx: Context) -> None:
    site = await make_site(ctx)
    assert site.origins == ORIGIN and len(site.key) >= 20 and site.secret
    async with ctx.db.reading() as session:
        assert (await chat.site_for(session, site.key, ORIGIN)).id == site.id
        assert (await chat.site_for(session, site.key, "HTTPS://WWW.bakkerij.example:443")).id == site.id
        with pytest.raises(Forbidden, match="may not use this chat"):
            await chat.site_for(session, site.key, "https://evil.example")
        with pytest.raises(Forbidden):
            await chat.site_for(session, site.key, None)
        with pytest.raises(NotFound, match="unknown site key"):
            await chat.site_for(session, "nope", ORIGIN)


@pytest.mark.parametrize(("values", "says"), [
    ({"origins": ["www.bakkerij.example"]}, "is not an origin"),
    ({"origins": ["https://x.example/path"]}, "is not an origin"),
    ({"origins": []}, "at least one origin"),
    ({"queue": "nope"}, "no queue called nope"),
    ({"hours": "mon-fri 17:00-09:00"}, "ends before it starts"),
    ({"hours": "weekdays 09:00-17:00"}, "are not days"),
    ({"timezone": "Mars/Olympus"}, "is not a time zone"),
])
async def test_a_bad_site_setting_is_a_clear_error(ctx: Context, values: dict[str, object], says: str) -> None:
    settings = chat.SiteSettings(**{"origins": [ORIGIN], **values})  # type: ignore[arg-type]
    async with ctx.db.transaction() as session:
        with pytest.raises((InvalidInput, NotFound), match=says):
            await chat.configure_site(session, "Bakkerij", settings)


async def test_a_visitor_returns_by_token_and_only_on_their_own_site(ctx: Context) -> None:
    site = await make_site(ctx)
    first = await chat.visit(ctx, site, None)
    assert first.fresh and first.identity == "anonymous"
    again = await chat.visit(ctx, site, first.token)
    assert not again.fresh and again.visitor_id == first.visitor_id
    stranger = await chat.visit(ctx, site, "made-up-token")
    assert stranger.fresh and stranger.visitor_id != first.visitor_id
    async with ctx.db.transaction() as session:
        other, _ = await chat.configure_site(session, "Other", chat.SiteSettings(origins=["https://other.example"]))
        session.expunge(other)
    elsewhere = await chat.visit(ctx, other, first.token)
    assert elsewhere.fresh, "a token of one site is nobody on another"


async def test_a_signed_identifier_links_the_customer_and_a_forged_one_never_does(ctx: Context) -> None:
    site = await make_site(ctx)
    jan = await add_customer(ctx.db, "Jan Jansen", emails=("jan@jansen.example",))
    signed = chat.signature(site, "jan@jansen.example")
    verified = await chat.visit(ctx, site, None, "jan@jansen.example", signed.upper())
    assert verified.identity == "verified" and verified.customer_id == jan
    forged = await chat.visit(ctx, site, None, "jan@jansen.example", "0" * 64)
    assert forged.identity == "anonymous" and forged.customer_id is None, "ignored, never linked"
    someone_else = await chat.visit(ctx, site, verified.token, "piet@x.example", chat.signature(site, "piet@x.example"))
    assert someone_else.visitor_id != verified.visitor_id, "another login on the same browser is another visitor"
    async with ctx.db.transaction() as session:
        strict, _ = await chat.configure_site(session, "Bakkerij", chat.SiteSettings(identity_required=True))
        session.expunge(strict)
    with pytest.raises(Forbidden, match="could not confirm who you are"):
        await chat.visit(ctx, strict, None, "jan@jansen.example", "0" * 64)


async def test_the_first_message_starts_a_routed_chat_and_a_resend_is_stored_once(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    async with ctx.db.transaction() as session:
        session.add(Queue(name="webshop"))
    site = await make_site(ctx, queue="webshop")
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None)
    first = await chat.from_visitor(ctx, visit, "m-1", "  Is my order on its way?  ", page_url=ORIGIN + "/orders")
    assert first.body == "Is my order on its way?" and first.author is Author.CUSTOMER
    again = await chat.from_visitor(ctx, visit, "m-1", "Is my order on its way?")
    assert again.id == first.id, "the same client id is the same message"
    async with ctx.db.reading() as session:
        conversation = await session.scalar(select(Conversation).where(Conversation.channel == Channel.CHAT))
        assert conversation is not None and conversation.state is State.OFFERED and conversation.agent_id == anna
        assert conversation.subject == "Is my order on its way?"
        assert await session.scalar(select(func.count()).select_from(Message)) == 1
    with pytest.raises(Conflict, match="not yours"):
        await chat.from_agent(ctx, anna, conversation.id, "a-1", "Hello!")  # still ringing
    await offers.accept(ctx, anna, conversation.id)
    reply = await chat.from_agent(ctx, anna, conversation.id, "a-1", "Hello! Let me look.")
    assert reply.agent_name == "Anna"
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    with pytest.raises(Conflict, match="not yours"):
        await chat.from_agent(ctx, bram, conversation.id, "b-1", "Me too")
    second = await chat.from_visitor(ctx, visit, "m-2", "Thanks")
    async with ctx.db.reading() as session:
        assert conversation.chat_id is not None
        shown = await chat.lines(session, conversation.chat_id)
        assert [line.body for line in shown] == ["Is my order on its way?", "Hello! Let me look.", "Thanks"]
        assert [line.body for line in await chat.lines(session, conversation.chat_id, after=reply.id)] == ["Thanks"]
    assert second.id > reply.id
    notified = [c for batch in ctx.notify.batches for c in batch  # type: ignore[attr-defined]
                if isinstance(c, chat.changes.ChatMessage)]
    assert [c.message_id for c in notified] == [first.id, reply.id, second.id], "a resend tells nobody again"


@pytest.mark.parametrize("text", ["", "   ", "x" * (chat.MAX_MESSAGE + 1)])
async def test_an_empty_or_oversize_message_is_refused_and_nothing_starts(ctx: Context, text: str) -> None:
    site = await make_site(ctx)
    visit = await chat.visit(ctx, site, None)
    with pytest.raises(InvalidInput):
        await chat.from_visitor(ctx, visit, "m-1", text)
    with pytest.raises(InvalidInput, match="id of its own"):
        await chat.from_visitor(ctx, visit, "", "hello")
    async with ctx.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 0


def test_opening_hours_hold_in_the_sites_time_zone_over_daylight_saving() -> None:
    week = "mon-fri 09:00-17:00; sat 10:00-12:00,13:00-15:00"
    # Friday 27 March 2026 08:30 UTC is 09:30 in Amsterdam (winter time, UTC+1): open.
    assert hours.is_open(week, "Europe/Amsterdam", datetime(2026, 3, 27, 8, 30, tzinfo=UTC))
    # Monday 30 March 2026 07:30 UTC is 09:30 in Amsterdam (summer time, UTC+2): open; 06:30 UTC is not.
    assert hours.is_open(week, "Europe/Amsterdam", datetime(2026, 3, 30, 7, 30, tzinfo=UTC))
    assert not hours.is_open(week, "Europe/Amsterdam", datetime(2026, 3, 30, 6, 30, tzinfo=UTC))
    assert not hours.is_open(week, "Europe/Amsterdam", datetime(2026, 3, 28, 11, 30, tzinfo=UTC))  # sat 12:30
    assert not hours.is_open(week, "Europe/Amsterdam", datetime(2026, 3, 29, 10, 0, tzinfo=UTC))  # sunday
    assert hours.is_open("", "Europe/Amsterdam", datetime(2026, 3, 29, 3, 0, tzinfo=UTC)), "no hours: always open"


async def test_erasing_the_customer_makes_their_chat_visitor_nobody(ctx: Context) -> None:
    from console import privacy
    from console.models import ChatVisitor

    site = await make_site(ctx)
    jan = await add_customer(ctx.db, "Jan Jansen", emails=("jan@jansen.example",))
    sanne = await add_agent(ctx.db, "sanne@x.nl", "Sanne", role="supervisor")
    visit = await chat.visit(ctx, site, None, "jan@jansen.example", chat.signature(site, "jan@jansen.example"))
    await privacy.erase(ctx, sanne, jan)
    async with ctx.db.reading() as session:
        visitor = await session.get(ChatVisitor, visit.visitor_id)
    assert visitor is not None and (visitor.customer_id, visitor.email, visitor.identifier) == (None, None, None)


async def test_a_chat_the_agent_ended_tells_the_visitor_and_their_next_message_starts_a_new_one(
        ctx: Context) -> None:
    from console import conversations

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    site = await make_site(ctx)
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None)
    await chat.from_visitor(ctx, visit, "m-1", "Hallo")
    async with ctx.db.reading() as session:
        first = await session.scalar(select(Conversation))
    assert first is not None and first.chat_id is not None
    await offers.accept(ctx, anna, first.id)
    await conversations.end(ctx, anna, first.id)
    async with ctx.db.reading() as session:
        ended = await chat.lines(session, first.chat_id)
        assert [(line.author, line.body) for line in ended] == [(Author.CUSTOMER, "Hallo"),
                                                                (Author.SYSTEM, "chat ended")]
        assert await chat.open_chat(session, visit.visitor_id) is None
    with pytest.raises(Conflict, match="not yours"):
        await chat.from_agent(ctx, anna, first.id, "a-1", "Nog iets?")
    again = await chat.from_visitor(ctx, visit, "m-2", "Nog een vraag")
    async with ctx.db.reading() as session:
        newest = await session.scalar(select(Conversation).order_by(Conversation.id.desc()).limit(1))
        assert newest is not None and newest.id != first.id and newest.chat_id != first.chat_id
        assert [line.id for line in await chat.lines(session, newest.chat_id or 0)] == [again.id]


async def test_a_site_that_requires_identity_refuses_visitors_without_one(ctx: Context) -> None:
    site = await make_site(ctx, identity_required=True)
    with pytest.raises(chat.IdentityRefused, match="Log in on the website"):
        await chat.visit(ctx, site, None)
    signed = await chat.visit(ctx, site, None, "jan@x.example", chat.signature(site, "jan@x.example"))
    assert signed.identity == "verified"


async def test_a_resend_after_the_chat_ended_is_the_message_sent_not_a_new_chat(ctx: Context) -> None:
    from console import conversations

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    site = await make_site(ctx)
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None)
    first = await chat.from_visitor(ctx, visit, "m-1", "Hallo")
    async with ctx.db.reading() as session:
        conversation = await session.scalar(select(Conversation))
    assert conversation is not None
    await offers.accept(ctx, anna, conversation.id)
    await conversations.end(ctx, anna, conversation.id)
    again = await chat.from_visitor(ctx, visit, "m-1", "Hallo")  # the confirmation was lost on the way
    assert again.id == first.id
    async with ctx.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 1
        assert await session.scalar(select(func.count()).select_from(Message)
                                    .where(Message.author == Author.CUSTOMER)) == 1


async def test_a_chat_whose_arrival_failed_arrives_with_the_next_message(ctx: Context) -> None:
    from console.models import Chat

    site = await make_site(ctx)
    visit = await chat.visit(ctx, site, None)
    async with ctx.db.transaction() as session:  # what a crash between the chat and its arrival leaves
        session.add(Chat(site_id=site.id, visitor_id=visit.visitor_id))
    line = await chat.from_visitor(ctx, visit, "m-1", "Is daar iemand?")
    async with ctx.db.reading() as session:
        conversation = await session.scalar(select(Conversation))
        assert conversation is not None and conversation.state is State.QUEUED
        assert [m.id for m in await chat.lines(session, conversation.chat_id or 0)] == [line.id]


def test_only_a_page_of_the_site_is_shown_to_the_agent_without_its_query() -> None:
    site = chat.ChatSite(origins=ORIGIN + "\nhttps://shop.example")
    assert chat.page_on_site(site, ORIGIN + "/bestellen?order=123&email=jan@x.nl#top") == ORIGIN + "/bestellen"
    assert chat.page_on_site(site, "https://shop.example:443") == "https://shop.example/"
    assert chat.page_on_site(site, "https://phish.example/login") is None
    assert chat.page_on_site(site, "javascript:alert(1)") is None


async def test_a_chat_waiting_on_its_visitor_too_long_ends_and_a_visitor_waiting_for_an_answer_never_does(
        ctx: Context) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    site = await make_site(ctx, idle_minutes=10)
    await routing.set_status(ctx, anna, "available")
    quiet, waiting = await chat.visit(ctx, site, None), await chat.visit(ctx, site, None)
    await chat.from_visitor(ctx, quiet, "q-1", "Hallo")
    await chat.from_visitor(ctx, waiting, "w-1", "Is er iemand?")
    async with ctx.db.reading() as session:
        parts = list(await session.scalars(select(Conversation).order_by(Conversation.id)))
    for part in parts:
        await offers.accept(ctx, anna, part.id)
    await chat.from_agent(ctx, anna, parts[0].id, "a-1", "Waarmee kan ik helpen?")
    assert await chat.sweep_idle(ctx) == 0, "nobody waited ten minutes yet"

    eleven_minutes_ago = datetime.now(UTC) - timedelta(minutes=11)
    async with ctx.db.transaction() as session:
        await session.execute(update(Message).values(created_at=eleven_minutes_ago))
    assert await chat.sweep_idle(ctx) == 1
    async with ctx.db.reading() as session:
        quiet_part = await session.get(Conversation, parts[0].id)
        waiting_part = await session.get(Conversation, parts[1].id)
        assert quiet_part is not None and quiet_part.state is State.WRAP_UP
        assert waiting_part is not None and waiting_part.state is State.ACTIVE, "the visitor waits on us"
        said = await chat.lines(session, quiet_part.chat_id or 0)
        assert [(line.author, line.body) for line in said][-1] == (Author.SYSTEM, "chat idle")
        assert await chat.open_chat(session, quiet.visitor_id) is None
        assert await chat.open_chat(session, waiting.visitor_id) is not None
    assert await chat.sweep_idle(ctx) == 0, "ended once"


async def test_what_a_visitor_types_about_themselves_is_kept_but_never_links_a_customer_by_itself(
        ctx: Context) -> None:
    from console import screenpop

    site = await make_site(ctx)
    jan = await add_customer(ctx.db, "Jan Jansen", emails=("jan@jansen.example",))
    typed = await chat.describe(ctx, await chat.visit(ctx, site, None), " Jan ", "JAN@jansen.example")
    assert typed.identity == "typed" and typed.customer_id is None and typed.name == "Jan"
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    await routing.set_status(ctx, anna, "available")
    await chat.from_visitor(ctx, typed, "m-1", "Waar blijft mijn bestelling?")
    async with ctx.db.reading() as session:
        conversation = await session.scalar(select(Conversation))
        assert conversation is not None and conversation.customer_id is None, "typed: never linked by itself"
        pop = await screenpop.build_pop(session, conversation, True, "NL")
    assert pop.typed_match and [c.id for c in pop.candidates] == [jan], "offered to the agent to confirm"
    assert pop.visitor is not None and (pop.visitor.name, pop.visitor.identity) == ("Jan", "typed")
    verified = await chat.visit(ctx, site, None, "jan@jansen.example", chat.signature(site, "jan@jansen.example"))
    still = await chat.describe(ctx, verified, "Iemand anders", "boef@x.example")
    assert still.identity == "verified" and still.customer_id == jan and still.email == "jan@jansen.example"
    logged_out = await chat.visit(ctx, site, verified.token)
    assert logged_out.visitor_id != verified.visitor_id and logged_out.identity == "anonymous", \
        "without the website's word, the browser is nobody in particular"
    for name, email, says in (("x" * 201, "", "at most 200"), ("", "geen adres", "not an email address")):
        with pytest.raises(InvalidInput, match=says):
            await chat.describe(ctx, typed, name, email)


async def test_the_widget_hears_when_nobody_could_answer_unless_an_agent_just_did(ctx: Context) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    site = await make_site(ctx, hours="mon-sun 00:00-23:59", timezone="UTC", prechat=True)
    async with ctx.db.reading() as session:
        nobody = await chat.availability(session, site, None)
    assert (nobody.open, nobody.staffed, nobody.prechat) == (True, False, True)
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None)
    await chat.from_visitor(ctx, visit, "m-1", "Hallo")
    async with ctx.db.reading() as session:
        part = await session.scalar(select(Conversation))
        assert part is not None and (await chat.availability(session, site, None)).answering
    await offers.accept(ctx, anna, part.id)
    await chat.from_agent(ctx, anna, part.id, "a-1", "Goedemiddag!")
    async with ctx.db.transaction() as session:
        site_row = await session.get(chat.ChatSite, site.id)
        assert site_row is not None
        other_day = "tue" if datetime.now(UTC).weekday() == 0 else "mon"
        site_row.hours = f"{other_day} 09:00-17:00"  # closed today
    await routing.set_status(ctx, anna, "offline")
    async with ctx.db.reading() as session:
        closed_site = await session.get(chat.ChatSite, site.id)
        current = await chat.open_chat(session, visit.visitor_id)
        assert closed_site is not None and current is not None
        assert (await chat.availability(session, closed_site, current)).answering, "Anna wrote a minute ago"
        assert not (await chat.availability(session, closed_site, None)).answering
    async with ctx.db.transaction() as session:
        await session.execute(update(Message).values(created_at=datetime.now(UTC) - timedelta(minutes=11)))
    async with ctx.db.reading() as session:
        assert not (await chat.availability(session, closed_site, current)).answering


async def test_a_chat_handed_to_a_colleague_continues_with_them_where_it_stopped(ctx: Context) -> None:
    from console import handoffs
    from console.handoffs import Target

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    site = await make_site(ctx)
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None)
    await chat.from_visitor(ctx, visit, "m-1", "Mijn factuur klopt niet")
    async with ctx.db.reading() as session:
        first = await session.scalar(select(Conversation))
    assert first is not None
    await offers.accept(ctx, anna, first.id)
    await chat.from_agent(ctx, anna, first.id, "a-1", "Ik geef u door aan onze facturatie.")
    await routing.set_status(ctx, bram, "available")
    await handoffs.start(ctx, anna, first.id, Target(agent_id=bram), "cold", "Factuur 2231, dubbel betaald")
    async with ctx.db.reading() as session:
        second = await session.scalar(select(Conversation).order_by(Conversation.id.desc()).limit(1))
    assert second is not None and second.id != first.id and second.chat_id == first.chat_id
    await chat.from_visitor(ctx, visit, "m-2", "Dank u", chat_id=first.chat_id)
    with pytest.raises(Conflict):
        await chat.from_agent(ctx, anna, first.id, "a-2", "Nog iets?")
    if second.state is not State.ACTIVE:
        await offers.accept(ctx, bram, second.id)
    await chat.from_agent(ctx, bram, second.id, "b-1", "Goedemiddag, ik zie de dubbele betaling.")
    async with ctx.db.reading() as session:
        said = [(line.author, line.body) for line in await chat.lines(session, first.chat_id or 0)]
        parts = list(await session.scalars(select(Message.conversation_id).where(Message.author == Author.CUSTOMER)
                                           .order_by(Message.id)))
    assert said == [(Author.CUSTOMER, "Mijn factuur klopt niet"), (Author.AGENT, "Ik geef u door aan onze facturatie."),
                    (Author.CUSTOMER, "Dank u"), (Author.AGENT, "Goedemiddag, ik zie de dubbele betaling.")]
    assert parts == [first.id, second.id], "the visitor's next words are in Bram's part"


async def test_a_visitor_ending_the_chat_sends_the_agent_to_wrap_up_and_both_read_it(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    site = await make_site(ctx)
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None)
    assert await chat.end_by_visitor(ctx, visit) is None, "no chat yet: nothing to end"
    await chat.from_visitor(ctx, visit, "m-1", "Hallo")
    async with ctx.db.reading() as session:
        part = await session.scalar(select(Conversation))
    assert part is not None
    await offers.accept(ctx, anna, part.id)
    assert await chat.end_by_visitor(ctx, visit) == part.chat_id
    async with ctx.db.reading() as session:
        ended = await session.get(Conversation, part.id)
        assert ended is not None and ended.state is State.WRAP_UP and ended.agent_id == anna
        said = [(line.author, line.body) for line in await chat.lines(session, part.chat_id or 0)]
        assert said == [(Author.CUSTOMER, "Hallo"), (Author.SYSTEM, "chat ended by visitor")]
        assert await chat.open_chat(session, visit.visitor_id) is None
    assert await chat.end_by_visitor(ctx, visit) is None, "ended once"


async def test_a_chat_its_visitor_ends_before_anyone_answered_is_abandoned_and_stops_ringing(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    site = await make_site(ctx)
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None)
    await chat.from_visitor(ctx, visit, "m-1", "Is er iemand?")
    await chat.end_by_visitor(ctx, visit)
    async with ctx.db.reading() as session:
        part = await session.scalar(select(Conversation))
        assert part is not None and part.state is State.ABANDONED
        from console.models import Offer, OfferState
        assert not list(await session.scalars(select(Offer).where(Offer.state == OfferState.PENDING))), \
            "the ringing offer is withdrawn"
    with pytest.raises(Conflict):
        await offers.accept(ctx, anna, part.id)


async def test_a_visitor_rates_their_own_ended_chat_on_the_agents_part_and_nobody_elses(ctx: Context) -> None:
    from console import conversations, ratings

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    site = await make_site(ctx)
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None)
    stranger = await chat.visit(ctx, site, None)
    line = await chat.from_visitor(ctx, visit, "m-1", "Hallo")
    with pytest.raises(Conflict, match="once it has ended"):
        await ratings.rate_chat(ctx, visit.visitor_id, line.chat_id, 5)
    async with ctx.db.reading() as session:
        part = await session.scalar(select(Conversation))
    assert part is not None
    await offers.accept(ctx, anna, part.id)
    await conversations.end(ctx, anna, part.id)
    for score, comment, says in ((0, "", "1 to 5"), (6, "", "1 to 5"), (True, "", "1 to 5"), ("5", "", "1 to 5"),
                                 (4, "x" * 2001, "at most 2000")):
        with pytest.raises(InvalidInput, match=says):
            await ratings.rate_chat(ctx, visit.visitor_id, line.chat_id, score, comment)
    with pytest.raises(NotFound, match="not yours"):
        await ratings.rate_chat(ctx, stranger.visitor_id, line.chat_id, 1, "slecht")
    assert await ratings.rate_chat(ctx, visit.visitor_id, line.chat_id, 3, "  ") == part.id
    assert await ratings.rate_chat(ctx, visit.visitor_id, line.chat_id, 4, " Snel geholpen ") == part.id
    async with ctx.db.reading() as session:
        rated = await session.get(Conversation, part.id)
        assert rated is not None and (rated.rating, rated.rating_comment, rated.agent_id, rated.queue_id) == (
            4, "Snel geholpen", anna, part.queue_id), "a second rating replaces the first, per agent and queue"
    nobody = await chat.visit(ctx, site, None)
    await routing.set_status(ctx, anna, "away")
    unanswered = await chat.from_visitor(ctx, nobody, "m-1", "Hallo?")
    await chat.end_by_visitor(ctx, nobody)
    with pytest.raises(Conflict, match="Nobody answered"):
        await ratings.rate_chat(ctx, nobody.visitor_id, unanswered.chat_id, 5)


async def test_a_transcript_holds_every_line_in_the_visitors_words_and_only_for_them(ctx: Context) -> None:
    from console import transcripts

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    site = await make_site(ctx)
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None)
    line = await chat.from_visitor(ctx, visit, "m-1", "<script>alert(1)</script>\nTweede regel")
    async with ctx.db.reading() as session:
        part = await session.scalar(select(Conversation))
    assert part is not None
    await offers.accept(ctx, anna, part.id)
    await chat.from_agent(ctx, anna, part.id, "a-1", "Goedemorgen!")
    await chat.end_by_visitor(ctx, visit)
    dutch = await transcripts.of_chat(ctx, visit.visitor_id, line.chat_id, "nl")
    assert dutch.filename.startswith("chat-") and dutch.filename.endswith(f"-{line.chat_id}.txt")
    body = dutch.text.splitlines()
    assert body[0] == "Chat met Bakkerij" and "Europe/Amsterdam" in body[1]
    assert body[3].endswith("Jij: <script>alert(1)</script>") and body[4] == "    Tweede regel"
    assert body[5].endswith("Anna: Goedemorgen!") and body[6].endswith("-- Je hebt de chat beëindigd.")
    english = await transcripts.of_chat(ctx, visit.visitor_id, line.chat_id, "en")
    assert "You: <script>" in english.text and english.text.rstrip().endswith("You ended the chat.")
    stranger = await chat.visit(ctx, site, None)
    with pytest.raises(NotFound, match="not yours"):
        await transcripts.of_chat(ctx, stranger.visitor_id, line.chat_id, "en")


async def test_a_returning_visitor_pops_with_their_earlier_chats_even_unknown_as_a_customer(ctx: Context) -> None:
    from console import conversations, screenpop
    from console.web.render import Renderer

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    site = await make_site(ctx)
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None)
    first = await chat.from_visitor(ctx, visit, "m-1", "Mijn taart had <b>geen</b> kaarsjes")
    async with ctx.db.reading() as session:
        part = await session.scalar(select(Conversation).where(Conversation.chat_id == first.chat_id))
    assert part is not None
    await offers.accept(ctx, anna, part.id)
    await chat.from_agent(ctx, anna, part.id, "a-1", "Excuses, we sturen ze na.")
    await conversations.end(ctx, anna, part.id)
    from console import wrapup
    await wrapup.finish(ctx, anna, part.id, "resolved", "")

    back = await chat.visit(ctx, site, visit.token)  # the next day, the same browser
    again = await chat.from_visitor(ctx, back, "m-2", "Hallo, ik ben het weer")
    stranger = await chat.from_visitor(ctx, await chat.visit(ctx, site, None), "m-1", "Hoi")
    async with ctx.db.reading() as session:
        newest = await session.scalar(select(Conversation).where(Conversation.chat_id == again.chat_id))
        other = await session.scalar(select(Conversation).where(Conversation.chat_id == stranger.chat_id))
        assert newest is not None and newest.customer_id is None and other is not None
        pop = await screenpop.build_pop(session, newest, True, "NL")
        assert not (await screenpop.build_pop(session, other, True, "NL")).earlier_chats, "another browser: none"
    [earlier] = pop.earlier_chats
    assert earlier.id == first.chat_id
    assert [m.body for m in earlier.messages] == ["Mijn taart had <b>geen</b> kaarsjes", "Excuses, we sturen ze na.",
                                                  "chat ended"]
    html = Renderer().render("partials/pop_context.html", "nl", pop=pop, c=pop.conversation, prefix="pop-9")
    assert "Eerdere chats van deze bezoeker (1)" in html and "3 berichten" in html
    assert "&lt;b&gt;geen&lt;/b&gt;" in html and "<b>geen</b>" not in html
