"""Issue 14 item 5: secret-looking values in free text are redacted at the relay, before anything
leaves the cluster, and labels go out by allowlist (the rest only counted). A property test puts
generated secrets in every free-text field of a pod and of an Event, and finds none in what the
relay sends, on the fast path and the full path alike."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podwatch.wire import parse_envelope
from podwatch_relay.pipeline import Relay
from podwatch_relay.redact import MARKER, LabelAllowlist, redact
from podwatch_relay.sink import SendResult
from tests.fakeapi.pods import container_status, core_event, pod

# --- examples ---------------------------------------------------------------------------------------

REDACTED = {
    "DB_PASSWORD=hunter2 connect failed": "DB_PASSWORD=[redacted] connect failed",
    "Authorization: Bearer eyJhbGciOi.abc-def": "Authorization: [redacted]",
    "retrying with basic dXNlcjpwYXNz": "retrying with basic [redacted]",
    "key AKIAIOSFODNN7EXAMPLE leaked": "key [redacted] leaked",
    "glued:ASIAIOSFODNN7EXAMPLEd": "glued:[redacted]d",
    "dial postgres://app:hunter2@db:5432/app": "dial postgres://[redacted]@db:5432/app",
    "pulling deploy:s3cr3t@registry.example.com/app:1": "pulling [redacted]@registry.example.com/app:1",
    '{"client_secret": "abc123", "user": "x"}': '{"client_secret": [redacted], "user": "x"}',
    "token='abc def' rest": "token=[redacted] rest",
    "apiKey=1234&user=me": "apiKey=[redacted]&user=me",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG": "aws_secret_access_key = [redacted]",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- tail": "[redacted] tail",
    "log tail:\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNza": "log tail:\n[redacted]",
}
#: What the kubelet and controllers write: left alone
CLEAN = [
    "CrashLoopBackOff",
    "back-off 5m0s restarting failed container=app pod=api-7d9f8b6c5d-x2x7q_shop(5f3c)",
    "containers with unready status: [app sidecar]",
    "Readiness probe failed: HTTP probe failed with statuscode: 500",
    'Failed to pull image "nginx:1.25@sha256:0a1b": rpc error: code = NotFound',
    "registry:5000/team/app:1.0@sha256:0a1b2c",
    "0/3 nodes are available: 3 Insufficient memory. preemption: 0/3 nodes are available",
    "mail alerts@example.com about it",
]


@pytest.mark.parametrize(("text", "expected"), REDACTED.items())
def test_each_kind_of_secret_is_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize("text", CLEAN)
def test_ordinary_messages_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_labels_go_by_allowlist_and_the_rest_is_counted() -> None:
    allowlist = LabelAllowlist(["team-id"])
    labels = {
        "app": "api",
        "app.kubernetes.io/name": "api",
        "pod-template-hash": "7d9f8b6c5d",
        "team-id": "AKIAIOSFODNN7EXAMPLE",
        "api-key": "s3cr3t",
        "owner-email": "x",
    }
    kept, omitted = allowlist.apply(labels)
    assert kept == {
        "app": "api",
        "app.kubernetes.io/name": "api",
        "pod-template-hash": "7d9f8b6c5d",
        "team-id": MARKER,
    }
    assert omitted == 2


# --- the property: no generated secret gets past the relay -----------------------------------------

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=40)
_WORDS = st.lists(st.from_regex(r"[a-z]{1,8}", fullmatch=True), max_size=5).map(" ".join)
#: secret values: no blank, quote or `&` (where a value ends, see redact.py), no `/` or `@`
_VALUE = st.from_regex(r"[A-Za-z0-9!#$%()*+,.:;<=>?\[\]^_`{|}~-]{12,30}", fullmatch=True)
_KEYS = st.sampled_from(
    ["password", "DB_PASSWORD", "passwd", "pwd", "secret", "client_secret", "token", "api_key", "apiKey",
     "API-KEY", "access_key", "private_key", "credentials", "Authorization"]
)  # fmt: skip


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, str]:
    """(text holding a secret, the part of it that must never be seen again)."""
    kind = draw(st.sampled_from(["aws", "bearer", "pair", "json", "pem", "url", "image"]))
    value = draw(_VALUE)
    if kind == "aws":
        key = draw(st.sampled_from(["AKIA", "ASIA"])) + draw(st.from_regex(r"[A-Z0-9]{16}", fullmatch=True))
        return key, key
    if kind == "bearer":
        token = draw(st.from_regex(r"[A-Za-z0-9._~+/=-]{12,40}", fullmatch=True))
        return f"{draw(st.sampled_from(['Bearer', 'bearer', 'Basic']))} {token}", token
    if kind == "pair":
        return f"{draw(_KEYS)}{draw(st.sampled_from(['=', ': ', ' = ', ':']))}{value}", value
    if kind == "json":
        return f'{{"{draw(_KEYS)}": "{value}"}}', value
    if kind == "pem":
        body = draw(st.from_regex(r"[A-Za-z0-9+/]{40,64}", fullmatch=True))
        kind_name = draw(st.sampled_from(["", "RSA ", "EC ", "OPENSSH "]))
        end = f"\n-----END {kind_name}PRIVATE KEY-----" if draw(st.booleans()) else ""
        return f"-----BEGIN {kind_name}PRIVATE KEY-----\n{body}{end}", body
    password = draw(st.from_regex(r"[A-Za-z0-9!$%*+.:;=?_~-]{12,30}", fullmatch=True))
    user = draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
    if kind == "url":
        return (
            f"{draw(st.sampled_from(['https', 'postgres', 'redis']))}://{user}:{password}@db.example.com/x",
            password,
        )
    return f"{user}:{password}@registry.example.com/app:1", password


@st.composite
def free_text(draw: st.DrawFn) -> tuple[str, str]:
    """A secret inside ordinary words."""
    text, needle = draw(secrets())
    return f"{draw(_WORDS)} {text} {draw(_WORDS)}".strip(), needle


#: the pod's free-text fields (and those that never leave: annotations), by a short name
FIELDS = [
    "pod.message", "pod.reason", "waiting.message", "waiting.reason", "terminated.message",
    "terminated.reason", "last.reason", "last.message", "image", "condition.message",
    "condition.reason", "label.allowed", "label.other", "label.key", "annotation",
    "event.message", "event.reason", "event.source",
]  # fmt: skip


def _pod_with(texts: dict[str, str], rv: str) -> dict[str, Any]:
    app = container_status("app", restarts=2, waiting="CrashLoopBackOff", last_terminated=("Error", 1))
    app["state"]["waiting"] |= {"reason": texts["waiting.reason"], "message": texts["waiting.message"]}
    app["lastState"]["terminated"] |= {"reason": texts["last.reason"], "message": texts["last.message"]}
    app["image"] = texts["image"]
    done = container_status("job", terminated=("Error", 2))
    done["state"]["terminated"] |= {
        "reason": texts["terminated.reason"],
        "message": texts["terminated.message"],
    }
    obj = pod(
        "shop",
        "api-1",
        rv=rv,
        containers=[app, done],
        reason=texts["pod.reason"],
        message=texts["pod.message"],
    )
    obj["status"]["conditions"][1] |= {
        "reason": texts["condition.reason"],
        "message": texts["condition.message"],
    }
    obj["metadata"]["labels"] |= {"app": texts["label.allowed"], "api-key": texts["label.other"]}
    obj["metadata"]["labels"][texts["label.key"]] = "x"
    obj["metadata"]["annotations"] = {"note": texts["annotation"]}
    return obj


def _event_with(texts: dict[str, str]) -> dict[str, Any]:
    event = core_event(reason=texts["event.reason"], message=texts["event.message"])
    event["source"] = {"component": texts["event.source"]}
    return event


class _Sink:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, bodies: Sequence[str]) -> SendResult:
        self.bodies.extend(bodies)
        return SendResult(sent=len(bodies))


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (str(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def relay_bodies(texts: dict[str, str], *, fast: bool) -> list[str]:
    """What the relay sends for the pod (ADDED, then a change) and an Event holding `texts`."""
    sink = _Sink()
    relay = Relay(sink=sink, cluster_id="c1", relay_version="t")
    if not fast:
        relay._fast_pod = lambda *args: None  # type: ignore[method-assign]
    first, changed = _pod_with(texts, "1"), _pod_with(texts, "2")
    changed["status"]["containerStatuses"][0]["restartCount"] = 3
    for line in (
        {"type": "ADDED", "object": first},
        {"type": "MODIFIED", "object": changed},
        {"type": "ADDED", "object": _event_with(texts)},
    ):
        assert relay.handle_line(orjson.dumps(line)) == "forwarded"
    relay.flush()
    return sink.bodies


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({name: free_text() for name in FIELDS}), _TEXT)
def test_no_generated_secret_gets_past_the_relay(cases: dict[str, tuple[str, str]], noise: str) -> None:
    texts = {name: text for name, (text, _) in cases.items()}
    texts["pod.message"] += noise
    fast, full = relay_bodies(texts, fast=True), relay_bodies(texts, fast=False)

    def stable(body: str) -> dict[str, Any]:
        envelope = json.loads(body)
        envelope.pop("sent_at")
        envelope["payload"].pop("observed_at")
        return envelope

    # Both paths send the same (redacted) envelopes, which the processor's parser takes
    assert [stable(b) for b in fast] == [stable(b) for b in full]
    for body in fast:
        parse_envelope(body)
    # And no secret is anywhere in them, as sent
    sent = "\n".join(s for body in fast for s in _strings(json.loads(body)))
    for name, (_, needle) in cases.items():
        assert needle not in sent, f"{name}: {needle!r} leaked"
    # The labels not allowed are counted
    pods = [json.loads(b)["payload"] for b in fast[:2]]
    assert all(p["labels_omitted"] >= 2 for p in pods)
