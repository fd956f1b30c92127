"""The wire contract of the `object` and `hook` envelopes (docs/internals.md, "Pod-events
envelopes: kinds"): the samples in events/processor/kinds.json parse on both of the processor's
paths to the same envelope, and a bad one is refused with an error naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.lambda_runtime import load_event
from podwatch import ids
from podwatch.errors import MalformedMessage
from podwatch.models import EnvelopeAdapter, HookEnvelope, ObjectEnvelope
from podwatch.wire import encode_envelope, parse_envelope

SAMPLE = "events/processor/kinds.json"


def _bodies() -> list[str]:
    return [r["body"] for r in load_event(SAMPLE)["Records"]]


def test_every_good_sample_parses_the_same_on_the_strict_and_the_lax_path() -> None:
    kinds = []
    for body in _bodies():
        raw = json.loads(body)
        if raw["kind"] == "object" and "uid" not in raw["payload"]:
            continue  # the malformed one, below
        if raw["kind"] == "hook" and raw["payload"]["name"] == "typo":
            kinds.append("hook")  # well-formed on the wire; the processor refuses its spec
        else:
            kinds.append(raw["kind"])
        lax = parse_envelope(body)
        assert EnvelopeAdapter.validate_json(body, strict=True) == lax
        assert encode_envelope(lax) == body  # what the relay writes reads back byte for byte
    assert kinds.count("object") == 5
    assert kinds.count("hook") == 3


def test_an_object_event_id_is_its_change_and_kind() -> None:
    for body in _bodies():
        raw = json.loads(body)
        if raw["kind"] != "object" or "uid" not in raw["payload"]:
            continue
        envelope = parse_envelope(body)
        assert isinstance(envelope, ObjectEnvelope)
        obj = envelope.payload
        assert envelope.event_id == ids.object_event_id(
            envelope.cluster_id, obj.kind, obj.uid, obj.resource_version, obj.watch_type
        )
    # the same uid and resourceVersion of another kind is another change
    assert ids.object_event_id("c", "Node", "u", "1") != ids.object_event_id("c", "Hook", "u", "1")


def _object() -> dict[str, Any]:
    return next(json.loads(b) for b in _bodies() if json.loads(b)["kind"] == "object")


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (lambda p: p.pop("uid"), "object.payload.uid: Field required"),
        (lambda p: p.update(kind=""), "object.payload.kind"),
        (lambda p: p.update(secret_data="x"), "object.payload.secret_data: Extra inputs are not permitted"),
        (lambda p: p.update(snapshot=["not", "an", "object"]), "object.payload.snapshot"),
        (lambda p: p.update(watch_type="BOOKMARK"), "object.payload.watch_type"),
    ],
)
def test_a_bad_object_envelope_is_malformed_and_the_error_names_the_field(change: Any, names: str) -> None:
    raw = _object()
    change(raw["payload"])
    with pytest.raises(MalformedMessage, match="object envelope does not match the contract") as raised:
        parse_envelope(json.dumps(raw))
    assert names in str(raised.value)


def test_a_hook_envelope_needs_its_name_and_may_omit_the_object_when_deleted() -> None:
    deleted = next(json.loads(b) for b in _bodies() if '"kind":"hook"' in b and '"watch_type":"DELETED"' in b)
    deleted["payload"].pop("hook", None)
    envelope = parse_envelope(json.dumps(deleted))
    assert isinstance(envelope, HookEnvelope)
    assert envelope.payload.hook is None
    del deleted["payload"]["name"]
    with pytest.raises(MalformedMessage, match=r"hook\.payload\.name: Field required"):
        parse_envelope(json.dumps(deleted))
