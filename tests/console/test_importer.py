from pathlib import Path

from sqlalchemy import func, select

from console.importer import import_file, import_text
from console.models import ContactPoint, Customer, Tier
from console.ports import Context
from tests.helpers import add_agent

CSV = """name,company,phones,emails,tier,lifetime_value,owner,language
Jan Jansen,Jansen BV,06-12345678;020-1234567,jan@jansen.nl,A,"12.500,00",owner@console.test,nl
Mary Smith,,+44 20 7946 0958,mary@example.co.uk,C,250,,en
,No Name BV,0611111111,,B,,,nl
Piet Bad Phone,,12,,B,,,nl
Kees Bad Tier,,0622222222,,D,,,nl
Bad Owner,,0633333333,,B,,nobody@console.test,nl
"""


async def test_valid_rows_are_imported_and_bad_rows_reported_by_line(ctx: Context) -> None:
    await add_agent(ctx.db, "owner@console.test", "Olga Owner")
    report = await import_text(ctx.db, CSV, region="NL")
    assert (report.created, report.updated) == (2, 0)
    lines = dict(report.errors)
    assert sorted(lines) == [4, 5, 6, 7]
    assert "name" in lines[4]
    assert "'12'" in lines[5] and "phone" in lines[5]
    assert "Tier" in lines[6]
    assert "nobody@console.test" in lines[7]
    async with ctx.db.transaction() as session:
        jan = await session.scalar(select(Customer).where(Customer.name == "Jan Jansen"))
        assert jan is not None and jan.tier is Tier.A and str(jan.lifetime_value) == "12500.00"
        assert jan.owner_id is not None and jan.language == "nl"
        numbers = set(await session.scalars(select(ContactPoint.normalized).where(ContactPoint.customer_id == jan.id)))
        assert numbers == {"+31612345678", "+31201234567", "jan@jansen.nl"}


async def test_importing_the_same_file_twice_updates_instead_of_duplicating(ctx: Context, tmp_path: Path) -> None:
    await add_agent(ctx.db, "owner@console.test", "Olga Owner")
    path = tmp_path / "customers.csv"
    path.write_text(CSV, encoding="utf-8")
    await import_file(ctx.db, path, region="NL")
    path.write_text(CSV.replace("Jansen BV", "Jansen Holding").replace("06-12345678", "+31 6 1234 5678"),
                    encoding="utf-8")
    second = await import_file(ctx.db, path, region="NL")
    assert (second.created, second.updated) == (0, 2)
    async with ctx.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 2
        assert await session.scalar(select(Customer.company).where(Customer.name == "Jan Jansen")) == "Jansen Holding"
        assert await session.scalar(select(func.count()).select_from(ContactPoint)) == 5


async def test_semicolon_files_from_dutch_excel_with_bom_are_read(ctx: Context, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffname;phones;emails\nAnnie;\"06-12345678;06-87654321\";annie@example.nl\n".encode())
    report = await import_file(ctx.db, path, region="NL")
    assert (report.created, report.errors) == (1, [])


async def test_a_header_without_name_is_refused_with_the_columns_it_has(sqlite_url: str, tmp_path: Path) -> None:
    import pytest

    from console.db import Database
    from console.errors import InvalidInput

    db = Database(sqlite_url)
    try:
        with pytest.raises(InvalidInput, match="needs a 'name' column; it has: naam, telefoon"):
            await import_text(db, "naam,telefoon\nJan,0612345678\n", region="NL")
    finally:
        await db.close()
