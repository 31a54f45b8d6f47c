import json
import logging

from console import logs


def test_json_lines_carry_the_request_and_conversation_ids() -> None:
    record = logging.LogRecord("console.conversations", logging.WARNING, "", 0, "rings unknown agent %r",
                               ("Piet",), None)
    token_r, token_c = logs.request_id.set("req-1"), logs.conversation_id.set("call:42")
    try:
        logs.ContextFilter().filter(record)
    finally:
        logs.request_id.reset(token_r)
        logs.conversation_id.reset(token_c)
    line = json.loads(logs.JSONFormatter().format(record))
    assert line["request"] == "req-1" and line["conversation"] == "call:42"
    assert line["message"] == "rings unknown agent 'Piet'" and line["level"] == "warning"
