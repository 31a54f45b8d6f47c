"""Mailbox settings: the console's part of the URL, and errors a person can act on."""

from __future__ import annotations

import pytest

from integrations.email.pipeline import mailbox_setting


def test_the_console_takes_its_options_and_hands_the_reader_the_rest() -> None:
    found = mailbox_setting("Support", "imaps://jan%40x.nl:geheim%23@imap.x.nl/INBOX?queue=service&address="
                                       "support@x.nl&on_reply=new&subaddress=1&acknowledge=1&language=nl&poll=30")
    box = found.box
    assert (box.name, box.queue, box.address, box.on_reply_to_closed) == ("support", "service", "support@x.nl", "new")
    assert box.subaddress and box.acknowledge and box.language == "nl"
    assert found.scheme == "imaps"
    assert found.reader_url == "imaps://jan%40x.nl:geheim%23@imap.x.nl/INBOX?poll=30"


@pytest.mark.parametrize(("url", "says"), [
    ("pop3://u:p@x/INBOX?address=s@x.nl", "must start with imaps://"),
    ("imaps://u:secret-pw@x/INBOX", "?address= must be the mailbox's own address"),
    ("imaps://u:secret-pw@x/INBOX?address=a@x.nl,b@x.nl", "?address= must be"),
    ("imaps://u:secret-pw@x/INBOX?address=s@x.nl&on_reply=maybe", "on_reply must be reopen or new"),
    ("imaps://u:secret-pw@x/INBOX?address=s@x.nl&language=de", "language must be en or nl"),
])
def test_a_wrong_setting_names_itself_and_never_the_password(url: str, says: str) -> None:
    with pytest.raises(ValueError, match="CONSOLE_MAILBOX_SUPPORT") as refused:
        mailbox_setting("support", url)
    assert says in str(refused.value) and "secret-pw" not in str(refused.value)
