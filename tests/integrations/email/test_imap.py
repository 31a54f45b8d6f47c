"""The IMAP poller against a real Dovecot (tests/integrations/email/dovecot.py), with an in-memory sink.

What is checked is what the console promises of its IMAP side: every mail is stored once, in UID
order, and marked on the server only after it was stored; a new mail is fetched within seconds
(IDLE, or polling); a changed UIDVALIDITY, a restart mid-fetch and a day of downtime lose and
double nothing; a server that goes away leaves a poller that says so and recovers. Deadlines are
generous (20 s) and timing is never asserted tightly: these run on small shared machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.parser import BytesHeaderParser

import pytest

from integrations.email import imap
from integrations.email.imap import ImapError, ImapPoller, parse_url
from tests.integrations.email.dovecot import PASSWORD, USER, Dovecot, make_mail

DEADLINE = 20.0


class FakeSink:
    """The domain side in memory, as the real one behaves: the cursor moves with each store, in
    the same step; a Message-ID already stored in a mailbox is not stored again."""

    def __init__(self) -> None:
        self.cursors: dict[str, tuple[int | None, int]] = {}
        self.stored: list[tuple[str, int, str]] = []  # (mailbox, uid, message id), once per mail
        self.raw: dict[str, bytes] = {}
        self.duplicates = 0  # stores of a mail that was there already
        self.resyncs: list[tuple[str, int]] = []
        self.fail_uids: set[int] = set()  # the next store of these UIDs raises (once each)
        self.delay = 0.0  # each store takes this long (cancelling in it stores nothing)
        self.before_store: Callable[[int], Awaitable[None]] | None = None
        self.down = False  # the database is away: every call raises

    async def cursor(self, mailbox: str) -> tuple[int | None, int]:
        if self.down:
            raise ConnectionRefusedError("the database is not there (a test)")
        return self.cursors.get(mailbox, (None, 0))

    async def store(self, mailbox: str, uidvalidity: int, uid: int, raw: bytes) -> None:
        if self.before_store is not None:
            await self.before_store(uid)
        if self.delay:
            await asyncio.sleep(self.delay)
        if uid in self.fail_uids:
            self.fail_uids.discard(uid)
            raise RuntimeError("the database is not there (a test)")
        message_id = BytesHeaderParser().parsebytes(raw)["Message-ID"].strip("<>")
        if message_id in self.raw:
            self.duplicates += 1
        else:
            self.raw[message_id] = raw
            self.stored.append((mailbox, uid, message_id))
        self.cursors[mailbox] = (uidvalidity, uid)

    async def resync(self, mailbox: str, uidvalidity: int) -> None:
        self.resyncs.append((mailbox, uidvalidity))
        self.cursors[mailbox] = (uidvalidity, 0)

    async def advance(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        if self.down:
            raise ConnectionRefusedError("the database is not there (a test)")
        known, last = self.cursors.get(mailbox, (None, 0))
        self.cursors[mailbox] = (uidvalidity, max(last, uid) if known == uidvalidity else uid)

    def ids(self) -> list[str]:
        return [message_id for _, _, message_id in self.stored]


async def eventually(check: Callable[[], object], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"not within {deadline:g} s: {what}"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running(poller: ImapPoller) -> AsyncIterator[asyncio.Task[None]]:
    """The poller's run() as a task, cancelled at the end (and checked to have kept running)."""
    task = asyncio.create_task(poller.run())
    try:
        yield task
    finally:
        assert not task.done(), "run() ended on its own"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert poller.state.state == "off"


def poller_for(dovecot: Dovecot, sink: FakeSink, **query: object) -> ImapPoller:
    return ImapPoller(parse_url("support", dovecot.url(**query)), sink, timeout=10)


def seen(flags: dict[int, set[str]]) -> set[int]:
    return {uid for uid, marks in flags.items() if "\\Seen" in marks}


async def test_new_mails_are_stored_in_uid_order_and_flagged_only_once_stored(dovecot: Dovecot) -> None:
    ids = dovecot.deliver_new(5)
    sink = FakeSink()
    flags_at_store: list[set[str]] = []

    async def look(uid: int) -> None:  # the mail as the server has it while it is being stored
        flags_at_store.append((await asyncio.to_thread(dovecot.flags))[uid])

    sink.before_store = look
    poller = poller_for(dovecot, sink)
    try:
        assert await poller.fetch_once() == 5
        assert sink.ids() == ids
        assert [uid for _, uid, _ in sink.stored] == [1, 2, 3, 4, 5]
        assert all("\\Seen" not in flags for flags in flags_at_store)
        assert seen(dovecot.flags()) == {1, 2, 3, 4, 5}
        assert sink.cursors["support"] == (dovecot.uidvalidity(), 5)
        state = poller.state
        assert (state.state, state.stored, state.backlog, state.failures, state.last_error) == ("idle", 5, 0, 0, None)
        assert state.last_fetch_at is not None
        assert state.as_dict()["last_fetch_at"] == state.last_fetch_at.isoformat()

        assert await poller.fetch_once() == 0  # nothing new: nothing fetched again
        more = dovecot.deliver_new(2, "later")
        assert await poller.fetch_once() == 2
        assert sink.ids() == ids + more
        assert sink.duplicates == 0
        assert seen(dovecot.flags()) == {1, 2, 3, 4, 5, 6, 7}
    finally:
        await poller.close()


async def test_a_mail_that_could_not_be_stored_stays_unflagged_and_is_tried_again(
        dovecot: Dovecot, caplog: pytest.LogCaptureFixture) -> None:
    ids = dovecot.deliver_new(3)
    sink = FakeSink()
    sink.fail_uids = {2}
    poller = poller_for(dovecot, sink)
    try:
        assert await poller.fetch_once() == 1  # UID 1; the pass stops at UID 2 and does not skip it
        assert sink.ids() == ids[:1]
        assert seen(dovecot.flags()) == {1}
        assert poller.state.state == "failing"
        assert poller.state.failures == 1
        assert "storing UID 2" in (poller.state.last_error or "")
        assert "IMAP mailbox support: storing UID 2" in caplog.text

        assert await poller.fetch_once() == 2
        assert sink.ids() == ids
        assert seen(dovecot.flags()) == {1, 2, 3}
        assert poller.state.state == "idle"
    finally:
        await poller.close()


async def test_a_database_that_is_away_keeps_the_poller_running(dovecot: Dovecot) -> None:
    sink = FakeSink()
    sink.down = True
    poller = poller_for(dovecot, sink, poll=600)
    poller.backoff_max = 1.0
    async with running(poller):
        await eventually(lambda: "reading the cursor" in (poller.state.last_error or ""), "the failure shown")
        assert poller.state.state == "failing"
        ids = await asyncio.to_thread(dovecot.deliver_new, 2)
        await asyncio.sleep(0.5)
        assert sink.ids() == []
        assert seen(dovecot.flags()) == set()
        sink.down = False
        await eventually(lambda: sink.ids() == ids, "stored once the database is back")
        await eventually(lambda: poller.state.state == "idle", "waiting in IDLE again")
    assert seen(dovecot.flags()) == {1, 2}


async def test_mail_arrives_byte_for_byte(dovecot: Dovecot) -> None:
    """Big mails and bodies that look like IMAP protocol (literals, parentheses, tagged lines)."""
    tricky = "(unbalanced ((\r\n* 3 EXISTS\r\nA001 OK done\r\nlooks like a literal {12}\r\n)\r\n"
    _, small = make_mail("protocol look-alikes", body=tricky, extra=bytes(range(128, 256)) + b"\r\n")
    _, big = make_mail("an attachment", body="x" * 76 + "\r\n", extra=b"0123456789abcdef" * 4 * 1024 * 50 + b"\r\n")
    _, empty = make_mail("no body", body="")
    dovecot.deliver(small, big, empty)
    sink = FakeSink()
    poller = poller_for(dovecot, sink)
    try:
        assert await poller.fetch_once() == 3
    finally:
        await poller.close()
    assert list(sink.raw.values()) == [small, big, empty]


async def test_a_mail_delivered_while_waiting_in_idle_is_stored_within_seconds(dovecot: Dovecot) -> None:
    sink = FakeSink()
    poller = poller_for(dovecot, sink, poll=600)  # only IDLE can bring it in time
    async with running(poller):
        await eventually(lambda: poller.state.state == "idle", "waiting in IDLE")
        await asyncio.sleep(0.3)  # the IDLE command itself is under way
        ids = await asyncio.to_thread(dovecot.deliver_new, 1)
        await eventually(lambda: sink.ids() == ids, "the new mail is stored")
        await eventually(lambda: seen(dovecot.flags()) == {1}, "the new mail is flagged \\Seen")
        assert poller.state.state in ("idle", "fetching")


async def test_without_idle_a_poll_finds_new_mail(dovecot: Dovecot) -> None:
    sink = FakeSink()
    poller = poller_for(dovecot, sink, idle=0, poll=1)
    async with running(poller):
        await eventually(lambda: poller.state.state == "polling", "polling")
        ids = await asyncio.to_thread(dovecot.deliver_new, 2)
        await eventually(lambda: sink.ids() == ids, "the new mails are stored")


async def test_a_server_without_idle_move_and_uidplus_is_polled_and_mails_are_copied_away(
        make_dovecot: Callable[..., Dovecot]) -> None:
    old = make_dovecot(capability="IMAP4rev1 LITERAL+")  # still understands everything, announces little
    sink = FakeSink()
    poller = poller_for(old, sink, poll=1, move="Processed")  # IDLE is asked for, but not offered
    async with running(poller):
        await eventually(lambda: poller.state.state == "polling", "polling")
        ids = await asyncio.to_thread(old.deliver_new, 2)
        await eventually(lambda: sink.ids() == ids, "the new mails are stored")
        await eventually(lambda: old.uids() == [], "the stored mails left INBOX")
    assert old.uids("Processed") == [1, 2]  # the folder did not exist: made on TRYCREATE


async def test_move_moves_stored_mails_to_the_folder(dovecot: Dovecot) -> None:
    dovecot.create("Processed")
    ids = dovecot.deliver_new(3)
    sink = FakeSink()
    poller = poller_for(dovecot, sink, move="Processed")
    try:
        assert await poller.fetch_once() == 3
    finally:
        await poller.close()
    assert sink.ids() == ids
    assert dovecot.uids() == []
    assert dovecot.uids("Processed") == [1, 2, 3]


async def test_a_changed_uidvalidity_reads_the_folder_again_without_storing_twice(dovecot: Dovecot) -> None:
    ids = dovecot.deliver_new(3)
    sink = FakeSink()
    poller = poller_for(dovecot, sink, poll=600)
    async with running(poller):
        await eventually(lambda: len(sink.stored) == 3 and poller.state.state == "idle", "the first mails")
        new_validity = await asyncio.to_thread(dovecot.change_uidvalidity)
        ids += await asyncio.to_thread(dovecot.deliver_new, 1, "after the change")  # wakes the IDLE
        await eventually(lambda: sink.cursors["support"] == (new_validity, 4), "the folder read again")
    assert sink.resyncs == [("support", new_validity)]
    assert sink.ids() == ids  # each once
    assert sink.duplicates == 0  # the three known mails were flagged \Seen when stored: not read again


async def test_a_restart_mid_fetch_stores_every_mail_exactly_once(dovecot: Dovecot) -> None:
    ids = dovecot.deliver_new(30)
    sink = FakeSink()
    sink.delay = 0.03
    first = poller_for(dovecot, sink)
    async with running(first):
        await eventually(lambda: len(sink.stored) >= 8, "some mails stored")
    assert len(sink.stored) < 30, "the poller was to be stopped mid-fetch"
    second = poller_for(dovecot, sink)  # a console started again, same database
    async with running(second):
        await eventually(lambda: len(sink.stored) == 30, "all mails stored")
        await eventually(lambda: len(seen(dovecot.flags())) == 30, "all mails flagged \\Seen")
    assert sink.ids() == ids
    assert sink.duplicates == 0  # the cursor moved with each store: nothing was fetched twice


async def test_a_console_that_was_down_catches_up(dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imap, "BATCH", 7)  # several batches
    sink = FakeSink()
    before = dovecot.deliver_new(2, "before")
    poller = poller_for(dovecot, sink)
    assert await poller.fetch_once() == 2
    await poller.close()
    meanwhile = dovecot.deliver_new(30, "meanwhile")  # a day without the console
    poller = poller_for(dovecot, sink)
    async with running(poller):
        await eventually(lambda: len(sink.stored) == 32, "all mails stored")
        await eventually(lambda: poller.state.backlog == 0 and poller.state.state == "idle", "nothing left")
    assert sink.ids() == before + meanwhile
    assert sink.duplicates == 0
    assert len(seen(dovecot.flags())) == 32


async def test_a_server_that_goes_away_makes_the_mailbox_fail_and_then_recover(
        dovecot: Dovecot, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="integrations.email.imap")
    sink = FakeSink()
    poller = poller_for(dovecot, sink, poll=600)
    poller.backoff_max = 2.0  # come back quickly in the test
    async with running(poller) as task:
        await eventually(lambda: poller.state.state == "idle", "waiting in IDLE")
        await asyncio.to_thread(dovecot.stop)
        await eventually(lambda: poller.state.state == "failing", "failing")
        assert poller.state.last_error
        assert poller.state.failures >= 1
        await asyncio.sleep(1.5)  # a reconnect or two, refused
        assert not task.done()
        assert poller.state.state == "failing"
        await asyncio.to_thread(dovecot.start)
        await eventually(lambda: poller.state.state == "idle", "recovered")
        ids = await asyncio.to_thread(dovecot.deliver_new, 1)
        await eventually(lambda: sink.ids() == ids, "a new mail stored after the recovery")
        assert poller.state.last_fetch_at is not None
    assert "IMAP mailbox support:" in caplog.text
    assert PASSWORD not in caplog.text
    assert PASSWORD not in (poller.state.last_error or "")


async def test_a_wrong_password_is_a_clear_failure_without_the_password(dovecot: Dovecot) -> None:
    wrong = "not-the-password-123"
    url = f"imap://{USER.replace('@', '%40')}:{wrong}@127.0.0.1:{dovecot.port}/INBOX"
    poller = ImapPoller(parse_url("support", url), FakeSink(), timeout=10)
    with pytest.raises(ImapError, match="answered NO"):
        await poller.fetch_once()
    error = poller.state.last_error or ""
    assert error.startswith("logging in as agent@example.test: the server answered NO")
    assert wrong not in error
    assert poller.state.state == "failing"
    # Whatever a library puts in an error, the password (in any form it was sent in) is blanked.
    assert poller._scrub(f'A1 LOGIN "{USER}" "{wrong}" timed out') == f'A1 LOGIN "{USER}" *** timed out'
    await poller.close()


async def test_tls_from_the_start_and_starttls(dovecot: Dovecot) -> None:
    for url in (dovecot.url(scheme="imaps", verify=0), dovecot.url(starttls=1, verify=0)):
        sink = FakeSink()
        ids = await asyncio.to_thread(dovecot.deliver_new, 1, url[:5])
        poller = ImapPoller(parse_url("support", url), sink, timeout=10)
        try:
            assert await poller.fetch_once() == 1  # a first read: the mail the first poller stored is read
            assert sink.ids() == ids
        finally:
            await poller.close()
    logins = [line for line in dovecot.log.read_text().splitlines() if "Login: user=" in line]
    assert sum(", TLS, " in line for line in logins) == 2, logins  # the poller's; the helper's are plain
    # Without ?verify=0 the self-signed certificate is refused, and said so.
    poller = ImapPoller(parse_url("support", dovecot.url(scheme="imaps")), FakeSink(), timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        await poller.fetch_once()
    assert "CERTIFICATE_VERIFY_FAILED" in (poller.state.last_error or "")
    await poller.close()


def test_parse_url_reads_every_option() -> None:
    box = parse_url("support", "imaps://agent%40example.nl:s3cr%23t@imap.example.nl/Support%20Desk?move=Done&poll=30"
                               "&idle=0&verify=0&queue=sales")
    assert (box.name, box.host, box.port, box.tls, box.user, box.password) == (
        "support", "imap.example.nl", 993, "implicit", "agent@example.nl", "s3cr#t")
    assert (box.folder, box.after, box.poll_seconds, box.idle, box.insecure) == (
        "Support Desk", "Done", 30, False, True)
    assert "s3cr" not in repr(box)
    assert box.display == "imaps://agent@example.nl@imap.example.nl:993/Support%20Desk"
    plain = parse_url("sales", "imap://u:p@127.0.0.1")
    assert (plain.port, plain.tls, plain.folder, plain.after, plain.poll_seconds, plain.idle, plain.insecure) == (
        143, "none", "INBOX", None, 60, True, False)
    assert parse_url("sales", "imap://u:p@[::1]:1143/INBOX?starttls=1").tls == "starttls"


@pytest.mark.parametrize(("url", "says"), [
    ("http://agent:hunter22@imap.example.nl/INBOX", "starts with imaps://"),
    ("imaps://imap.example.nl/INBOX", "no user and password"),
    ("imaps://agent:hunter22/x@imap.example.nl/INBOX", "no user and password"),  # an unencoded / in it
    ("imaps://agent:hun#ter22@imap.example.nl/INBOX", "no user and password"),
    ("imaps://agent@imap.example.nl/INBOX", "no password"),
    ("imaps://:hunter22@imap.example.nl/INBOX", "no user name"),
    ("imaps://agent:hunter22@/INBOX", "no host"),
    ("imaps://agent:hunter22@imap.example.nl:99999/INBOX", "port"),
    ("imaps://agent:hunter22@imap.example.nl:imap/INBOX", "port"),
    ("imaps://agent:hunter22@imap.example.nl/INBOX?pol=30", "unknown option ?pol="),
    ("imaps://agent:hunter22@imap.example.nl/INBOX?poll=0", "?poll="),
    ("imaps://agent:hunter22@imap.example.nl/INBOX?poll=soon", "?poll="),
    ("imaps://agent:hunter22@imap.example.nl/INBOX?idle=maybe", "?idle= must be 1 or 0"),
    ("imaps://agent:hunter22@imap.example.nl/INBOX?starttls=1", "?starttls=1 is for imap://"),
    ("imaps://agent:hunter22@imap.example.nl/INBOX?move=", "?move="),
    ("imaps://agent:hunter22@imap.example.nl/INBOX?move=INBOX", "?move= names the folder that is read"),
    ("imaps://agent:hunter22@imap.example.nl/INBOX?poll=5&poll=6", "twice"),
    ("imaps://agent:hunter22%0A@imap.example.nl/INBOX", "control character"),
])
def test_parse_url_errors_name_the_setting_and_never_the_password(url: str, says: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_url("support", url)
    message = str(error.value)
    assert message.startswith("CONSOLE_MAILBOX_SUPPORT: ")
    assert says in message
    assert "hunter" not in message and "ter22" not in message


def test_folder_names_and_uid_sets_on_the_wire() -> None:
    assert imap._folder_arg("INBOX") == '"INBOX"'
    assert imap._folder_arg('Büro & "Co"') == '"B&APw-ro &- \\"Co\\""'  # modified UTF-7, quoted
    assert imap._folder_arg("日本") == '"&ZeVnLA-"'
    assert imap._uid_set([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"
    assert imap._uid_set([5]) == "5"


async def test_the_first_read_takes_the_unread_mails_and_leaves_the_read_history(dovecot: Dovecot) -> None:
    old = [make_mail(f"old {n}") for n in range(3)]
    dovecot.deliver(*(raw for _, raw in old), seen=True)  # read in a mail client long ago
    new = dovecot.deliver_new(2, "unread")
    dovecot.deliver(make_mail("read later")[1], seen=True)
    sink = FakeSink()
    poller = poller_for(dovecot, sink)
    try:
        assert await poller.fetch_once() == 2
    finally:
        await poller.close()
    assert sink.ids() == new
    assert sink.cursors["support"][1] == 6, "the cursor is past the whole folder"
    after = dovecot.deliver_new(1, "after")  # and from then on, everything new
    poller = poller_for(dovecot, sink)
    try:
        assert await poller.fetch_once() == 1
    finally:
        await poller.close()
    assert sink.ids() == new + after
