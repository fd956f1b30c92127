"""RelaySettings from PODWATCH_* variables, and the watch stream's line splitting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from podwatch_relay.settings import RelaySettings
from podwatch_relay.watch import iter_lines


def test_settings_come_from_podwatch_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODWATCH_QUEUE_URL", "http://127.0.0.1:5000/123/pod-events")
    monkeypatch.setenv("PODWATCH_NAMESPACES", " shop, payments ,shop")
    monkeypatch.setenv("PODWATCH_INITIAL_SYNC_MODE", "troubled")

    settings = RelaySettings()

    assert settings.queue_url == "http://127.0.0.1:5000/123/pod-events"
    assert settings.namespace_list == ("shop", "payments")
    assert settings.initial_sync_mode == "troubled"
    assert settings.cluster_id is None
    assert RelaySettings.model_fields["inactivity_timeout_seconds"].description  # every field says why


def test_all_namespaces_is_the_default() -> None:
    assert RelaySettings().namespace_list is None


@pytest.mark.parametrize(
    "bad",
    [{"namespaces": "*,shop"}, {"namespaces": " , "}, {"sqs_batch_size": 11}, {"request_timeout_seconds": 0}],
)
def test_invalid_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RelaySettings(**bad)


class _Chunks:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def stream(self, amt: int | None = None, decode_content: bool = True) -> Iterator[bytes]:
        yield from self.chunks


def test_stream_lines_are_split_across_chunks() -> None:
    # Given a chunked stream whose chunks do not align with lines (and a blank keep-alive line)
    response = _Chunks([b'{"a":', b'1}\n{"b"', b":2}\n\n", b'{"c":3}'])

    # Then every complete line comes out once, the last one even without a newline
    assert list(iter_lines(response)) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
