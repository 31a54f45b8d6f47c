"""Reading received mails: the corpus holds the shapes real clients send (Outlook, Gmail, Apple
Mail, Thunderbird, Postfix and qmail bounces, Exchange out-of-office, a newsletter) and the shapes
nobody should send (broken MIME, no Message-ID, script in every place). The assertions are what an
agent would notice: the text reads right, the history is folded away, nothing runs, nothing is
loaded from outside, a machine's mail is known as one."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.mailtypes import IncomingMail
from integrations.email.loops import automatic
from integrations.email.parse import fold, parse

CORPUS = Path(__file__).parent / "corpus"
NAMES = sorted(path.name for path in CORPUS.glob("*.eml"))


def read(name: str) -> IncomingMail:
    return parse((CORPUS / name).read_bytes())


def simple(body: str, *, headers: str = "", content_type: str = "text/plain; charset=utf-8") -> bytes:
    """A one-part mail of `body`, with `headers` (lines ending in \\n) added to the usual ones."""
    return (f"From: Anna <anna@example.nl>\nTo: support@shop.example\nSubject: Vraag\n"
            f"Message-ID: <simple@example.nl>\n{headers}MIME-Version: 1.0\nContent-Type: {content_type}\n"
            f"Content-Transfer-Encoding: 8bit\n\n{body}").encode()


def printable(value: str) -> bool:
    """What the database stores and a log line shows: no NUL, no halves of surrogate pairs."""
    return "\x00" not in value and not any("\ud800" <= char <= "\udfff" for char in value)


# The corpus -------------------------------------------------------------------------------------

def test_a_thunderbird_mail_is_read_from_its_plain_text_and_keeps_its_thread() -> None:
    mail = read("alternative.eml")
    assert mail.message_id == "5c1e0b7a-3f0e-4d7b-9a51-2f8c1d0e6a44@example.nl"
    assert mail.text.startswith("Goedemorgen,\n\nDe levering van bestelling 10452 is nog niet binnen")
    assert "track-and-trace al twee dagen “bezorgd” zegt" in mail.text  # flowed lines joined again
    assert mail.text.endswith("Met vriendelijke groet,\nPiet Jansen")
    assert mail.quoted.startswith("-- \nPiet Jansen | Jansen Tegelwerken")  # the signature is folded
    assert mail.sender is not None
    assert (mail.sender.name, mail.sender.email) == ("Piet Jansen", "Piet.Jansen@example.nl")
    assert [(a.name, a.email) for a in mail.cc] == [("Jansen, Marieke", "marieke@example.nl")]
    assert [a.email for a in mail.to] == ["Support@shop.example"]
    assert mail.in_reply_to == ("ct-4kq9.1f2e3d4c@shop.example",)
    assert mail.references == ("order-10452@shop.example", "ct-4kq9.1f2e3d4c@shop.example")
    assert mail.date == datetime(2026, 12, 8, 8, 13, 58, tzinfo=UTC)
    assert mail.html is not None and "<p>Goedemorgen,</p>" in mail.html
    assert mail.remote_html is None  # nothing remote to show on request
    assert mail.automatic is None and mail.bounce is None and mail.problems == ()
    assert mail.size == (CORPUS / "alternative.eml").stat().st_size
    assert mail.headers == {"Return-Path": "<piet.jansen@example.nl>"}


def test_a_forwarded_mail_is_a_file_and_its_text_is_not_mixed_in() -> None:
    mail = read("forward.eml")
    assert mail.text == ("Hallo, deze factuur klopt niet: ik heb maar een doos besteld. Zie de mail hieronder."
                         "\n\nLotte")
    assert "89,85" not in mail.text + mail.quoted
    [forwarded] = mail.files
    assert (forwarded.name, forwarded.content_type) == ("Factuur 2026-0091.eml", "message/rfc822")
    assert b"Message-ID: <invoice-2026-0091@billing.shop.example>" in forwarded.data
    assert b"Te betalen: 89,85 euro." in forwarded.data
    assert parse(forwarded.data).subject == "Factuur 2026-0091"


def test_iso_8859_1_quoted_printable_reads_right() -> None:
    mail = read("latin1_qp.eml")
    assert mail.subject == "Bestätigung für Bestellung 10460"
    assert mail.sender is not None and mail.sender.name == "Jürgen Müller"
    assert "ich habe noch keine Bestätigung für meine Bestellung erhalten." in mail.text
    assert "Außerdem: der Preis war 12,50 £ statt 12,50 €?" in mail.text  # 0x80 as Windows writes it
    assert "Café au lait, naïve, één." in mail.text
    assert mail.text.endswith("Grüße\nJürgen")
    assert mail.problems == ()


def test_windows_1252_has_its_euro_sign_and_curly_quotes() -> None:
    mail = read("windows1252.eml")
    assert mail.subject == "Terugbetaling € 25"
    assert "U hebt mij “per vergissing” €25,00 te veel aangerekend – zie rekening 10471." in mail.text
    assert "Dat zou ‘fijn’ zijn." in mail.text
    assert "\r" not in mail.text
    assert mail.problems == ()


def test_utf8_with_emoji_in_subject_and_base64_body() -> None:
    mail = read("emoji_utf8.eml")
    assert mail.subject == "🎉 Bestelling ontvangen – dank!"
    assert mail.text.startswith("Goedemorgen! 👋\n\nMijn bestelling is binnen 🎉 maar de doos was nat 💧.")
    assert mail.text.endswith("Groet,\nSanne")
    assert mail.quoted == "Verzonden vanaf mijn iPhone"
    assert mail.message_id == "8E2B1C6A-77D3-4F0B-A0C4-3D2E1F9B6C51@example.com"


def test_a_calendar_invite_is_kept_as_invite_ics() -> None:
    mail = read("invite.eml")
    assert mail.text == "Zullen we de retourzending donderdag even doorspreken?\n\nEva"
    [invite] = mail.files
    assert (invite.name, invite.content_type, invite.inline) == ("invite.ics", "text/calendar", False)
    assert invite.data.startswith(b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST")
    assert b"SUMMARY;LANGUAGE=nl-NL:Overleg retourzending" in invite.data


def test_an_outlook_reply_in_dutch_has_its_history_folded() -> None:
    mail = read("outlook_reply_nl.eml")
    assert mail.text == ("Hallo,\n\nHet pakket is nog steeds niet aangekomen. Kunnen jullie het opnieuw versturen "
                         "naar mijn werkadres (Stationsstraat 12, Utrecht)?\n\nMet vriendelijke groet,\nKarin Bakker")
    assert mail.quoted.startswith("________________________________\nVan: Klantenservice <support@shop.example>\n"
                                  "Verzonden: maandag 7 december 2026 16:20")
    assert "Het spijt ons" in mail.quoted and "Het spijt ons" not in mail.text
    assert mail.html is not None and "<b>Verzonden:</b>" in mail.html  # the HTML is kept whole
    assert "style=" not in mail.html


def test_a_gmail_reply_in_english_has_its_quote_folded() -> None:
    mail = read("gmail_reply_en.eml")
    assert mail.text == ("Hi Anna,\n\nThe label you sent does not print: the PDF opens as a blank page. Could you\n"
                         "send it again, or as a PNG?\n\nThanks,\nTom")
    assert mail.quoted.startswith("On Mon, 7 Dec 2026 at 10:00, Anna <a@x.nl> wrote:\n\n> Dear Tom,")
    assert mail.in_reply_to == ("ct-2b7d.9f8e7d6c5b4a3f2e@shop.example",)
    assert mail.references == ("ct-2b7d.0a1b2c3d4e5f6a7b@shop.example", "ct-2b7d.9f8e7d6c5b4a3f2e@shop.example")


def test_a_gmail_reply_in_dutch_with_a_wrapped_attribution_has_its_quote_folded() -> None:
    mail = read("gmail_reply_nl.eml")
    assert mail.text == "Dank je, het retourlabel werkt nu wel."
    assert mail.quoted.startswith("Op ma 7 dec 2026 om 16:03 schreef Klantenservice <support@shop.example\n>:")


def test_a_dsn_bounce_points_at_the_mail_that_bounced() -> None:
    mail = read("dsn_bounce.eml")
    assert mail.bounce is not None
    assert mail.bounce.original_message_id == "ct-4kq9.5a6b7c8d9e0f1a2b@shop.example"
    assert mail.bounce.recipients == ("henk.vos@example.net",)
    assert (mail.bounce.status, mail.bounce.permanent) == ("5.1.1", True)
    assert "User unknown in virtual mailbox table" in mail.bounce.diagnostic
    assert mail.automatic == "bounce"
    assert "could not\nbe delivered" in mail.text  # the report's own words stay readable


def test_a_bounce_without_a_dsn_is_read_from_its_text() -> None:
    mail = read("text_bounce.eml")
    assert mail.bounce is not None
    assert mail.bounce.original_message_id == "ct-7m3p.0b1c2d3e4f5a6b7c@shop.example"
    assert mail.bounce.recipients == ("ria.mulder@example.com",)
    assert (mail.bounce.status, mail.bounce.permanent) == ("5.1.1", True)
    assert mail.bounce.diagnostic == "Sorry, no mailbox here by that name. (#5.1.1)"
    assert mail.automatic == "bounce"


def test_a_dutch_exchange_bounce_in_plain_text() -> None:
    raw = (b"Return-Path: <>\nFrom: Microsoft Outlook <MicrosoftExchange329e71ec@example.nl>\n"
           b"To: support@shop.example\nSubject: Onbestelbaar: Uw bestelling 10560\nMessage-ID: <ndr-1@example.nl>\n\n"
           b"Uw bericht kan niet worden bezorgd bij <gerrit@example.nl>: het adres bestaat niet.\n"
           b"Diagnostische gegevens: 550 5.1.10 RESOLVER.ADR.RecipientNotFound\n")
    mail = parse(raw)
    assert mail.automatic == "bounce"
    assert mail.bounce is not None
    assert (mail.bounce.status, mail.bounce.permanent) == ("5.1.10", True)
    assert mail.bounce.recipients == ("gerrit@example.nl",)
    assert mail.bounce.original_message_id is None


def test_an_exchange_out_of_office_is_automatic() -> None:
    mail = read("out_of_office.eml")
    assert mail.automatic == "out of office"
    assert mail.bounce is None
    assert mail.headers == {"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}
    assert mail.text.startswith("Ik ben tot en met 14 december afwezig")


def test_a_newsletter_is_bulk_and_its_tracking_pixel_is_not_loaded() -> None:
    mail = read("newsletter.eml")
    assert mail.automatic in ("bulk", "list")
    assert mail.subject == "De nieuwste tegels van december ✨"
    assert mail.text == "Nieuw in december\n\nOntdek onze nieuwe collectie terrazzo tegels.\n\nBekijk de collectie"
    assert mail.html is not None and mail.remote_html is not None
    assert "news.example.com/img" not in mail.html and "news.example.com/o/" not in mail.html
    assert '<img alt="Terrazzo" width="600">' in mail.html
    assert '<img width="1" height="1" alt="[image]">' in mail.html
    assert '<img src="https://news.example.com/o/8347.gif"' in mail.remote_html
    assert 'href="https://news.example.com/c/8347" rel="noopener noreferrer nofollow"' in mail.html
    assert "Nieuwsbrief" not in mail.html + mail.text  # the <title>
    assert "padding" not in mail.html  # the <style>


def test_broken_mime_is_read_as_far_as_it_goes_and_the_problems_are_named() -> None:
    mail = read("broken.eml")
    assert mail.text == "Goedendag, ik wil graag een cafétafel van 80 € bestellen.\n\nDit deel is afgebroken..."
    assert mail.subject == "=?utf-8?B?abcde?= Vraag over café tafel"
    assert mail.sender is not None and mail.sender.name == "Kees Kok"  # the NUL is gone
    problems = " ".join(mail.problems)
    assert "'x-foo'" in problems and "'x-unknown'" in problems
    assert "end boundary is missing" in problems
    assert "damaged encoded word" in problems
    assert "base64" in problems


def test_a_mail_without_message_id_or_sender_gets_a_stable_id() -> None:
    mail = read("no_id_no_from.eml")
    assert mail.message_id.startswith("missing-") and mail.message_id.endswith("@console.invalid")
    assert read("no_id_no_from.eml").message_id == mail.message_id  # read again: the same mail
    assert parse((CORPUS / "no_id_no_from.eml").read_bytes() + b"\n").message_id != mail.message_id
    assert mail.sender is None
    assert any("Message-ID" in problem for problem in mail.problems)
    assert any("sender" in problem for problem in mail.problems)
    assert mail.text.startswith("Naam: Fatima el Idrissi")


def test_script_never_runs_and_remote_images_wait_for_the_agent() -> None:
    mail = read("xss.eml")
    assert mail.html is not None and mail.remote_html is not None
    for html in (mail.html, mail.remote_html):
        lowered = html.lower()
        for danger in ("<script", "onerror", "onload", "onclick", "javascript", "expression(", "style=",
                       "<svg", "<iframe", "<form", "<input", "/steal", "/frame", "/phish", "/relative/path", "alert"):
            assert danger not in lowered, danger
        assert 'href="https://shop.example/orders/10552" rel="noopener noreferrer nofollow"' in html
    assert "tracker" not in mail.html
    assert '<img alt="[image]">' in mail.html
    assert '<img src="http://tracker.evil.example/open.gif?u=42">' in mail.remote_html
    assert mail.text.startswith("Beste klantenservice,\n\nMijn bestelling is kapot aangekomen.")
    assert "alert" not in mail.text and "document.cookie" not in mail.text
    # Names and subjects are text: kept as written, escaped where they are shown.
    assert mail.sender is not None and mail.sender.name == "<img src=x onerror=alert(1)>"
    assert mail.sender.email == "attacker@evil.example"
    assert mail.reply_to[0].name == "<script>alert(2)</script>"
    assert mail.subject == "<script>alert('subject')</script> Klacht"


def test_an_inline_image_and_a_pdf_are_files() -> None:
    mail = read("inline_image_pdf.eml")
    image, pdf = mail.files
    assert (image.name, image.content_type, image.inline) == ("tegel.png", "image/png", True)
    assert image.content_id == "A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D@example.nl"
    assert image.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert (pdf.name, pdf.content_type, pdf.inline, pdf.content_id) == (
        "kassabon € 42,50.pdf", "application/pdf", False, None)
    assert pdf.data.startswith(b"%PDF-1.4")
    assert mail.html is not None
    assert 'src="cid:A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D@example.nl"' in mail.html
    assert mail.remote_html is None
    assert mail.text.startswith("Hallo,\n\nEr zit een scheur in een van de tegels")


@pytest.mark.parametrize("name", NAMES)
def test_every_corpus_mail_is_read_into_storable_values(name: str) -> None:
    mail = read(name)
    for value in (mail.message_id, mail.subject, mail.text, mail.quoted, mail.html or "", *mail.problems,
                  *(f"{a.name}{a.email}" for a in (*mail.to, *mail.cc, *mail.reply_to)),
                  *(file.name for file in mail.files)):
        assert printable(value)
    assert mail.text.strip() or mail.files  # every mail of the corpus says something


# Files ------------------------------------------------------------------------------------------

def test_a_25_mb_attachment_is_left_out_and_named_and_the_rest_is_kept() -> None:
    big = base64.encodebytes(bytes(25 * 1024 * 1024))
    raw = (b"From: Anna <anna@example.nl>\nTo: support@shop.example\nSubject: Scan\nMessage-ID: <big@example.nl>\n"
           b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n"
           b"--B\nContent-Type: text/plain; charset=utf-8\n\nZie de scan en de bon.\n"
           b"--B\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=scan.pdf\n"
           b"Content-Transfer-Encoding: base64\n\n" + big +
           b"--B\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=bon.pdf\n"
           b"Content-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n--B--\n")
    mail = parse(raw)
    assert mail.text == "Zie de scan en de bon."
    assert [file.name for file in mail.files] == ["bon.pdf"]
    assert mail.problems == ("The file 'scan.pdf' (25.0 MB) is larger than the 10.0 MB a file may be; "
                             "it was left out.",)


def test_file_names_lose_their_folders_and_control_characters() -> None:
    raw = (b"From: a@example.nl\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=B\n\n"
           b"--B\nContent-Type: text/plain\n\nzie bijlagen\n"
           b"--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
           b"filename=\"..\\\\..\\\\windows\\\\evil\xe2\x80\xaegpj.exe\"\n\nMZ\n"
           b"--B\nContent-Type: application/octet-stream\nContent-Disposition: attachment\n\nzonder naam\n"
           b"--B\nContent-Type: image/png\nContent-Disposition: attachment; filename=\"" + b"a" * 300 + b".png\"\n\n"
           b"png\n--B--\n")
    names = [file.name for file in parse(raw).files]
    assert names[0] == "evilgpj.exe"
    assert names[1] == "attachment-2.bin"
    assert len(names[2]) == 255 and names[2].endswith(".png")


def test_a_multipart_without_boundary_is_read_as_text() -> None:
    mail = parse(simple("Hier is de tekst toch.\n", content_type="multipart/mixed"))
    assert "Hier is de tekst toch." in mail.text
    assert any("boundary" in problem for problem in mail.problems)


# Headers and charsets ----------------------------------------------------------------------------------------

def test_thread_ids_are_bounded_deduplicated_and_without_brackets() -> None:
    references = " ".join(f"<r{n}@example.nl>" for n in range(80))
    headers = (f"In-Reply-To: <a@example.nl> <b@example.nl> <a@example.nl> (Anna's mail)\n"
               f"References: {references} <{'x' * 300}@example.nl> <r79@example.nl>\n")
    mail = parse(simple("tekst", headers=headers))
    assert mail.in_reply_to == ("a@example.nl", "b@example.nl")
    assert len(mail.references) == 50
    assert mail.references[0] == "r30@example.nl" and mail.references[-1] == "r79@example.nl"


def test_a_message_id_without_brackets_is_still_read() -> None:
    raw = b"Message-ID: abc.123@example.nl\nFrom: a@example.nl\n\nhoi\n"
    assert parse(raw).message_id == "abc.123@example.nl"


def test_raw_utf8_headers_and_an_unreadable_date() -> None:
    raw = ("From: Zoë Ünal <zoe@EXAMPLE.NL>\nSubject: Vraag over één tegel\nDate: gisteren\n"
           "Message-ID: <u@example.nl>\n\nhoi\n").encode()
    mail = parse(raw)
    assert mail.subject == "Vraag over één tegel"
    assert mail.sender is not None and (mail.sender.name, mail.sender.email) == ("Zoë Ünal", "zoe@example.nl")
    assert mail.date is None
    assert any("date" in problem for problem in mail.problems)


def test_a_date_without_zone_is_utc() -> None:
    mail = parse(simple("tekst", headers="Date: Thu, 10 Dec 2026 10:00:00 -0000\n"))
    assert mail.date == datetime(2026, 12, 10, 10, 0, tzinfo=UTC)


def test_a_subject_is_one_line_of_at_most_500_characters() -> None:
    long = "=?utf-8?Q?" + "=C3=A9" * 20 + "?=\n " + "x" * 600
    mail = parse(simple("tekst").replace(b"Subject: Vraag", f"Subject: {long}".encode()))
    assert mail.subject.startswith("é" * 20 + " xxx")
    assert len(mail.subject) == 500 and "\n" not in mail.subject


def test_html_only_mail_with_a_meta_charset() -> None:
    body = ('<html><head><meta charset="windows-1252"><title>t</title></head><body><p>Prijs: \x80 10</p>'
            "<ul><li>een</li><li>twee</li></ul><p>Groet<br>Anna</p></body></html>")
    raw = simple("", content_type="text/html").replace(b"\n\n", b"\n\n" + body.encode("latin-1"), 1)
    mail = parse(raw)
    assert mail.text == "Prijs: € 10\n\n- een\n- twee\n\nGroet\nAnna"
    assert mail.html == "<p>Prijs: € 10</p><ul><li>een</li><li>twee</li></ul><p>Groet<br>Anna</p>"


def test_a_wrong_declared_charset_falls_back_and_says_so() -> None:
    raw = simple("", content_type="text/plain; charset=us-ascii").replace(b"\n\n", "\n\nCafé ☕".encode(), 1)
    mail = parse(raw)
    assert mail.text == "Café ☕"  # 8-bit text labelled US-ASCII is UTF-8 from a client that did not say so
    raw = simple("", content_type="text/plain; charset=utf-8").replace(b"\n\n", b"\n\nCaf\xe9", 1)
    mail = parse(raw)
    assert mail.text == "Café"
    assert any("was not in the charset it declared ('utf-8')" in problem for problem in mail.problems)


def test_format_flowed_is_joined_back_into_paragraphs() -> None:
    body = "Dit is een lange zin die de client \nover twee regels schreef.\n\n> een \n> citaat\n-- \nAnna\n"
    mail = parse(simple(body, content_type="text/plain; charset=utf-8; format=flowed"))
    assert mail.text == "Dit is een lange zin die de client over twee regels schreef.\n\n> een citaat"
    assert mail.quoted == "-- \nAnna"


def test_deep_nesting_is_cut_off_not_crashed_on() -> None:
    head = b"From: a@example.nl\nMIME-Version: 1.0\n"
    body = b"Content-Type: text/plain\n\ndiep\n"
    for depth in range(60):
        body = (f"Content-Type: multipart/mixed; boundary=b{depth}\n\n--b{depth}\n".encode() + body
                + f"\n--b{depth}--\n".encode())
    mail = parse(head + body)
    assert any("levels" in problem for problem in mail.problems)


# Folding quoted history ------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "text", "quoted_start"), [
    ("Bel me even.\n\n-----Original Message-----\nFrom: Anna\nSent: Monday\n\nOud", "Bel me even.",
     "-----Original Message-----"),
    ("Graag terugbellen.\n\n-----Oorspronkelijk bericht-----\nVan: Anna\n\nOud", "Graag terugbellen.",
     "-----Oorspronkelijk bericht-----"),
    ("Akkoord.\n\nVan: Klantenservice <s@shop.example>\nVerzonden: maandag 7 december 2026 10:00\nAan: Piet\n"
     "Onderwerp: Order\n\nOud", "Akkoord.", "Van: Klantenservice"),
    ("Akkoord.\n\n*From:* Shop <s@shop.example>\n*Sent:* Monday\n*To:* Piet\n\nOud", "Akkoord.", "*From:*"),
    ("Prima!\n\nOp 7 dec. 2026 om 10:00 heeft Anna <a@x.nl> het volgende geschreven:\n\n> Oud", "Prima!",
     "Op 7 dec. 2026"),
    ("Danke.\n\nAm Mo., 7. Dez. 2026 um 10:00 Uhr schrieb Anna <a@x.nl>:\n> Alt", "Danke.", "Am Mo."),
    ("Bel me.\n-- \nPiet\n06 1234", "Bel me.", "-- \nPiet"),
    ("Ja.\n\n> vraag 1\n> vraag 2\n", "Ja.", "> vraag 1"),
])
def test_history_and_signatures_are_folded_away(body: str, text: str, quoted_start: str) -> None:
    new, quoted = fold(body)
    assert new == text
    assert quoted.startswith(quoted_start)


@pytest.mark.parametrize("body", [
    "> vraag 1\nantwoord 1\n> vraag 2\nantwoord 2",  # answered between the quoted lines
    "On Mon, 7 Dec 2026 at 10:00, Anna <a@x.nl> wrote:\n> alleen een citaat",  # folding would leave nothing
    "Zie hieronder.\n\n---------- Forwarded message ---------\nFrom: Anna\nDate: Mon\n\nDe vraag",  # a forward
    "Hoi,\n\nThanks, that fixed the login. But the invoice is still wrong:\n- 40 euro, not 400\n- twice charged",
    "Van: Amsterdam\nnaar: Utrecht, graag een offerte.",
])
def test_nothing_the_sender_wrote_is_folded_away(body: str) -> None:
    new, quoted = fold(body)
    if body.startswith("Zie hieronder"):
        assert new == body and quoted == ""
    else:
        assert new == body.rstrip() and quoted == ""


# Machines' mail ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("headers", "subject", "sender", "reason"), [
    ({"Auto-Submitted": "auto-replied"}, "Re: vraag", "anna@example.nl", "auto-replied"),
    ({"auto-submitted": "auto-generated; owner-email=x@y"}, "Melding", "anna@example.nl", "auto-generated"),
    ({"Auto-Submitted": "no"}, "Re: vraag", "anna@example.nl", None),
    ({"Precedence": "bulk"}, "Aanbieding", "shop@example.nl", "bulk"),
    ({"Precedence": "junk"}, "Aanbieding", "shop@example.nl", "junk"),
    ({"Precedence": "list"}, "Aanbieding", "shop@example.nl", "list"),
    ({"Precedence": "auto_reply"}, "Re: vraag", "anna@example.nl", "auto-replied"),
    ({"X-Autoreply": "yes"}, "Re: vraag", "anna@example.nl", "auto-replied"),
    ({"X-Autorespond": "Vacation"}, "Re: vraag", "anna@example.nl", "auto-replied"),
    ({"X-Auto-Response-Suppress": "DR, OOF, AutoReply"}, "Ticket 4", "desk@example.nl", "auto-generated"),
    ({"X-Loop": "helpdesk@example.nl"}, "Re: vraag", "anna@example.nl", "loop"),
    ({"List-Id": "<tegels.lists.example.nl>"}, "Re: [tegels] vraag", "anna@example.nl", "list"),
    ({"List-Unsubscribe": "<mailto:u@example.nl>"}, "Nieuws", "news@example.nl", "list"),
    ({"Return-Path": "< >"}, "Undeliverable: Re: vraag", "postmaster@example.nl", "bounce"),
    ({"Return-Path": "<>"}, "Bevestiging", "robot@example.nl", "auto-generated"),
    ({}, "Automatic reply: Re: vraag", "anna@example.nl", "out of office"),
    ({}, "Automatisch antwoord: Uw bestelling", "anna@example.nl", "out of office"),
    ({}, "Out of Office", "anna@example.nl", "out of office"),
    ({}, "Afwezig: Re: vraag", "anna@example.nl", "out of office"),
    ({}, "Auto: Re: vraag", "anna@example.nl", "out of office"),
    ({}, "Auto: schade aan de deur", "anna@example.nl", None),  # a car, in Dutch
    ({}, "Afwezig", "anna@example.nl", None),  # a parent reporting a sick child
    ({}, "Uw bestelling", "no-reply@shop.example", "auto-generated"),
    ({}, "Uw bestelling", "MAILER-DAEMON@mx.example.nl", "auto-generated"),
    ({"Return-Path": "<anna@example.nl>"}, "Re: vraag", "anna@example.nl", None),
])
def test_automatic_names_why_a_machine_sent_it(headers: dict[str, str], subject: str, sender: str,
                                               reason: str | None) -> None:
    assert automatic(headers, subject, sender) == reason


def test_a_persons_mail_is_not_automatic() -> None:
    for name in ("alternative.eml", "gmail_reply_en.eml", "outlook_reply_nl.eml", "windows1252.eml", "xss.eml"):
        assert read(name).automatic is None, name


def test_a_read_receipt_is_automatic() -> None:
    raw = (b"From: anna@example.nl\nSubject: Gelezen: vraag\nMIME-Version: 1.0\n"
           b"Content-Type: multipart/report; report-type=disposition-notification; boundary=R\n\n"
           b"--R\nContent-Type: text/plain\n\nUw bericht is gelezen.\n"
           b"--R\nContent-Type: message/disposition-notification\n\nFinal-Recipient: rfc822; anna@example.nl\n"
           b"Disposition: manual-action/MDN-sent-manually; displayed\n--R--\n")
    mail = parse(raw)
    assert mail.automatic == "auto-generated" and mail.bounce is None


def test_a_delayed_delivery_is_no_permanent_bounce() -> None:
    raw = (CORPUS / "dsn_bounce.eml").read_bytes().replace(b"Action: failed\nStatus: 5.1.1",
                                                           b"Action: delayed\nStatus: 4.4.1")
    mail = parse(raw)
    assert mail.bounce is not None
    assert (mail.bounce.status, mail.bounce.permanent) == ("4.4.1", False)


def test_a_success_notice_is_no_bounce() -> None:
    raw = (CORPUS / "dsn_bounce.eml").read_bytes().replace(b"Action: failed\nStatus: 5.1.1",
                                                           b"Action: delivered\nStatus: 2.0.0")
    raw = raw.replace(b"Subject: Undelivered Mail Returned to Sender", b"Subject: Successful Mail Delivery Report")
    mail = parse(raw)
    assert mail.bounce is None
    assert mail.automatic is not None


# Never raising ------------------------------------------------------------------------------------------

CORPUS_BYTES = [(CORPUS / name).read_bytes() for name in NAMES]


@st.composite
def mutated_mails(draw: st.DrawFn) -> bytes:
    """A corpus mail with a few bytes cut, added, repeated or changed: the shapes a broken client,
    a truncated transfer or a hostile sender make of a real mail."""
    data = bytearray(draw(st.sampled_from(CORPUS_BYTES)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        kind = draw(st.sampled_from(("cut", "insert", "repeat", "change", "truncate")))
        start = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        end = draw(st.integers(min_value=start, max_value=min(len(data), start + 200)))
        if kind == "cut":
            del data[start:end]
        elif kind == "insert":
            data[start:start] = draw(st.sampled_from((
                b"\x00", b"\r", b"\n\n", b"--", b"=?", b"?=", b"=?utf-8?B?", b"=?x-foo?Q?=E9?=", b"<", b">",
                b"\xff\xfe", b"\xe2\x82", b"Content-Type: multipart/mixed; boundary=\"\"\n",
                b"Content-Transfer-Encoding: base64\n", b"charset=\"utf-7\"", b"<script>", b"<![CDATA[x",
                b"=\n", b"\n--_000_", b"Message-ID: <\n", b"From: \"\\\n",
            ))) + draw(st.binary(max_size=20))
        elif kind == "repeat":
            data[start:start] = data[start:end] * draw(st.integers(min_value=1, max_value=5))
        elif kind == "change" and data:
            data[start] = draw(st.integers(min_value=0, max_value=255))
        else:
            del data[start:]
    return bytes(data)


def header_values() -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), max_size=120)


@st.composite
def generated_mails(draw: st.DrawFn) -> bytes:
    """A mail of random header values and body in a plausible frame."""
    names = ("From", "To", "Cc", "Reply-To", "Subject", "Message-ID", "In-Reply-To", "References", "Date",
             "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Return-Path", "Auto-Submitted")
    lines = [f"{name}: {draw(header_values())}" for name in draw(st.lists(st.sampled_from(names), max_size=10))]
    body = draw(st.binary(max_size=300)) if draw(st.booleans()) else draw(header_values()).encode()
    return "\n".join(lines).encode("utf-8", "surrogateescape") + b"\n\n" + body


def assert_read(mail: IncomingMail, raw: bytes) -> None:
    assert mail.size == len(raw)
    assert 0 < len(mail.message_id) <= 250
    for value in (mail.message_id, mail.subject, mail.text, mail.quoted, mail.html or "", mail.remote_html or "",
                  *mail.problems):
        assert printable(value)
    assert len(mail.subject) <= 500


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_parse_never_raises_on_any_bytes(raw: bytes) -> None:
    assert_read(parse(raw), raw)


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_mails())
def test_parse_never_raises_on_mutated_corpus_mails(raw: bytes) -> None:
    assert_read(parse(raw), raw)


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(generated_mails())
def test_parse_never_raises_on_random_headers(raw: bytes) -> None:
    assert_read(parse(raw), raw)


@settings(deadline=None, max_examples=200)
@given(st.dictionaries(header_values(), header_values(), max_size=5), header_values(), header_values())
def test_automatic_never_raises(headers: dict[str, str], subject: str, sender: str) -> None:
    assert automatic(headers, subject, sender) in (None, "auto-replied", "auto-generated", "bulk", "list", "junk",
                                                   "out of office", "bounce", "loop")
