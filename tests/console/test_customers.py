from hypothesis import given
from hypothesis import strategies as st

from console import customers
from console.models import ContactKind
from console.ports import Context
from tests.helpers import add_customer

SAME_MOBILE = ["06-12345678", "+31 6 1234 5678", "0031612345678", "+31612345678", "06 1234 5678", "(06) 12345678"]


def test_dutch_mobile_in_every_common_spelling_is_one_e164_number() -> None:
    assert {customers.normalize_phone(raw, "NL") for raw in SAME_MOBILE} == {"+31612345678"}


def test_region_decides_how_national_numbers_are_read() -> None:
    assert customers.normalize_phone("020 123 4567", "NL") == "+31201234567"
    assert customers.normalize_phone("020 7946 0958", "GB") == "+442079460958"
    assert customers.normalize_phone("+31 20 123 4567", "GB") == "+31201234567"


def test_numbers_without_plus_from_phone_systems_are_read_as_international() -> None:
    assert customers.normalize_phone("493055571600", "NL") == "+493055571600"


def test_anonymous_and_garbage_numbers_have_no_normal_form() -> None:
    for raw in ["anonymous", "", "  ", "12", "not a number", "+999 1"]:
        assert customers.normalize_phone(raw, "NL") is None


def test_email_addresses_are_compared_case_insensitively() -> None:
    assert customers.normalize_email("  Jan.Jansen@Example.NL ") == "jan.jansen@example.nl"
    assert customers.normalize_email("no-at-sign.example.nl") is None


@given(st.text(max_size=40))
def test_normalising_any_text_never_raises(raw: str) -> None:
    result = customers.normalize_phone(raw, "NL")
    assert result is None or result.startswith("+")
    customers.normalize_email(raw)


async def test_each_spelling_of_the_number_finds_the_customer(ctx: Context) -> None:
    jan = await add_customer(ctx.db, "Jan Jansen", phones=("06-12345678",))
    await add_customer(ctx.db, "Someone Else", phones=("06-87654321",))
    async with ctx.db.transaction() as session:
        for raw in SAME_MOBILE:
            assert await customers.match(session, ContactKind.PHONE, raw, "NL") == [jan]


async def test_a_shared_switchboard_number_matches_several_customers(ctx: Context) -> None:
    a = await add_customer(ctx.db, "Ada", phones=("020-1234567",), company="Acme")
    b = await add_customer(ctx.db, "Bob", phones=("+31201234567",), company="Acme")
    async with ctx.db.transaction() as session:
        assert sorted(await customers.match(session, ContactKind.PHONE, "0201234567", "NL")) == sorted([a, b])
        assert await customers.match(session, ContactKind.PHONE, "0209999999", "NL") == []
        assert await customers.match(session, ContactKind.PHONE, "anonymous", "NL") == []


async def test_email_match_ignores_case(ctx: Context) -> None:
    a = await add_customer(ctx.db, "Ada", emails=("ada@example.nl",))
    async with ctx.db.transaction() as session:
        assert await customers.match(session, ContactKind.EMAIL, "ADA@Example.nl", "NL") == [a]


async def test_picture_has_history_tickets_and_notes(ctx: Context) -> None:
    from sqlalchemy import select

    from console.models import Channel, Conversation, Note, State, Ticket, utcnow

    jan = await add_customer(ctx.db, "Jan", phones=("0612345678",))
    async with ctx.db.transaction() as session:
        for i in range(12):
            session.add(Conversation(channel=Channel.CALL, external_id=f"h{i}", state=State.CLOSED,
                                     customer_id=jan, created_at=utcnow(), disposition="resolved"))
        session.add(Ticket(subject="Broken router", customer_id=jan))
        session.add(Note(customer_id=jan, body="Prefers mornings"))
    async with ctx.db.transaction() as session:
        picture = await customers.picture(session, jan)
    assert picture is not None
    assert len(picture.history) == 10 and picture.conversation_count == 12
    async with ctx.db.transaction() as session:
        current = await session.scalar(select(Conversation.id).where(Conversation.external_id == "h11"))
        without = await customers.picture(session, jan, exclude=[current])
    assert without is not None and without.conversation_count == 11
    assert current not in [h.id for h in without.history]
    assert [t.subject for t in picture.open_tickets] == ["Broken router"]
    assert [n.body for n in picture.notes] == ["Prefers mornings"]


async def test_the_picture_shows_the_current_agreements_first(ctx: Context) -> None:
    from datetime import date

    from console.models import Contract, ContractStatus

    jan = await add_customer(ctx.db, "Jan Jansen")
    async with ctx.db.transaction() as session:
        session.add_all([
            Contract(customer_id=jan, title="Old service", status=ContractStatus.ENDED, starts_on=date(2020, 1, 1)),
            Contract(customer_id=jan, title="Service 2026", status=ContractStatus.ACTIVE, starts_on=date(2026, 1, 1),
                     terms="Payment within 30 days"),
            Contract(customer_id=jan, title="Quote 2027", status=ContractStatus.QUOTE, starts_on=date(2027, 1, 1)),
        ])
    async with ctx.db.transaction() as session:
        found = await customers.picture(session, jan)
    assert found is not None and [c.title for c in found.contracts] == ["Service 2026", "Quote 2027"]
