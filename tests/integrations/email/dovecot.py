"""A throwaway Dovecot IMAP server for one test: its own config, ports, mail and sockets.

Debian's dovecot-imapd is a real IMAP server with IDLE, MOVE, UIDPLUS and STARTTLS, so the
poller is tested against the server behaviour it meets in production rather than against a mock
of it. Each server lives in a temp dir of its own (config, base_dir with the sockets, state,
log, maildirs) and listens on free ports of 127.0.0.1, so it collides neither with the system's
Dovecot (which need not run) nor with another test's. It is started in the foreground
(`dovecot -F -c ...`) as a child process and stopped with SIGTERM.

The temp dir is made under /tmp on purpose: Dovecot's UNIX sockets live in base_dir, and a
socket path may not be longer than 107 bytes, which pytest's tmp_path easily is.

Running as root, Dovecot refuses to give mail to uid 0, so the mail processes run as `nobody`
and the maildir is theirs; as another user, every process runs as that user.

Mails are delivered with IMAP APPEND (stdlib imaplib) as a mail client or an MDA would; the
UIDVALIDITY of a folder is changed with `doveadm mailbox update --uid-validity`, which works
while the server runs (the state in which a server rebuilds or restores a mailbox).
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlencode

from tests.conftest import free_port

DOVECOT = Path("/usr/sbin/dovecot")
DOVEADM = Path("/usr/bin/doveadm")
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"  # dovecot-core depends on openssl
USER = "agent@example.test"
# Characters that must be percent-encoded in a URL, so the tests also check parse_url's decoding.
PASSWORD = "s3cr#t/p@ss?w0rd"


def version() -> str:
    """`dovecot --version`, such as '2.3.19.1 (9b53102964)'."""
    return subprocess.run([str(DOVECOT), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def make_mail(subject: str, *, body: str = "Hello,\r\n\r\nplease call me back.\r\n", message_id: str | None = None,
              extra: bytes = b"") -> tuple[str, bytes]:
    """A small RFC 5322 mail with CRLF line ends (as IMAP carries it); its Message-ID and bytes."""
    message_id = message_id or f"{secrets.token_hex(8)}@test.example"
    raw = (f"From: Customer <customer@example.org>\r\nTo: support@example.nl\r\nSubject: {subject}\r\n"
           f"Message-ID: <{message_id}>\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n").encode() + body.encode() + extra
    return message_id, raw


def _check(result: tuple[str, Sequence[object]], what: str) -> Sequence[object]:
    kind, data = result
    assert kind == "OK", f"{what}: {kind} {data}"
    return data


class Dovecot:
    """One Dovecot with one user (USER, PASSWORD), plain IMAP on `port` (STARTTLS offered) and
    implicit TLS on `tls_port`, with a self-signed certificate.

    `capability` replaces the IMAP capabilities the server announces after login, to play an
    older server (no IDLE, no MOVE, no UIDPLUS); the server still understands every command.
    """

    def __init__(self, *, capability: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-", dir="/tmp"))
        self.root.chmod(0o755)  # the mail processes run as another user and must reach the maildir
        self.port = free_port()
        self.tls_port = free_port()
        self.capability = capability
        self.log = self.root / "dovecot.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._write_config()

    # -- configuration ---------------------------------------------------------------------------

    def _write_config(self) -> None:
        root = self.root
        for sub in ("run", "state", "mail"):
            (root / sub).mkdir()
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            mail_uid, mail_gid = user.pw_uid, user.pw_gid
            os.chown(root / "mail", mail_uid, mail_gid)
            users = ""  # dovecot and dovenull, which the Debian package made
        else:
            mail_uid, mail_gid = os.geteuid(), os.getegid()
            me, group = pwd.getpwuid(mail_uid).pw_name, grp.getgrgid(mail_gid).gr_name
            users = (f"default_internal_user = {me}\ndefault_internal_group = {group}\n"
                     f"default_login_user = {me}\n")
        (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        (root / "passwd").chmod(0o644)
        subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"), "-days", "2",
                        "-subj", "/CN=localhost"], check=True, capture_output=True)
        tls = f"ssl = yes\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem\n"
        listeners = "".join(f"  inet_listener {name} {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n"
                            for name, port in (("imap", self.port), ("imaps", self.tls_port)))
        chroot = "" if os.geteuid() == 0 else "  chroot =\n"
        capability = f"imap_capability = {self.capability}\n" if self.capability else ""
        (root / "dovecot.conf").write_text(f"""\
protocols = imap
listen = 127.0.0.1
instance_name = dovecot-test-{root.name}
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log}
info_log_path = {self.log}
{users}{tls}disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
mail_uid = {mail_uid}
mail_gid = {mail_gid}
first_valid_uid = 1
{capability}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={root}/mail/%u
}}
service imap-login {{
{chroot}{listeners}}}
service anvil {{
{chroot}}}
""")

    # -- process -----------------------------------------------------------------------------------

    def start(self, timeout: float = 20) -> None:
        """Start the server and wait until it accepts connections."""
        assert self.process is None, "already running"
        with open(self.root / "stdout.log", "ab") as out:
            self.process = subprocess.Popen([str(DOVECOT), "-F", "-c", str(self.root / "dovecot.conf")],
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                self.process = None
                raise RuntimeError(f"dovecot exited at start:\n{self.logs()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not come up in {timeout} s:\n{self.logs()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server and its sessions (the IMAP sessions get `* BYE Server shutting down.`).

        Dovecot's master does not wait for the IMAP processes, which go on serving their sessions
        for up to 10 s; the test wants the server gone, so the whole process group gets SIGTERM
        (Dovecot was started as the leader of a session of its own), and SIGKILL what is left.
        """
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove everything it had."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        parts = [path.read_text(errors="replace") for path in (self.root / "stdout.log", self.log) if path.exists()]
        return "\n".join(parts)[-4000:]

    # -- what a test needs -------------------------------------------------------------------------

    def url(self, folder: str = "INBOX", *, scheme: str = "imap", **query: object) -> str:
        """The poller's URL for this server, such as imap://agent...:s3cr%23t...@127.0.0.1:PORT/INBOX."""
        port = self.tls_port if scheme == "imaps" else self.port
        text = f"{scheme}://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/{quote(folder)}"
        return text + ("?" + urlencode(query) if query else "")

    @contextmanager
    def imap(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in stdlib client, as another mail program on the same mailbox."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            _check(client.login(USER, PASSWORD), "login")
            yield client
        finally:
            try:
                client.logout()
            except (imaplib.IMAP4.error, OSError):
                client.shutdown()

    def create(self, folder: str) -> None:
        with self.imap() as client:
            _check(client.create(folder), f"CREATE {folder}")

    def deliver(self, *mails: bytes, folder: str = "INBOX", seen: bool = False) -> None:
        """Append the mails, unread (or read, `seen`), in this order (so they get rising UIDs)."""
        with self.imap() as client:
            for raw in mails:
                _check(client.append(folder, "(\\Seen)" if seen else None, None, raw), "APPEND")

    def deliver_new(self, count: int, prefix: str = "mail", folder: str = "INBOX") -> list[str]:
        """Deliver `count` small mails; their Message-IDs in delivery order."""
        made = [make_mail(f"{prefix} {n}") for n in range(count)]
        self.deliver(*(raw for _, raw in made), folder=folder)
        return [message_id for message_id, _ in made]

    def flags(self, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID -> flags of every mail in the folder (read with EXAMINE, which changes nothing)."""
        with self.imap() as client:
            _check(client.select(folder, readonly=True), f"EXAMINE {folder}")
            kind, data = client.uid("FETCH", "1:*", "(UID FLAGS)")
            assert kind == "OK", data
            found: dict[int, set[str]] = {}
            for item in data:
                uid = re.search(rb"UID (\d+)", item) if isinstance(item, bytes) else None
                flags = re.search(rb"FLAGS \(([^)]*)\)", item) if isinstance(item, bytes) else None
                if uid and flags:
                    found[int(uid.group(1))] = set(flags.group(1).decode().split())
            return found

    def uids(self, folder: str = "INBOX") -> list[int]:
        return sorted(self.flags(folder))

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.imap() as client:
            data = _check(client.status(folder, "(UIDVALIDITY)"), f"STATUS {folder}")
            match = re.search(rb"UIDVALIDITY (\d+)", data[0]) if isinstance(data[0], bytes) else None
            assert match, data
            return int(match.group(1))

    def change_uidvalidity(self, folder: str = "INBOX") -> int:
        """Give the folder a new UIDVALIDITY (its mails keep their UIDs); the new value.

        What a server does when it rebuilt or restored a mailbox: every UID a client kept is void.
        Dovecot does not tell a session that has the folder selected; the next SELECT shows it.
        """
        new = self.uidvalidity(folder) + 1000
        subprocess.run([str(DOVEADM), "-c", str(self.root / "dovecot.conf"), "mailbox", "update", "-u", USER,
                        "--uid-validity", str(new), folder], check=True, capture_output=True, timeout=30)
        assert self.uidvalidity(folder) == new
        return new

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        context = ssl.create_default_context(cafile=str(self.root / "cert.pem"))
        context.check_hostname = False
        return context
