"""Strict JSON for input podwatch did not write (`podwatch.wire.loads`): every way a body can break
JSON or Python's reader is a `MalformedMessage` naming it, in the processor's, deliver's and the
manager-answer paths alike."""

from __future__ import annotations

import json

import httpx
import pytest

from podwatch import wire
from podwatch.control import parse_command
from podwatch.errors import ConfigError, MalformedMessage
from podwatch.restate import RestateClient

DEEP = '{"schema_version": 1, "kind": "pod", "x": ' + "[" * 10_000 + "]" * 10_000 + "}"

#: name → (body, what the error says)
BAD: dict[str, tuple[str | bytes, str]] = {
    "recursion depth": (DEEP, "nested too deeply"),
    "depth past the limit": ('{"kind": "pod", "x": ' + "[" * 150 + "]" * 150 + "}", "more than 100 levels"),
    "invalid UTF-8": (b'{"kind": "pod", "name": "a\xff\xfe"}', "not valid UTF-8"),
    "lone surrogate": ('{"kind": "pod", "name": "a\\ud800"}', "lone UTF-16 surrogate"),
    "huge integer": ('{"kind": "pod", "n": ' + "9" * 5000 + "}", "4300 digits"),
    "huge float": ('{"kind": "pod", "n": 1e999}', "out of range"),
    "NaN": ('{"kind": "pod", "n": NaN}', "NaN is not a JSON number"),
    "Infinity": ('{"kind": "pod", "n": -Infinity}', "-Infinity is not a JSON number"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_loads_names_each_problem(name: str) -> None:
    body, says = BAD[name]
    with pytest.raises(MalformedMessage, match=says) as raised:
        wire.loads(body)
    assert raised.value.reason == "malformed"


@pytest.mark.parametrize("name", sorted(BAD))
def test_parse_envelope_and_control_commands_quarantine_it_as_malformed(name: str) -> None:
    body, says = BAD[name]
    with pytest.raises(MalformedMessage, match=says):
        wire.parse_envelope(body)
    if isinstance(body, str):
        with pytest.raises(MalformedMessage, match=says):
            parse_command(body)


def test_loads_reads_good_json_as_json_does() -> None:
    text = '{"a": [1, 2.5, -3e2, "\\u00e9", "\\ud83d\\ude00", null, true]}'
    assert wire.loads(text) == json.loads(text)
    assert wire.loads(text.encode()) == json.loads(text)
    nested = '{"x": ' + "[" * 99 + "]" * 99 + "}"  # 100 levels: the limit
    assert wire.loads(nested) == json.loads(nested)


@pytest.mark.parametrize(
    "answer", ['{"batch_size": NaN}', '{"batch_size": ' + "[" * 10_000 + "]" * 10_000 + "}", b'{"v": "\xff"}']
)
def test_an_unreadable_remote_config_answer_is_a_config_error_naming_why(answer: str | bytes) -> None:
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=answer)))
    client = RestateClient(base_url="http://restate.test:8080", http=http)
    with pytest.raises(ConfigError, match="remote config from the manager for 'prod': body is"):
        client.get_remote_config("prod")
