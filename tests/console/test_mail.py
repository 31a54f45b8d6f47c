"""Mails become conversations: threads, duplicates, machines, bounces and replies to closed ones, on each database."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import func, select

from console import conversations, mail, offers, routing, wrapup
from console.errors import Conflict, Forbidden, InvalidInput, NotFound
from console.mailtypes import Bounce, IncomingMail, MailAddress, MailFile
from console.models import (
    Attachment,
    Author,
    Channel,
    ContactPoint,
    Conversation,
    Customer,
    Mail,
    Mailbox,
    Message,
    State,
)
from console.ports import Context
from tests.helpers import add_agent, add_customer

BOX = mail.MailboxSettings(name="support", address="support@shop.example", queue=None)
PDF = b"%PDF-1.4\n" + b"x" * 100


def incoming(message_id: str, sender: str = "jan@jansen.example", name: str = "Jan Jansen", **values: object
             ) -> IncomingMail:
    base = IncomingMail(message_id=message_id, subject="Mijn bestelling", sender=MailAddress(name, sender),
                        to=(MailAddress("", "support@shop.example"),), text="Waar blijft mijn pakket?", size=400)
    return replace(base, **values)  # type: ignore[arg-type]


async def conversation(ctx: Context, conversation_id: int | None) -> Conversation:
    assert conversation_id is not None
    async with ctx.db.reading() as session:
        found = await session.get(Conversation, conversation_id)
        assert found is not None
        return found


async def lines(ctx: Context, thread_id: int) -> list[Message]:
    async with ctx.db.reading() as session:
        return await mail.transcript(session, thread_id)


async def test_a_mail_becomes_a_conversation_of_its_customer_offered_to_an_agent(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    await routing.set_status(ctx, anna, "available")
    jan = await add_customer(ctx.db, "Jan Jansen", emails=("jan@jansen.example",))
    received = await mail.receive(ctx, BOX, incoming("a1@jansen.example"))
    assert received.outcome == "new"
    c = await conversation(ctx, received.conversation_id)
    assert c.channel is Channel.MAIL and c.customer_id == jan and c.state is State.OFFERED and c.agent_id == anna
    assert c.subject == "Mijn bestelling" and c.mail_thread_id == received.thread_id
    [line] = await lines(ctx, received.thread_id)
    assert line.author is Author.CUSTOMER and line.body == "Waar blijft mijn pakket?"
    assert line.mail is not None and line.mail.from_name == "Jan Jansen" and line.mail.header_id == "a1@jansen.example"


async def test_the_same_message_id_in_one_mailbox_is_stored_once(ctx: Context) -> None:
    first = await mail.receive(ctx, BOX, incoming("same@x"), uid=(7, 1))
    again = await mail.receive(ctx, BOX, incoming("same@x"), uid=(7, 2))
    assert again.outcome == "duplicate" and again.mail_id == first.mail_id
    async with ctx.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Mail)) == 1
    assert await mail.cursor(ctx, "support") == (7, 2), "the cursor still moves past it"
    other_box = replace(BOX, name="sales")
    elsewhere = await mail.receive(ctx, other_box, incoming("same@x"))
    assert elsewhere.outcome != "duplicate", "another mailbox keeps its own copy (Cc to both)"


async def test_a_reply_joins_its_thread_by_in_reply_to_references_or_token(ctx: Context) -> None:
    first = await mail.receive(ctx, BOX, incoming("q1@jansen.example"))
    by_reply = await mail.receive(ctx, BOX, incoming("q2@jansen.example", in_reply_to=("q1@jansen.example",)))
    assert by_reply.outcome == "joined" and by_reply.thread_id == first.thread_id
    assert by_reply.conversation_id == first.conversation_id
    by_chain = await mail.receive(ctx, BOX, incoming("q3@jansen.example", references=("q1@jansen.example",
                                                                                         "lost@somewhere")))
    assert by_chain.thread_id == first.thread_id
    async with ctx.db.reading() as session:
        token = await session.scalar(select(mail.MailThread.token).where(mail.MailThread.id == first.thread_id))
    assert token
    # A provider rewrote every id, but the token of the console's own Message-ID survives in References.
    ours = mail.outgoing_message_id(token, "console.shop.example")
    by_token = await mail.receive(ctx, BOX, incoming("q4@rewritten.example", in_reply_to=("rewritten@x",),
                                                     references=(ours,)))
    assert by_token.thread_id == first.thread_id
    by_address = await mail.receive(ctx, BOX, incoming("q5@jansen.example", to=(MailAddress(
        "", mail.reply_address("support@shop.example", token)),)))
    assert by_address.thread_id == first.thread_id
    assert [line.mail.header_id for line in await lines(ctx, first.thread_id) if line.mail] == [
        "q1@jansen.example", "q2@jansen.example", "q3@jansen.example", "q4@rewritten.example", "q5@jansen.example"]


async def test_a_newsletter_answered_by_many_people_does_not_merge_them(ctx: Context) -> None:
    letter = await mail.receive(ctx, BOX, incoming("letter@shop.example", sender="news@shop.example"))
    piet = await mail.receive(ctx, BOX, incoming("p@piet.example", sender="piet@piet.example",
                                                 in_reply_to=("letter@shop.example",)))
    kees = await mail.receive(ctx, BOX, incoming("k@kees.example", sender="kees@kees.example",
                                                 in_reply_to=("letter@shop.example",)))
    assert len({letter.thread_id, piet.thread_id, kees.thread_id}) == 3
    assert piet.outcome == kees.outcome == "new"


async def test_machines_are_stored_with_their_thread_and_never_routed(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    await routing.set_status(ctx, anna, "available")
    out_of_office = await mail.receive(ctx, BOX, incoming("ooo@x", automatic="auto-replied",
                                                          subject="Automatisch antwoord: Mijn bestelling"))
    assert out_of_office.outcome == "automatic"
    c = await conversation(ctx, out_of_office.conversation_id)
    assert c.state is State.CLOSED and c.agent_id is None, "kept for the history, offered to nobody"
    async with ctx.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)
                                    .where(Conversation.state != State.CLOSED)) == 0
    # An auto-reply on a thread that is going on is shown there, and routes nothing new.
    person = await mail.receive(ctx, BOX, incoming("p1@x", sender="piet@piet.example"))
    bulk = await mail.receive(ctx, BOX, incoming("p2@x", sender="piet@piet.example", automatic="bulk",
                                                 in_reply_to=("p1@x",)))
    assert bulk.thread_id == person.thread_id and bulk.conversation_id == person.conversation_id
    async with ctx.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Conversation)) == 2


async def test_a_bounce_goes_to_the_mail_it_bounces_and_marks_the_address_failing(ctx: Context) -> None:
    await mail.register(ctx, [BOX])
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    jan = await add_customer(ctx.db, "Jan Jansen", emails=("jan@jansen.example",))
    async with ctx.db.transaction() as session:
        customer = await session.get(Customer, jan)
        assert customer is not None
        customer.consent_email = True
    await mail.write_new(ctx, anna, jan, "jan@jansen.example", "Uw offerte", "Hierbij.", "n-1")
    [out] = await mail.claim_due(ctx)
    await mail.sent(ctx, out.mail_id, out.lease)

    def dsn(message_id: str, about: str, recipient: str) -> IncomingMail:
        return incoming(message_id, sender="mailer-daemon@mx.shop.example", name="Mail Delivery System",
                        subject="Undelivered Mail Returned to Sender", automatic="bounce",
                        bounce=Bounce(about, (recipient,), "5.1.1", True, "550 5.1.1 user unknown"))

    # A forged report about a mail that is not ours, or about an address ours did not go to: nothing.
    await mail.receive(ctx, BOX, dsn("forged@mx", "someone-else@x", "jan@jansen.example"))
    await mail.receive(ctx, BOX, dsn("forged2@mx", out.message_id, "ceo@big.example"))
    async with ctx.db.reading() as session:
        point = await session.scalar(select(ContactPoint).where(ContactPoint.customer_id == jan))
        assert point is not None and point.failing_since is None
    received = await mail.receive(ctx, BOX, dsn("dsn1@mx", out.message_id, "jan@jansen.example"))
    async with ctx.db.reading() as session:
        ours = await session.get(Mail, out.mail_id)
        assert ours is not None and received.thread_id == ours.thread_id and received.outcome == "bounce"
        assert ours.send_state == mail.FAILED and "user unknown" in (ours.last_error or "")
        point = await session.scalar(select(ContactPoint).where(ContactPoint.customer_id == jan))
        assert point is not None and point.failing_since is not None and "user unknown" in (point.failure or "")
    # The customer writes from the address: it works again.
    await mail.receive(ctx, BOX, incoming("alive@jansen.example"))
    async with ctx.db.reading() as session:
        point = await session.scalar(select(ContactPoint).where(ContactPoint.customer_id == jan))
        assert point is not None and point.failing_since is None


@pytest.mark.parametrize("mode", ["reopen", "new"])
async def test_a_reply_to_a_closed_conversation_reopens_it_or_starts_a_linked_one_and_says_so(
        ctx: Context, mode: str) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    await routing.set_status(ctx, anna, "available")
    box = replace(BOX, on_reply_to_closed=mode)
    first = await mail.receive(ctx, box, incoming("q1@jansen.example"))
    await offers.accept(ctx, anna, first.conversation_id or 0)
    await conversations.end(ctx, anna, first.conversation_id or 0)
    await wrapup.finish(ctx, anna, first.conversation_id or 0, "resolved", "")
    again = await mail.receive(ctx, box, incoming("q2@jansen.example", in_reply_to=("q1@jansen.example",)))
    assert again.conversation_id != first.conversation_id
    c = await conversation(ctx, again.conversation_id)
    assert c.state is State.OFFERED and c.mail_thread_id == again.thread_id
    said = [line.body for line in await lines(ctx, again.thread_id) if line.author is Author.SYSTEM]
    if mode == "reopen":
        assert again.outcome == "reopened" and again.thread_id == first.thread_id
        assert said == [mail.REOPENED]
        assert len([line for line in await lines(ctx, first.thread_id) if line.mail]) == 2, "one thread, both mails"
    else:
        assert again.outcome == "linked" and again.thread_id != first.thread_id
        assert said == [mail.LINKED_TO]
        async with ctx.db.reading() as session:
            follows = await session.scalar(select(mail.MailThread.follows_id)
                                           .where(mail.MailThread.id == again.thread_id))
        assert follows == first.thread_id


async def test_files_are_kept_with_the_mail_and_a_picture_only_when_its_bytes_say_so(ctx: Context) -> None:
    files = (MailFile("offerte.pdf", "application/pdf", PDF), MailFile("../../etc/passwd.html", "text/html",
                                                                       b"<script>alert(1)</script>"),
             MailFile("logo.png", "image/png", b"not a png", content_id="logo@x", inline=True))
    received = await mail.receive(ctx, BOX, incoming("f1@x", files=files))
    async with ctx.db.reading() as session:
        stored = {a.name: a for a in await session.scalars(select(Attachment))}
    assert stored["offerte.pdf"].content_type == "application/pdf"
    assert stored["passwd.html"].content_type == "application/octet-stream", "never served as HTML"
    assert stored["logo.png"].content_type == "application/octet-stream" and stored["logo.png"].content_id == "logo@x"
    assert [line.body for line in await lines(ctx, received.thread_id) if line.attachment] == [
        "offerte.pdf", "passwd.html", "logo.png"]


async def test_the_cursor_moves_with_the_mail_and_a_new_uidvalidity_starts_it_again(ctx: Context) -> None:
    assert await mail.cursor(ctx, "support") == (None, 0)
    await mail.receive(ctx, BOX, incoming("c1@x"), uid=(100, 5))
    assert await mail.cursor(ctx, "support") == (100, 5)
    await mail.resync(ctx, "support", 200)
    assert await mail.cursor(ctx, "support") == (200, 0)
    again = await mail.receive(ctx, BOX, incoming("c1@x"), uid=(200, 1))
    assert again.outcome == "duplicate"
    assert await mail.cursor(ctx, "support") == (200, 1)
    async with ctx.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Mailbox)) == 1


async def _left_message_chat(ctx: Context) -> tuple[int, int, int]:
    """A visitor who left a message with their address while nobody could answer, and the agent
    who takes it: (agent, conversation, chat)."""
    from console import chat
    from tests.console.test_chat import make_site

    await mail.register(ctx, [BOX])
    site = await make_site(ctx)
    visit = await chat.describe(ctx, await chat.visit(ctx, site, None), "Jan", "jan@jansen.example")
    line = await chat.from_visitor(ctx, visit, "m-1", "Kunnen jullie me terugbellen?", left=True)
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna de Vries")
    await routing.set_status(ctx, anna, "available")
    async with ctx.db.reading() as session:
        conversation_id = await session.scalar(select(Conversation.id).where(Conversation.chat_id == line.chat_id))
    assert conversation_id is not None
    await offers.accept(ctx, anna, conversation_id)
    return anna, conversation_id, line.chat_id


async def test_the_answer_to_a_message_left_in_the_chat_goes_by_mail_too(ctx: Context) -> None:
    from console import chat

    anna, conversation_id, _ = await _left_message_chat(ctx)
    await chat.from_agent(ctx, anna, conversation_id, "a-1", "Natuurlijk, we bellen u morgen om tien uur.")
    await chat.from_agent(ctx, anna, conversation_id, "a-1", "Natuurlijk, we bellen u morgen om tien uur.")  # resent
    [out] = await mail.claim_due(ctx)
    assert out.to == "jan@jansen.example" and out.from_address == "support@shop.example"
    assert out.text == "Natuurlijk, we bellen u morgen om tien uur." and not out.automatic
    assert out.subject.startswith("Bakkerij: Kunnen jullie me terugbellen")
    await mail.sent(ctx, out.mail_id)
    await chat.from_agent(ctx, anna, conversation_id, "a-2", "Tot morgen!")
    [second] = await mail.claim_due(ctx)
    assert second.subject.startswith("Re: ") and second.in_reply_to == out.message_id, "one thread per chat"
    # The visitor answers the mail: it comes back as a mail conversation, by the console's token.
    back = await mail.receive(ctx, BOX, incoming("jan-1@jansen.example", in_reply_to=(second.message_id,)))
    assert back.outcome == "new" and back.conversation_id is not None
    c = await conversation(ctx, back.conversation_id)
    assert c.channel is Channel.MAIL


async def test_a_transcript_is_mailed_once_a_day_to_an_address_and_says_so(ctx: Context) -> None:
    from console import chat, transcripts

    anna, conversation_id, chat_id = await _left_message_chat(ctx)
    await chat.from_agent(ctx, anna, conversation_id, "a-1", "Goedemorgen Jan")
    await mail.claim_due(ctx)  # the answer by mail, out of the way
    async with ctx.db.reading() as session:
        visitor_id = await session.scalar(select(chat.Chat.visitor_id).where(chat.Chat.id == chat_id))
    assert visitor_id is not None
    with pytest.raises(InvalidInput):
        await transcripts.by_mail(ctx, visitor_id, chat_id, "nl", "geen adres")
    to = await transcripts.by_mail(ctx, visitor_id, chat_id, "nl", " Jan@Jansen.example ")
    assert to == "jan@jansen.example"
    [out] = await mail.claim_due(ctx)
    assert out.automatic and out.to == "jan@jansen.example" and "Goedemorgen Jan" in out.text
    assert out.subject == "Your chat with Bakkerij" or out.subject == "Je chat met Bakkerij"
    with pytest.raises(Conflict, match="mailed already"):
        await transcripts.by_mail(ctx, visitor_id, chat_id, "nl", "jan@jansen.example")
    with pytest.raises(Forbidden, match="address you gave"):
        await transcripts.by_mail(ctx, visitor_id, chat_id, "nl", "iemand@anders.example")
    with pytest.raises(InvalidInput):
        await transcripts.by_mail(ctx, visitor_id, chat_id, "nl", "jan@jansen.example,iemand@anders.example")
    with pytest.raises(NotFound):
        await transcripts.by_mail(ctx, visitor_id + 1, chat_id, "nl", "piet@x.example")


async def test_the_acknowledgement_is_automatic_once_a_day_and_never_for_a_machine(ctx: Context) -> None:
    box = replace(BOX, acknowledge=True, language="nl")
    await mail.register(ctx, [box])
    first = await mail.receive(ctx, box, incoming("a1@jansen.example"))
    [ack] = await mail.claim_due(ctx)
    assert ack.automatic and ack.to == "jan@jansen.example" and ack.subject == "Re: Mijn bestelling"
    assert ack.in_reply_to == "a1@jansen.example" and "ct-" in ack.message_id
    said = [line.body for line in await lines(ctx, first.thread_id) if line.author is Author.SYSTEM]
    assert said == [mail.ACKNOWLEDGED]
    await mail.receive(ctx, box, incoming("a2@jansen.example", subject="Nog iets"))
    await mail.receive(ctx, box, incoming("ooo@piet.example", sender="piet@piet.example", automatic="auto-replied"))
    await mail.receive(ctx, box, incoming("s@shop.example", sender="support@shop.example"))
    assert await mail.claim_due(ctx) == [], "one a day per address, none to machines, none to itself"


async def test_a_new_mail_from_the_customer_page_needs_consent_and_an_address_that_works(ctx: Context) -> None:
    await mail.register(ctx, [BOX])
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna de Vries")
    jan = await add_customer(ctx.db, "Jan Jansen", emails=("jan@jansen.example",))
    with pytest.raises(Forbidden, match="not agreed"):
        await mail.write_new(ctx, anna, jan, "jan@jansen.example", "Uw offerte", "Hierbij de offerte.", "n-1")
    async with ctx.db.transaction() as session:
        customer = await session.get(Customer, jan)
        assert customer is not None
        customer.consent_email = True
    with pytest.raises(InvalidInput, match="one of the customer's"):
        await mail.write_new(ctx, anna, jan, "iemand@anders.example", "Uw offerte", "Hierbij de offerte.", "n-1")
    await mail.write_new(ctx, anna, jan, "JAN@jansen.example", "Uw offerte", "Hierbij de offerte.", "n-1")
    await mail.write_new(ctx, anna, jan, "JAN@jansen.example", "Uw offerte", "Hierbij de offerte.", "n-1")  # resent
    [out] = await mail.claim_due(ctx)
    assert out.to == "jan@jansen.example" and out.subject == "Uw offerte" and out.text == "Hierbij de offerte."
    # The customer answers: their mail reopens the thread as work for an agent.
    back = await mail.receive(ctx, BOX, incoming("jan-9@jansen.example", in_reply_to=(out.message_id,)))
    assert back.outcome == "reopened"
    # It bounced meanwhile: the address is failing and no new mail goes there.
    await mail.receive(ctx, BOX, incoming("dsn@mx", sender="mailer-daemon@mx.example", automatic="bounce",
                                          bounce=Bounce(out.message_id, ("jan@jansen.example",), "5.1.1", True)))
    with pytest.raises(Conflict, match="bounces"):
        await mail.write_new(ctx, anna, jan, "jan@jansen.example", "Nog iets", "Tekst", "n-2")


async def test_erasing_the_customer_blanks_their_mails_and_stops_what_was_not_sent(ctx: Context) -> None:
    from console import privacy

    await mail.register(ctx, [BOX])
    sophie = await add_agent(ctx.db, "sophie@x.nl", "Sophie", role="supervisor")
    jan = await add_customer(ctx.db, "Jan Jansen", emails=("jan@jansen.example",))
    html = "<p>Mijn adres is Kerkstraat 1</p>"
    received = await mail.receive(ctx, BOX, incoming("e1@jansen.example", html=html, remote_html=html,
                                                     quoted="> eerder", files=(MailFile("a.pdf", "x", PDF),)))
    async with ctx.db.transaction() as session:
        c = await session.get(Conversation, received.conversation_id)
        assert c is not None
        c.state = State.CLOSED
    await privacy.erase(ctx, sophie, jan)
    async with ctx.db.reading() as session:
        stored = await session.scalar(select(Mail))
        assert stored is not None and stored.header_id == "e1@jansen.example"
        assert (stored.from_address, stored.from_name, stored.subject, stored.quoted, stored.html) == ("", "", "", "",
                                                                                                      None)
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 0
        assert all(not m.body for m in await session.scalars(select(Message)))


async def _accepted(ctx: Context, box: mail.MailboxSettings = BOX, **values: object) -> tuple[int, mail.Received]:
    """Jan's mail, accepted by Anna: (anna, what became of the mail)."""
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna de Vries")
    await routing.set_status(ctx, anna, "available")
    await mail.register(ctx, [box])
    first = await mail.receive(ctx, box, incoming("q1@jansen.example", **values))
    await offers.accept(ctx, anna, first.conversation_id or 0)
    return anna, first


async def test_a_handed_off_mail_keeps_its_thread_and_the_colleague_replies_in_it(ctx: Context) -> None:
    from console import handoffs

    anna, first = await _accepted(ctx)
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    await routing.set_status(ctx, bram, "available")
    handoff = await handoffs.start(ctx, anna, first.conversation_id or 0, handoffs.Target(agent_id=bram), "warm",
                                    "Jan wacht op zijn pakket")
    following = await handoffs.accept(ctx, bram, handoff.id)
    assert (await conversation(ctx, following)).mail_thread_id == first.thread_id
    await mail.reply(ctx, bram, following, "b-1", "Ik neem het over.")
    [out] = await mail.claim_due(ctx)
    assert out.to == "jan@jansen.example" and out.in_reply_to == "q1@jansen.example"
    again = await mail.receive(ctx, BOX, incoming("q2@jansen.example", in_reply_to=(out.message_id,)))
    assert again.outcome == "joined" and again.conversation_id == following


async def test_a_reply_answers_the_customer_never_a_machine_on_the_thread(ctx: Context) -> None:
    anna, first = await _accepted(ctx, reply_to=(MailAddress("", "jan.prive@jansen.example"),))
    await mail.receive(ctx, BOX, incoming("ooo@jansen.example", automatic="out of office", in_reply_to=("x",),
                                          subject="Afwezig: Mijn bestelling",
                                          references=(mail.outgoing_message_id("x" * 20, "shop.example"),)))
    await mail.receive(ctx, BOX, incoming("noise@mx", sender="mailer-daemon@mx.example", automatic="bounce",
                                          in_reply_to=("q1@jansen.example",)))
    await mail.reply(ctx, anna, first.conversation_id or 0, "r-1", "Het pakket komt morgen.")
    [out] = await mail.claim_due(ctx)
    assert out.to == "jan.prive@jansen.example", "at the customer's Reply-To"
    assert out.subject == "Re: Mijn bestelling" and out.in_reply_to == "q1@jansen.example"
    assert out.references == ("q1@jansen.example",)


async def test_someone_else_answering_with_the_token_gets_a_thread_of_their_own(ctx: Context) -> None:
    anna, first = await _accepted(ctx)
    await mail.reply(ctx, anna, first.conversation_id or 0, "r-1", "Hallo Jan")
    [out] = await mail.claim_due(ctx)
    colleague = await mail.receive(ctx, BOX, incoming("c1@elders.example", sender="kees@elders.example",
                                                      in_reply_to=(out.message_id,)))
    assert colleague.thread_id != first.thread_id and colleague.outcome == "new"
    async with ctx.db.reading() as session:
        follows = await session.scalar(select(mail.MailThread.follows_id)
                                       .where(mail.MailThread.id == colleague.thread_id))
    assert follows == first.thread_id


async def test_with_linked_threads_every_later_reply_joins_the_newest_one(ctx: Context) -> None:
    box = replace(BOX, on_reply_to_closed="new")
    anna, first = await _accepted(ctx, box)
    await conversations.end(ctx, anna, first.conversation_id or 0)
    await wrapup.finish(ctx, anna, first.conversation_id or 0, "resolved", "")
    linked = await mail.receive(ctx, box, incoming("q2@jansen.example", in_reply_to=("q1@jansen.example",)))
    later = await mail.receive(ctx, box, incoming("q3@jansen.example", in_reply_to=("q1@jansen.example",)))
    assert linked.outcome == "linked" and later.outcome == "joined"
    assert later.conversation_id == linked.conversation_id and later.thread_id == linked.thread_id


async def test_inline_images_are_put_in_the_mail_page_itself(ctx: Context) -> None:
    import random

    from integrations.chat_simulator import photo

    png = photo(random.Random(1))
    html = '<p>Kijk:</p><img src="cid:logo@x" alt="logo"><img src="cid:missing@x">'
    anna, _ = await _accepted(ctx, html=html, files=(MailFile("logo.png", "image/png", png, "logo@x", True),))
    async with ctx.db.reading() as session:
        stored = await session.scalar(select(Mail.id))
        assert stored is not None
        view = await mail.html_for_agent(session, stored, anna)
        assert 'src="data:image/png;base64,' in view.html and 'src=""' in view.html
        stranger = await add_agent(ctx.db, "carla@x.nl", "Carla")
        with pytest.raises(NotFound):
            await mail.html_for_agent(session, stored, stranger)


async def test_one_node_reads_a_mailbox_and_another_takes_over_when_it_stops(ctx: Context) -> None:
    assert await mail.hold(ctx, "support", "node-a", 30)
    assert await mail.hold(ctx, "support", "node-a", 30), "renewed"
    assert not await mail.hold(ctx, "support", "node-b", 30)
    await mail.release(ctx, "support", "node-a")
    assert await mail.hold(ctx, "support", "node-b", 0.01)
    import asyncio

    await asyncio.sleep(0.05)
    assert await mail.hold(ctx, "support", "node-a", 30), "node-b stopped renewing"
