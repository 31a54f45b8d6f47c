import pytest
from sqlalchemy import select

from console import config
from console.errors import Conflict, InvalidInput, NotFound
from console.models import Agent, Disposition, Queue, QueueSkill
from console.ports import Context
from tests.helpers import add_agent


async def test_queues_skills_capacities_and_dispositions_can_be_set(ctx: Context) -> None:
    await add_agent(ctx.db, "anna@x.nl", "Anna")
    async with ctx.db.transaction() as session:
        await config.add_skill(session, "German")
        queue, created = await config.configure_queue(session, "de", config.QueueSettings(
            offer_seconds=30, wrap_up_seconds=90, weights=(5, 2, 1), skills=["german:3"],
            dispositions=["gelöst", "Rückruf"]))
        assert created and queue.offer_seconds == 30 and queue.weight_a == 5
        again, created = await config.configure_queue(session, "de", config.QueueSettings(wrap_up_seconds=45))
        assert not created and again.offer_seconds == 30 and again.wrap_up_seconds == 45
        await config.configure_agent(session, "ANNA@x.nl", skills=["german:4"], capacity={"chat": 2})
    async with ctx.db.transaction() as session:
        assert await session.scalar(select(QueueSkill.level)) == 3
        assert set(await session.scalars(select(Disposition.code))) == {"gelöst", "Rückruf"}
        assert (await session.scalar(select(Agent.capacity_chat))) == 2


@pytest.mark.parametrize(("change", "error"), [
    (lambda s: config.configure_queue(s, "q", config.QueueSettings(skills=["klingon"])), NotFound),
    (lambda s: config.configure_queue(s, "q", config.QueueSettings(offer_seconds=-1)), InvalidInput),
    (lambda s: config.configure_queue(s, "q", config.QueueSettings(weights=(1, 0, 1))), InvalidInput),
    (lambda s: config.configure_queue(s, "q", config.QueueSettings(dispositions=[" "])), InvalidInput),
    (lambda s: config.configure_queue(s, "q", config.QueueSettings(skills=["german:11"])), InvalidInput),
    (lambda s: config.configure_queue(s, "q", config.QueueSettings(skills=["german:³"])), InvalidInput),
    (lambda s: config.configure_queue(s, "q", config.QueueSettings(wrap_up_seconds=0)), InvalidInput),
    (lambda s: config.configure_queue(s, "q", config.QueueSettings(service_level_goal=0)), InvalidInput),
    (lambda s: config.configure_queue(s, "q", config.QueueSettings(short_abandon_seconds=-1)), InvalidInput),
    (lambda s: config.configure_queue(s, "q", config.QueueSettings(longest_wait_seconds=3601)), InvalidInput),
    (lambda s: config.configure_agent(s, "anna@x.nl", name=" "), InvalidInput),
    (lambda s: config.configure_agent(s, "anna@x.nl", capacity={"chat": -1}), InvalidInput),
    (lambda s: config.configure_agent(s, "anna@x.nl", capacity={"fax": 1}), InvalidInput),
    (lambda s: config.configure_agent(s, "nobody@x.nl", skills=[]), NotFound),
    (lambda s: config.add_skill(s, "german"), Conflict),
])
async def test_bad_configuration_is_refused_and_changes_nothing(ctx: Context, change: object,
                                                                error: type[Exception]) -> None:
    await add_agent(ctx.db, "anna@x.nl", "Anna")
    async with ctx.db.transaction() as session:
        await config.add_skill(session, "german")
    with pytest.raises(error):
        async with ctx.db.transaction() as session:
            await change(session)  # type: ignore[operator]
    async with ctx.db.transaction() as session:
        assert await session.scalar(select(Queue.id)) is None
        agent = await session.scalar(select(Agent))
        assert agent is not None and (agent.capacity_call, agent.capacity_chat) == (1, 3)
