"""Search from one box: name, company, phone or email; and on PostgreSQL it stays an index scan."""

from typing import Any

from sqlalchemy import insert, text

from console import search
from console.db import Database
from console.models import Customer, SearchTerm
from console.ports import Context
from console.search import customer_terms, query_terms
from tests.helpers import add_customer


async def names(ctx: Context, query: str) -> list[str]:
    async with ctx.db.transaction() as session:
        return [c.name for c in (await search.search(session, query)).customers]


async def test_one_box_finds_by_name_company_phone_and_email(ctx: Context) -> None:
    await add_customer(ctx.db, "Piet Jansen", phones=("06 1234 5678",), emails=("piet@bakkerij.nl",),
                       company="Bakkerij Jansen")
    await add_customer(ctx.db, "Marieke van Dijk", phones=("+31 20 555 0101",), company="Café Zoë")
    await add_customer(ctx.db, "Jan Smit")
    assert await names(ctx, "jansen") == ["Piet Jansen"]
    assert await names(ctx, "JAN") == ["Jan Smit", "Piet Jansen"], "closest term first"
    assert await names(ctx, "piet jan") == ["Piet Jansen"], "every word must match"
    assert await names(ctx, "bakkerij") == ["Piet Jansen"]
    assert await names(ctx, "cafe zoe") == ["Marieke van Dijk"], "accents do not matter"
    assert await names(ctx, "0612 34") == ["Piet Jansen"], "national number as typed"
    assert await names(ctx, "+31 6 1234") == ["Piet Jansen"], "international"
    assert await names(ctx, "0031 20 555") == ["Marieke van Dijk"]
    assert await names(ctx, "piet@bak") == ["Piet Jansen"]
    assert await names(ctx, "bakkerij.nl") == ["Piet Jansen"], "the mail domain"
    assert await names(ctx, "x") == [], "one letter is too short to search"
    assert await names(ctx, "nobody") == []
    assert await names(ctx, "'; drop table customers; --") == []


def test_terms_of_a_customer() -> None:
    terms = customer_terms("Ölçer Çelik", "ACME B.V.", [("phone", "+31612345678"), ("email", "o@acme.nl")])
    assert {"olcer", "celik", "acme", "b", "v", "31612345678", "0612345678", "o@acme.nl", "acme.nl"} == terms
    assert query_terms("  06-12 34 ") == ["061234"]
    assert query_terms("de Vries") == ["vries", "de"]


async def test_search_is_an_index_range_scan_on_postgresql(pg_url: str) -> None:
    db = Database(pg_url)
    try:
        rows: list[dict[str, Any]] = [{"id": i, "name": f"Customer {i}", "lifetime_value": 0} for i in range(1, 20001)]
        async with db.transaction() as session:
            await session.execute(insert(Customer), rows)
            await session.execute(insert(SearchTerm), [
                {"customer_id": r["id"], "term": term} for r in rows for term in customer_terms(r["name"], None, [])])
            await session.execute(text("ANALYZE search_terms"))
        for query in ("customer 123", "12345", "cust"):
            statement = search.matching_ids(query_terms(query), 61)
            compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
            async with db.transaction() as session:
                plan = "\n".join((await session.execute(text(f"EXPLAIN {compiled}"))).scalars())
            assert "ix_search_terms_term" in plan or "pk_search_terms" in plan, plan
            assert "Seq Scan on search_terms" not in plan, plan
    finally:
        await db.close()
