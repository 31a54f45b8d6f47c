"""The AMI protocol: URLs, the message reader, limits, and a connection to a scripted Asterisk."""

from __future__ import annotations

import asyncio
import logging
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.db import Database
from console.ports import Context, RecordingNotifier
from integrations.telephony import ami
from integrations.telephony.ami import AmiUrl, parse_url, read_message
from integrations.telephony.asterisk import AsteriskConnector
from tests.integrations.telephony.amipeer import SECRET, AmiPeer, until


def reader_of(data: bytes, limit: int = ami.MAX_LINE + 2) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    reader.feed_eof()
    return reader


# -- URLs ------------------------------------------------------------------------------------------

def test_a_plain_url_defaults_to_port_5038_and_tls_to_5039(tmp_path: Path) -> None:
    assert parse_url("ami://console:geheim@pbx.example.nl") == AmiUrl("pbx.example.nl", 5038, "console", "geheim")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    url = parse_url(f"amis://console:geh%40im%2F1@10.0.0.5?cafile={ca}&verify=off")
    assert (url.host, url.port, url.secret, url.tls, url.verify, url.cafile) == \
        ("10.0.0.5", 5039, "geh@im/1", True, False, str(ca))
    assert parse_url("ami://console:geheim@[::1]:15038").port == 15038


def test_the_secret_shows_nowhere_but_in_the_login() -> None:
    url = parse_url("ami://console:TopSecret99@pbx.example.nl:5038")
    assert "TopSecret99" not in repr(url) and "TopSecret99" not in url.display
    assert url.display == "ami://console@pbx.example.nl:5038"


@pytest.mark.parametrize(("url", "words"), [
    ("http://console:geheim@pbx", "starts with ami://"),
    ("ami://pbx.example.nl:5038", "no user and secret"),
    ("ami://:geheim@pbx.example.nl", "no user name"),
    ("ami://console@pbx.example.nl", "no secret"),
    ("ami://console:@pbx.example.nl", "no secret"),
    ("ami://console:geheim@pbx.example.nl:99999", "port"),
    ("ami://console:geheim@pbx.example.nl:port", "port"),
    ("ami://console:geheim@pbx.example.nl:0", "port"),
    ("ami://console:geheim@", "no host"),
    ("ami://console:geheim@pbx/manager", "ends after the host"),
    ("ami://console:geh#eim@pbx", "no user and secret"),
    ("amis://console:geheim@pbx?verify=maybe", "?verify= must be on or off"),
    ("amis://console:geheim@pbx?timeout=3", "unknown option ?timeout="),
    ("ami://console:geheim@pbx?verify=off", "for amis://"),
    ("amis://console:geheim@pbx?cafile=/nonexistent/ca.pem", "not a file"),
    ("amis://console:geheim@pbx?cafile=", "must name the file"),
    ("ami://console:geh%0Aeim@pbx", "control character"),
])
def test_a_bad_url_says_what_is_wrong_without_the_secret(url: str, words: str) -> None:
    with pytest.raises(ValueError, match="CONSOLE_ASTERISK_URL") as caught:
        parse_url(url)
    assert words in str(caught.value)
    assert "geheim" not in str(caught.value) and "eim" not in str(caught.value)


# -- the reader ------------------------------------------------------------------------------------

async def test_messages_end_at_an_empty_line_with_crlf_or_lf() -> None:
    reader = reader_of(b"\r\n\r\nEvent: Hangup\r\nChannel: PJSIP/201-0000002b\r\nCause-txt: Normal Clearing\r\n\r\n"
                       b"Response: Success\nMessage: Bridge: in: it\n\n")
    assert await read_message(reader) == {"Event": "Hangup", "Channel": "PJSIP/201-0000002b",
                                          "Cause-txt": "Normal Clearing"}
    assert await read_message(reader) == {"Response": "Success", "Message": "Bridge: in: it"}
    assert await read_message(reader) is None


async def test_a_stream_that_ends_inside_a_message_or_line_is_a_lost_connection() -> None:
    with pytest.raises(ami.ConnectionLost, match="middle of a message"):
        await read_message(reader_of(b"Event: Hangup\r\nChannel: PJSIP/201\r\n"))
    with pytest.raises(ami.ConnectionLost, match="middle of a line"):
        await read_message(reader_of(b"Event: Hangup\r\nChan"))


@pytest.mark.parametrize(("data", "words"), [
    (b"Event: Hangup\r\nthis is not a header\r\n\r\n", "not 'Key: Value'"),
    (b": no key\r\n\r\n", "not 'Key: Value'"),
    (b"".join(f"K{n}: v\r\n".encode() for n in range(ami.MAX_KEYS + 1)) + b"\r\n", "more than 200 keys"),
    (b"Event: " + b"x" * (ami.MAX_LINE + 10) + b"\r\n\r\n", "longer than 8192 bytes"),
])
async def test_garbage_too_many_keys_and_long_lines_are_protocol_errors(data: bytes, words: str) -> None:
    with pytest.raises(ami.ProtocolError, match=words):
        await read_message(reader_of(data))


_key = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)
_value = st.text(st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="\u2028\u2029"),
                 max_size=60).map(str.strip)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_key, _value, min_size=1, max_size=20))
async def test_what_is_encoded_reads_back_the_same(fields: dict[str, str]) -> None:
    assert await read_message(reader_of(ami.encode(fields))) == fields


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
async def test_any_bytes_read_as_messages_or_an_ami_error_never_anything_else(data: bytes) -> None:
    reader = reader_of(data, limit=64)
    try:
        for _ in range(100):
            if await read_message(reader) is None:
                break
    except ami.AmiError:
        pass


def test_a_value_that_could_add_lines_is_refused() -> None:
    with pytest.raises(ValueError):
        ami.encode({"Action": "Ping\r\nAction: Originate"})
    with pytest.raises(ValueError):
        ami.encode({"Bad:Key": "x"})


# -- a connection ----------------------------------------------------------------------------------

async def test_login_then_a_listing_action_returns_its_items(peer: AmiPeer) -> None:
    peer.snapshot([{"Event": "CoreShowChannel", "Channel": "PJSIP/201-0000002b", "Uniqueid": "1.2",
                    "Linkedid": "1.1"}])
    connection = await ami.Connection.open(peer.url(), within=5)
    try:
        assert connection.banner == "Asterisk Call Manager/9.0.0"
        await connection.login(peer.username, SECRET)
        response, items = await connection.action("CoreShowChannels", listing=True)
        assert response["Message"] == "Channels will follow"
        assert [item["Channel"] for item in items] == ["PJSIP/201-0000002b"]
        assert (await connection.event())["Event"] == "FullyBooted"
        await peer.send([{"Event": "Hangup", "Uniqueid": "1.1", "Linkedid": "1.1"}])
        assert (await connection.event())["Event"] == "Hangup"
        with pytest.raises(ami.ActionFailed, match="Invalid/unknown command"):
            await connection.action("Originate", {"Channel": "PJSIP/201"})
    finally:
        await connection.close()
    login = next(a for a in peer.actions if a["Action"] == "Login")
    assert login["Events"] == "on" and login["Username"] == "console" and login["ActionID"]


async def test_a_refused_login_carries_asterisks_message(peer: AmiPeer) -> None:
    connection = await ami.Connection.open(peer.url(), within=5)
    try:
        with pytest.raises(ami.LoginFailed, match="Authentication failed") as caught:
            await connection.login(peer.username, "wrong-secret")
        assert "wrong-secret" not in str(caught.value)
    finally:
        await connection.close()


async def test_a_peer_that_is_not_asterisk_is_refused_at_the_greeting() -> None:
    peer = AmiPeer(banner="SSH-2.0-OpenSSH_9.2")
    await peer.start()
    try:
        with pytest.raises(ami.ProtocolError, match="not an Asterisk manager interface"):
            await ami.Connection.open(peer.url(), within=5)
    finally:
        await peer.stop()


async def test_garbage_ends_the_connection_after_the_events_before_it(peer: AmiPeer) -> None:
    connection = await ami.Connection.open(peer.url(), within=5)
    try:
        await connection.login(peer.username, SECRET)
        await peer.send_raw(b"Event: Newchannel\r\nUniqueid: 1.1\r\n\r\n<html>502 Bad Gateway</html>\r\n\r\n")
        assert (await connection.event())["Event"] == "FullyBooted"
        assert (await connection.event())["Event"] == "Newchannel"
        with pytest.raises(ami.ProtocolError, match="not 'Key: Value'"):
            await connection.event()
        with pytest.raises(ami.ProtocolError):
            await connection.action("Ping")
    finally:
        await connection.close()


async def test_a_peer_that_closes_mid_event_is_a_lost_connection(peer: AmiPeer) -> None:
    connection = await ami.Connection.open(peer.url(), within=5)
    try:
        await connection.login(peer.username, SECRET)
        await peer.send_raw(b"Event: Hangup\r\nChannel: PJSIP/201-0000002b\r\n")
        await peer.stop()
        assert (await connection.event())["Event"] == "FullyBooted"
        with pytest.raises(ami.ConnectionLost, match="middle of a message"):
            await connection.event()
    finally:
        await connection.close()


async def test_a_silent_peer_is_dropped_and_one_that_answers_pings_is_kept(peer: AmiPeer) -> None:
    connection = await ami.Connection.open(peer.url(), within=5)
    try:
        await connection.login(peer.username, SECRET)
        alive = asyncio.create_task(connection.keepalive(ping_seconds=0.05, silence_seconds=0.5))
        await until(lambda: sum(a["Action"] == "Ping" for a in peer.actions) >= 12, what="a dozen pings")
        assert not alive.done()  # it answered each ping, so it was never silent for long
        peer.answer_pings = False
        with pytest.raises(ami.ConnectionLost, match="no word from Asterisk"):
            await asyncio.wait_for(alive, 10)
    finally:
        await connection.close()


async def test_a_flood_of_events_is_bounded_and_ends_the_connection(peer: AmiPeer) -> None:
    connection = await ami.Connection.open(peer.url(), within=5, backlog=500)
    try:
        await connection.login(peer.username, SECRET)
        await peer.send({"Event": "Newexten", "Uniqueid": f"1.{n}", "Application": "Playback"} for n in range(2000))
        await until(lambda: connection.closed, what="the backlog to overflow")
        taken = 0
        with pytest.raises(ami.ProtocolError, match="cannot keep up"):
            while True:
                await connection.event()
                taken += 1
        assert taken <= 501  # what was read before the overflow, no more
    finally:
        await connection.close()


async def test_an_endless_line_is_refused_without_reading_it_into_memory(peer: AmiPeer) -> None:
    connection = await ami.Connection.open(peer.url(), within=5)
    try:
        await connection.login(peer.username, SECRET)
        peer_task = asyncio.create_task(peer.send_raw(b"Event: " + b"A" * (4 * 1024 * 1024)))
        with pytest.raises(ami.ProtocolError, match="longer than"):
            while True:
                await connection.event()
        # The stream stops reading past twice its limit (plus what one read of the socket brought):
        # the 4 MiB line is not collected.
        buffered = len(connection._reader._buffer)  # type: ignore[attr-defined]
        assert buffered <= 2 * (ami.MAX_LINE + 2) + 256 * 1024
        peer_task.cancel()
    finally:
        await connection.close()


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return key, cert


async def test_amis_speaks_tls_and_checks_the_certificate(tmp_path: Path) -> None:
    key, cert = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    peer = AmiPeer(secret=SECRET, tls=server_context)
    await peer.start()
    try:
        trusted = parse_url(f"amis://console:{SECRET}@127.0.0.1:{peer.port}?cafile={cert}")
        connection = await ami.Connection.open(trusted, within=5)
        try:
            await connection.login(trusted.username, trusted.secret)
        finally:
            await connection.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await ami.Connection.open(parse_url(f"amis://console:{SECRET}@127.0.0.1:{peer.port}"), within=5)
        unchecked = parse_url(f"amis://console:{SECRET}@127.0.0.1:{peer.port}?verify=off")
        connection = await ami.Connection.open(unchecked, within=5)
        await connection.close()
    finally:
        await peer.stop()


# -- the connector's side of failures ---------------------------------------------------------------

@pytest.fixture
async def sqlite_ctx(sqlite_url: str) -> AsyncIterator[Context]:
    """One database is enough where only the connection is under test."""
    db = Database(sqlite_url)
    try:
        yield Context(db=db, notify=RecordingNotifier(), region="NL")
    finally:
        await db.close()


async def _running(connector: AsteriskConnector) -> asyncio.Task[None]:
    return asyncio.create_task(connector.run())


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_refused_login_fails_with_asterisks_message_and_waits_the_longest(
        peer: AmiPeer, sqlite_ctx: Context, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    connector = AsteriskConnector(sqlite_ctx, peer.url(secret="Wr0ngSecret!"), "node-a", backoff=(0.01, 30.0),
                                  use_lease=False)
    task = await _running(connector)
    try:
        await until(lambda: connector.state.state == "failing", what="the state to fail")
        assert "Authentication failed" in (connector.state.last_error or "")
        assert connector.state.failures == 1 and peer.refused == 1
        assert connector._failed(ami.LoginFailed("Login", "Authentication failed")) >= 15.0
        assert connector._failed(ConnectionRefusedError()) < 1.0
    finally:
        await _stop(task)
    assert connector.state.state == "off"
    assert "Wr0ngSecret!" not in caplog.text and "Wr0ngSecret!" not in (connector.state.last_error or "")


async def test_garbage_silence_and_a_closed_peer_each_end_in_a_reconnect(peer: AmiPeer, sqlite_ctx: Context) -> None:
    connector = AsteriskConnector(sqlite_ctx, peer.url(), "node-a", ping_seconds=0.05, silence_seconds=0.6,
                                  backoff=(0.01, 0.05), use_lease=False, resync_seconds=None)
    task = await _running(connector)
    try:
        await until(lambda: connector.state.state == "connected", what="connected")
        await peer.send_raw(b"GET / HTTP/1.1\r\n\r\n")
        await until(lambda: peer.logins >= 2 and connector.state.state == "connected", what="a reconnect")
        assert "not 'Key: Value'" in (connector.state.last_error or "")
        peer.answer_pings = False
        await until(lambda: "no word from Asterisk" in (connector.state.last_error or ""), what="silence")
        peer.answer_pings = True
        await until(lambda: connector.state.state == "connected", what="connected again")
        await peer.stop()
        await until(lambda: connector.state.state == "failing", what="failing without a peer")
        await peer.start()
        await until(lambda: connector.state.state == "connected", what="back after the peer came back")
        resyncs = sum(a["Action"] == "CoreShowChannels" for a in peer.actions)
        assert resyncs == peer.logins  # every (re)connect resyncs
    finally:
        await _stop(task)
