"""Files in a chat: what is taken (read from the content), how they are named, stored once and erased."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from console import attachments, chat, offers, privacy, routing
from console.errors import InvalidInput, TooLarge
from console.models import Attachment, Conversation
from console.ports import Context
from tests.console.test_chat import make_site
from tests.helpers import add_agent, add_customer

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


@pytest.mark.parametrize(("data", "kind"), [
    (PNG, "image/png"), (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"), (b"GIF89a\x01\x00", "image/gif"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"), (PDF, "application/pdf"),
])
def test_a_file_is_what_its_content_says(data: bytes, kind: str) -> None:
    upload = attachments.check("upload", data)
    assert upload.content_type == kind and upload.name.endswith(attachments.EXTENSIONS[kind][0])


@pytest.mark.parametrize("data", [
    b"<html><script>alert(1)</script></html>",
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    b"MZ\x90\x00 a program",
    b"PK\x03\x04 a zip",
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
])
def test_anything_else_is_refused_whatever_its_name_says(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="Only pictures"):
        attachments.check("photo.png", data)


def test_an_empty_or_oversize_file_is_refused_with_the_limit() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        attachments.check("x.png", b"")
    with pytest.raises(TooLarge, match="at most 10 MB"):
        attachments.check("x.pdf", PDF + b"0" * attachments.MAX_BYTES)
    assert attachments.check("x.pdf", PDF + b"0" * (attachments.MAX_BYTES - len(PDF))).content_type == \
        "application/pdf", "10 MB exactly is taken"


@pytest.mark.parametrize(("raw", "kind", "name"), [
    ("factuur.pdf", "application/pdf", "factuur.pdf"),
    ("C:\\Users\\jan\\Desktop\\foto.JPEG", "image/jpeg", "foto.JPEG"),
    ("../../etc/passwd", "application/pdf", "passwd.pdf"),
    ("invoice.exe", "application/pdf", "invoice.exe.pdf"),
    ('<img src=x onerror="alert(1)">.png', "image/png", "img src=x onerror=alert(1).png"),
    ("", "image/gif", "file.gif"),
    ("\u202egnp.exe", "image/png", "gnp.exe.png"),
])
def test_a_name_loses_folders_and_tricks_and_ends_in_what_the_file_is(raw: str, kind: str, name: str) -> None:
    assert attachments.clean_name(raw, kind) == name


@given(st.text(max_size=400), st.sampled_from(sorted(attachments.EXTENSIONS)))
def test_any_name_becomes_a_plain_name_of_the_right_kind(raw: str, kind: str) -> None:
    name = attachments.clean_name(raw, kind)
    assert 0 < len(name) <= attachments.MAX_NAME
    assert "/" not in name and "\\" not in name and name.isprintable()
    assert name.lower().endswith(attachments.EXTENSIONS[kind])


async def test_a_file_goes_into_the_chat_once_and_erasing_the_customer_takes_it(ctx: Context) -> None:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    sanne = await add_agent(ctx.db, "sanne@x.nl", "Sanne", role="supervisor")
    jan = await add_customer(ctx.db, "Jan Jansen", emails=("jan@jansen.example",))
    site = await make_site(ctx)
    await routing.set_status(ctx, anna, "available")
    visit = await chat.visit(ctx, site, None, "jan@jansen.example", chat.signature(site, "jan@jansen.example"))
    photo = attachments.check("taart.png", PNG)
    first = await chat.from_visitor(ctx, visit, "f-1", photo.name, attachment=photo)
    assert first.attachment is not None and first.attachment.name == "taart.png" and first.body == "taart.png"
    again = await chat.from_visitor(ctx, visit, "f-1", photo.name, chat_id=first.chat_id, attachment=photo)
    assert again.id == first.id and again.attachment == first.attachment, "a resend is the same file"
    lost = await chat.from_visitor(ctx, visit, "f-1", photo.name, attachment=photo)  # the widget lost its chat
    assert lost.id == first.id and lost.attachment == first.attachment
    async with ctx.db.reading() as session:
        part = await session.scalar(select(Conversation))
        assert part is not None and part.customer_id == jan
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 1
        [line] = await chat.lines(session, first.chat_id)
        assert line.attachment == first.attachment and line.as_json()["attachment"] == {
            "id": first.attachment.id, "name": "taart.png", "type": "image/png", "size": len(PNG)}
        stored = await attachments.read(session, first.attachment.id)
        assert stored is not None and stored.data == PNG and stored.sha256 == photo.digest
    await offers.accept(ctx, anna, part.id)
    invoice = attachments.check("factuur.pdf", PDF)
    sent = await chat.from_agent(ctx, anna, part.id, "a-1", invoice.name, invoice)
    assert sent.attachment is not None and sent.attachment.content_type == "application/pdf"
    from console import conversations, ratings, screenpop, wrapup
    from console.web.render import Renderer
    await conversations.end(ctx, anna, part.id)
    await wrapup.finish(ctx, anna, part.id, "resolved", "")
    await ratings.rate_chat(ctx, visit.visitor_id, first.chat_id, 5, "Snel!")

    # What the customer's export and their next pop show of it: the files by name, the rating.
    renderer = Renderer()
    data = await privacy.export(ctx, sanne, jan, "html")
    page = renderer.render("export.html", "nl", data=data, at=lambda value: value or "–")
    assert "(bestand) taart.png (image/png, 48 B)" in page and "(bestand) factuur.pdf" in page
    assert "beoordeeld met 5 van 5" in page and "Snel!" in page
    next_visit = await chat.from_visitor(ctx, visit, "m-2", "Nog een vraag")
    async with ctx.db.reading() as session:
        newest = await session.scalar(select(Conversation).where(Conversation.chat_id == next_visit.chat_id))
        assert newest is not None
        pop = await screenpop.build_pop(session, newest, True, "NL")
    html = renderer.render("partials/pop_customer.html", "en", pop=pop, c=pop.conversation, prefix="pop-x")
    assert "rated 5 of 5" in html and 'title="Snel!"' in html
    await chat.end_by_visitor(ctx, visit)

    await privacy.erase(ctx, sanne, jan)
    async with ctx.db.reading() as session:
        assert await session.scalar(select(func.count()).select_from(Attachment)) == 0, "the files went with the text"
