"""The figures' definitions on a scripted day: every number below is counted by hand from the day.

The day is Sunday 29 March 2026 in Amsterdam, when the clocks went from 02:00 to 03:00: a local day
of 23 hours, from 28 March 23:00 UTC to 29 March 22:00 UTC. Two queues: Sales (service level 20 s,
short abandons under 5 s) and Service (30 s, 10 s). Anna and Bram answer.

| # | queue, channel  | arrives (local)  | what happens                                                       |
| - | --------------- | ---------------- | ------------------------------------------------------------------ |
| 1 | Sales, call     | 09:00:00         | Anna answers after 10 s, talks 300 s, wraps up 60 s: "sale"       |
| 2 | Sales, call     | 09:05:00         | Bram answers after 30 s, talks 120 s, wrap-up times out after 30 s |
| 3 | Sales, call     | 09:10:00         | hangs up after 3 s (a short abandon)                               |
| 4 | Sales, call     | 09:20:00         | hangs up after 45 s, while it rang for Bram                        |
| 5 | Sales, call     | 10:00:00         | Anna answers after 20 s, hands off to Service after 100 s          |
| 6 | Service, call   | 10:01:40         | 5 handed off: Bram answers after 5 s, talks 200 s, wraps 20 s: "solved" |
| 7 | Service, chat   | 11:00:00         | Anna answers after 40 s, chats 600 s, closes at once; rated 4      |
| 8 | Sales, call out | 12:00:00         | Anna calls a customer: no contact                                   |
| 9 | Service, mail   | 12:30:00         | an out-of-office, kept closed: no contact                           |
| 10| Sales, call     | 01:30:00 (CET)   | Bram answers after 15 s, talks 60 s, wraps up 10 s: "sale"         |
| 11| Sales, call     | 28 March 23:59:50| Anna answers 20 s later, after midnight: counts on the 28th        |
| 12| Sales, call     | 16:00:00         | still waiting at the end of the day                                 |

Sales on the day (1 2 3 4 5 10 12): offered 7; answered 4 (1 2 5 10), 3 of them within 20 s (10 s,
exactly 20 s, 15 s); short abandoned 1, abandoned 1; service level 3 / (7 - 1) = 50 %; abandonment
rate 1 / 6; speed of answer (10 + 30 + 20 + 15) / 4 = 18.75 s; handled 4 (the handoff of 5 ends its
part); talk 300 + 120 + 100 + 60 = 580 s, wrap-up 60 + 30 + 0 + 10 = 100 s, handle time 680 / 4 =
170 s; one wrap-up timeout; dispositions: sale 2, wrap-up timeout 1.
Service calls (6): 1 offered, answered in 5 s, service level 100 %, handle time 220 s. Service chats
(7): 1 offered, answered in 40 s (over 30 s), service level 0 %, handle time 600 s, satisfaction 4.
Agents: Anna handled 3 (1 5 7), Bram 3 (2 6 10); contact 4 rang for Bram but is not his: an agent's
contacts are those they answered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from console import rollups
from console.metrics import Tally, arrived_between, contacts, tally
from console.models import Channel, Conversation, ConversationEvent, Direction, Queue, State, utcnow
from console.ports import Context
from tests.helpers import add_agent

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
DAY_START = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
DAY_END = datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def local(hour: int, minute: int = 0, second: int = 0, day: int = 29) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=AMSTERDAM).astimezone(UTC)


async def scripted_day(ctx: Context) -> dict[str, int]:
    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    bram = await add_agent(ctx.db, "bram@x.nl", "Bram")
    async with ctx.db.transaction() as session:
        sales = Queue(name="Sales", service_level_seconds=20, short_abandon_seconds=5)
        service = Queue(name="Service", service_level_seconds=30, short_abandon_seconds=10)
        session.add_all([sales, service])
        await session.flush()
        n = 0

        def contact(queue: Queue, arrives: datetime, *, channel: Channel = Channel.CALL, agent: int | None = None,
                    answer: float | None = None, talk: float = 0, wrap: float | None = None,
                    handoff: bool = False, abandon: float | None = None, disposition: str | None = None,
                    rating: int | None = None, direction: Direction = Direction.IN,
                    state: State | None = None) -> Conversation:
            nonlocal n
            n += 1
            c = Conversation(channel=channel, direction=direction, external_id=f"day-{n}", queue_id=queue.id,
                             agent_id=agent, created_at=arrives, disposition=disposition, rating=rating,
                             state=state or State.CLOSED)
            if answer is not None:
                c.offered_at = arrives + answer * S / 2
                c.answered_at = arrives + answer * S
                if handoff:
                    c.transferred_at, c.state = c.answered_at + talk * S, State.TRANSFERRED
                elif wrap is not None:
                    c.wrap_up_at = c.answered_at + talk * S
                    c.closed_at = c.wrap_up_at + wrap * S
                else:
                    c.closed_at = c.answered_at + talk * S
            elif abandon is not None:
                c.abandoned_at, c.state = arrives + abandon * S, State.ABANDONED
            session.add(c)
            return c

        contact(sales, local(9), agent=anna, answer=10, talk=300, wrap=60, disposition="sale")
        contact(sales, local(9, 5), agent=bram, answer=30, talk=120, wrap=30, disposition="wrap-up timeout")
        contact(sales, local(9, 10), abandon=3)
        contact(sales, local(9, 20), abandon=45, agent=bram)  # rang for Bram: his offer names him
        contact(sales, local(10), agent=anna, answer=20, talk=100, handoff=True)
        contact(service, local(10, 1, 40), agent=bram, answer=5, talk=200, wrap=20, disposition="solved")
        contact(service, local(11), channel=Channel.CHAT, agent=anna, answer=40, talk=600, rating=4)
        contact(sales, local(12), agent=anna, answer=0, talk=90, direction=Direction.OUT)
        kept = contact(service, local(12, 30), channel=Channel.MAIL)
        kept.closed_at = kept.created_at
        contact(sales, local(1, 30), agent=bram, answer=15, talk=60, wrap=10, disposition="sale")
        contact(sales, local(23, 59, 50, day=28), agent=anna, answer=20, talk=60, wrap=5, disposition="sale")
        contact(sales, local(16), state=State.QUEUED)
    return {"sales": sales.id, "service": service.id, "anna": anna, "bram": bram}


def check_sales(t: Tally) -> None:
    assert (t.offered, t.answered, t.answered_in_threshold, t.short_abandoned, t.abandoned) == (7, 4, 3, 1, 1)
    assert t.service_level == pytest.approx(0.5)
    assert t.abandonment_rate == pytest.approx(1 / 6)
    assert t.speed_of_answer == pytest.approx(18.75)
    assert (t.handled, t.talk_ms, t.wrap_ms) == (4, 580_000, 100_000)
    assert t.handle_time == pytest.approx(170)
    assert t.wrap_timeouts == 1
    assert t.satisfaction is None


async def test_the_scripted_day_counted_from_the_conversations(ctx: Context) -> None:
    ids = await scripted_day(ctx)
    async with ctx.db.reading() as session:
        rows = await contacts(session, arrived_between(DAY_START, DAY_END))
        limits = await rollups.thresholds(session)
    figures, codes = tally(rows, limits)
    by_queue: dict[tuple[int, str], Tally] = {}
    by_agent: dict[int, Tally] = {}
    for (queue, channel, agent), t in figures.items():
        by_queue.setdefault((queue, channel), Tally()).add(t)
        by_agent.setdefault(agent, Tally()).add(t)
    assert set(by_queue) == {(ids["sales"], "call"), (ids["service"], "call"), (ids["service"], "chat")}
    check_sales(by_queue[ids["sales"], "call"])
    call = by_queue[ids["service"], "call"]
    assert (call.offered, call.answered, call.service_level, call.speed_of_answer, call.handle_time) == (
        1, 1, 1.0, 5, 220)
    chat = by_queue[ids["service"], "chat"]
    assert (chat.offered, chat.service_level, chat.speed_of_answer, chat.handle_time, chat.satisfaction) == (
        1, 0.0, 40, 600, 4)
    assert (by_agent[ids["anna"]].handled, by_agent[ids["bram"]].handled) == (3, 3)
    assert (by_agent[ids["bram"]].offered, by_agent[ids["bram"]].abandoned) == (3, 0)
    sales_codes: dict[str, int] = {}
    for ((queue, _, _), code), count in codes.items():
        if queue == ids["sales"]:
            sales_codes[code] = sales_codes.get(code, 0) + count
    assert sales_codes == {"sale": 2, "wrap-up timeout": 1}


async def test_the_hourly_statistics_give_the_same_day_over_the_clock_change(ctx: Context) -> None:
    ids = await scripted_day(ctx)
    now = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    progress = await rollups.sweep(ctx.db, "Europe/Amsterdam", now)
    while progress.backfill_left is not None:
        progress = await rollups.sweep(ctx.db, "Europe/Amsterdam", now)
    async with ctx.db.reading() as session:
        assert rollups.local_midnight(local(12), AMSTERDAM) == DAY_START
        day = await rollups.sums(session, DAY_START, DAY_END, by=("queue", "channel"))
        hours = {start for start, _, _ in await rollups.totals(session, DAY_START, DAY_END)}
        before = await rollups.sums(session, DAY_START - timedelta(days=1), DAY_START, by=("queue",))
        agents = await rollups.sums(session, DAY_START, DAY_END, by=("agent",))
        codes = await rollups.dispositions(session, DAY_START, DAY_END, by=("queue",))
    check_sales(day[ids["sales"], "call"])
    assert day[ids["service"], "chat"].satisfaction == 4
    assert before[ids["sales"],].answered == 1  # contact 11 arrived on the 28th
    assert (agents[ids["anna"],].handled, agents[ids["bram"],].handled) == (3, 3)
    # Arrivals at 01:30 (UTC+1) and from 09:00 on (UTC+2): the hours are the local hours' starts.
    assert local(1) in hours and local(9) in hours and local(1) + timedelta(hours=1) not in hours
    sales_codes: dict[str, int] = {}
    for _, (queue,), code, n in codes:  # per hour: 01:00 and 09:00 both had a sale
        if queue == ids["sales"]:
            sales_codes[code] = sales_codes.get(code, 0) + n
    assert sales_codes == {"sale": 2, "wrap-up timeout": 1}


async def test_a_change_to_an_hour_already_counted_is_counted_again(ctx: Context) -> None:
    ids = await scripted_day(ctx)
    progress = await rollups.sweep(ctx.db, "Europe/Amsterdam")  # all of it is history: the backfill counts it,
    while progress.backfill_left is not None:  # a day a round, newest first
        progress = await rollups.sweep(ctx.db, "Europe/Amsterdam")
    async with ctx.db.transaction() as session:  # contact 12, waiting since 16:00, is answered now
        waiting = await session.scalar(select(Conversation).where(Conversation.state == State.QUEUED))
        assert waiting is not None
        waiting.state, waiting.answered_at, waiting.agent_id = State.ACTIVE, local(16, 0, 12), ids["anna"]
        session.add(ConversationEvent(conversation_id=waiting.id, from_state=State.QUEUED, to_state=State.ACTIVE,
                                      at=utcnow()))
    progress = await rollups.sweep(ctx.db, "Europe/Amsterdam")
    assert progress.hours == 1
    async with ctx.db.reading() as session:
        day = await rollups.sums(session, DAY_START, DAY_END, by=("queue",))
    assert (day[ids["sales"],].answered, day[ids["sales"],].answered_in_threshold) == (5, 4)


async def test_the_wallboard_and_a_report_of_today_give_the_same_numbers(ctx: Context) -> None:
    from console import reports, wallboard

    anna = await add_agent(ctx.db, "anna@x.nl", "Anna")
    now = utcnow()
    async with ctx.transaction() as session:
        sales = Queue(name="Sales", service_level_seconds=20, short_abandon_seconds=5)
        session.add(sales)
        await session.flush()
        first = max(now - timedelta(minutes=30), rollups.local_midnight(now, AMSTERDAM) + S)  # all today
        for n, (wait, abandons) in enumerate([(5, False), (40, False), (2, True), (30, True)]):
            arrived = first + timedelta(minutes=n)
            c = Conversation(channel=Channel.CALL, external_id=f"t-{n}", queue_id=sales.id, created_at=arrived,
                             state=State.ABANDONED if abandons else State.CLOSED)
            if abandons:
                c.abandoned_at = arrived + wait * S
            else:
                c.agent_id, c.answered_at = anna, arrived + wait * S
                c.wrap_up_at, c.closed_at = c.answered_at + 60 * S, c.answered_at + 70 * S
            session.add(c)
        session.add(Conversation(channel=Channel.CALL, external_id="t-wait", queue_id=sales.id, created_at=now,
                                 state=State.QUEUED))
    await rollups.sweep(ctx.db, "Europe/Amsterdam", now)
    async with ctx.db.reading() as session:
        board = await wallboard.board(session, AMSTERDAM, now)
        today = now.astimezone(AMSTERDAM).date()
        report = await reports.build(session, reports.parse_range(today.isoformat(), today.isoformat(), AMSTERDAM,
                                                                  today), "day", AMSTERDAM)
    line = next(q for q in board.queues if q.name == "Sales")
    assert line.today == {r.label: r.figures for r in report.by_queue}["Sales"]
    assert (line.today.offered, line.today.answered, line.today.abandoned, line.today.short_abandoned) == (5, 2, 1, 1)
    assert line.waiting == 1 and line.today.service_level == pytest.approx(1 / 4)
    assert line.level_breached, "1 of 4 in time, and the one still waiting cannot lift it to 80 %"


async def test_a_queues_new_thresholds_count_today_again(ctx: Context) -> None:
    now = utcnow()
    async with ctx.transaction() as session:
        sales = Queue(name="Sales", service_level_seconds=20)
        session.add(sales)
        await session.flush()
        arrived = max(now - timedelta(minutes=5), rollups.local_midnight(now, AMSTERDAM) + S)  # today
        session.add(Conversation(channel=Channel.CALL, external_id="th-1", queue_id=sales.id, created_at=arrived,
                                 answered_at=arrived + 30 * S, state=State.ACTIVE))
    await rollups.sweep(ctx.db, "Europe/Amsterdam", now)
    day = rollups.day_of(now, AMSTERDAM)
    async with ctx.db.reading() as session:
        assert (await rollups.sums(session, *day))[()].answered_in_threshold == 0
    async with ctx.transaction() as session:
        queue = await session.get(Queue, sales.id)
        assert queue is not None
        queue.service_level_seconds = 45
    await rollups.sweep(ctx.db, "Europe/Amsterdam", now + timedelta(seconds=60))
    async with ctx.db.reading() as session:
        assert (await rollups.sums(session, *day))[()].answered_in_threshold == 1
