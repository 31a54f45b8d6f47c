"""A deactivated agent: no login, no session, no work, unknown to the phone system and the pickers;
reactivated, all of it comes back (with the password they had)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console import admin, auth, conversations, handoffs, readiness, routing, tickets
from console.errors import InvalidInput
from console.models import Agent, Channel, LoginAttempt, Offer
from console.ports import Context
from tests.helpers import PASSWORD, add_agent


async def arrive(ctx: Context, external_id: str, channel: Channel = Channel.CHAT,
                 ringing: list[str] | None = None) -> conversations.Arrival:
    return await conversations.arrive(ctx, channel=channel, external_id=external_id, from_address=external_id,
                                      to_address="", ringing=ringing)


async def test_a_deactivated_agent_is_nobody_until_reactivated(ctx: Context) -> None:
    alex = await add_agent(ctx.db, "alex@x.nl", "Alex", role="admin")
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna", extension="201")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram", extension="202")
    await routing.set_status(ctx, anna, "available")
    async with ctx.db.reading() as session:
        version = await session.scalar(select(Agent.session_version).where(Agent.id == anna))
        assert await auth.session_role(session, anna, version) is not None

    await admin.deactivate(ctx, alex, anna)
    await admin.deactivate(ctx, alex, anna)  # twice is once
    # A supervisor setting her available (or a race with her last page) still routes nothing to her.
    await routing.set_status(ctx, anna, "available")
    await routing.set_status(ctx, bram, "available")
    assert (await arrive(ctx, "chat-1")).agent_id == bram
    ringing = await arrive(ctx, "call-1", Channel.CALL, ringing=["201"])
    async with ctx.db.transaction() as session:
        assert await session.scalar(select(Offer.id).where(Offer.conversation_id == ringing.conversation_id)) is None
        for reference in ("201", "anna@x.nl", "Anna", " ANNA "):
            assert await auth.find_agent(session, reference) is None, reference
            assert await auth.find_agent_id(session, reference) is None, reference
        assert await auth.session_role(session, anna, version) is None, "her open sessions stop"
        assert await auth.session_role(session, anna, version + 1) is None, "even at the new version"
        assert anna not in await auth.session_versions(session, [anna, bram])
        assert anna not in [a.id for a in await handoffs.takers(session, bram, None)]
        assert await readiness.mismatches(session) == []
        agent = await session.get(Agent, anna)
        assert agent is not None and agent.deactivated_at is not None and not agent.ready_chat
        with pytest.raises(auth.AccountDeactivated) as refused:
            await auth.authenticate(session, "anna@x.nl", PASSWORD, "10.0.0.1")
        assert str(refused.value) == "This account is deactivated. Ask an administrator."
    async with ctx.db.transaction() as session:
        assert await auth.authenticate(session, "anna@x.nl", "wrong password", "10.0.0.1") is None
    async with ctx.db.reading() as session:
        tries = list(await session.execute(select(LoginAttempt.succeeded).where(LoginAttempt.account == "anna@x.nl")))
        assert tries == [(False,)], "a wrong password counts as ever; the right one is no attempt"
    with pytest.raises(InvalidInput, match="deactivated"):
        await tickets.open_ticket(ctx, bram, tickets.Draft(subject="Call back", assignee_id=anna))

    async with ctx.db.transaction() as session:
        await admin.reactivate(session, alex, anna)
    async with ctx.db.transaction() as session:
        assert await auth.authenticate(session, "anna@x.nl", PASSWORD, "10.0.0.2") is not None, "same password"
        assert (await auth.find_agent(session, "201")) is not None
    await routing.set_status(ctx, bram, "offline")
    await routing.set_status(ctx, anna, "available")
    assert (await arrive(ctx, "chat-2")).agent_id == anna


async def test_an_agent_with_chats_open_is_deactivated_only_after_handing_them_off(ctx: Context) -> None:
    from console import offers
    from console.errors import Conflict

    alex = await add_agent(ctx.db, "alex@x.nl", "Alex", role="admin")
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    await routing.set_status(ctx, anna, "available")
    chat = await arrive(ctx, "chat-9")
    await offers.accept(ctx, anna, chat.conversation_id)
    with pytest.raises(Conflict, match="still handles 1 chats, texts or mails"):
        await admin.deactivate(ctx, alex, anna)
    async with ctx.db.reading() as session:
        agent = await session.get(Agent, anna)
        assert agent is not None and agent.deactivated_at is None, "nothing half-done: still active"
        assert agent.status.value == "busy"
