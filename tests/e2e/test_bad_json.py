"""Bodies that break JSON or Python's reader, through the real local parts: each is quarantined
`malformed` with what is wrong at its first receive (never retried), by the processor and by the
deliver function; `make run` reports such watch lines instead of crashing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from local.processes import ROOT
from local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A stack of its own: the poison bodies this module leaves in the DLQs stay out of the others'."""
    with LocalStack(
        run_dir=tmp_path_factory.mktemp("bad-json"), max_batching_window_seconds=0.5, retry_delay_seconds=1
    ) as stack:
        yield stack


def bad_bodies(marker: str) -> dict[str, tuple[str, str]]:
    """name → (SQS body, what the quarantine's error says); each names `marker`."""
    head = f'{{"schema_version": 1, "kind": "pod", "marker": "{marker}"'
    return {
        "deep": (f'{head}, "x": {"[" * 10_000}{"]" * 10_000}}}', "nested too deeply"),
        "surrogate": (f'{head}, "x": "\\udc80"}}', "lone UTF-16 surrogate"),
        "huge-int": (f'{head}, "x": {"9" * 5000}}}', "4300 digits"),
        "huge-float": (f'{head}, "x": 1e999}}', "out of range"),
        "nan": (f'{head}, "x": NaN}}', "NaN is not a JSON number"),
        "infinity": (f'{head}, "x": Infinity}}', "Infinity is not a JSON number"),
    }


@pytest.mark.parametrize("queue", ["PodEventsQueue", "DeliveriesQueue"])
def test_each_unreadable_body_is_quarantined_malformed_at_its_first_receive(
    local_stack: LocalStack, queue: str
) -> None:
    marker = f"bad-json-{uuid.uuid4().hex}"
    bodies = bad_bodies(marker)
    if queue == "DeliveriesQueue":  # a control command's shape, so deliver reads it as one
        bodies = {n: (b.replace('"kind": "pod"', '"kind": "enroll"'), s) for n, (b, s) in bodies.items()}
    sent = {local_stack.send_raw(body, queue=queue): name for name, (body, _) in bodies.items()}

    result = local_stack.pump_until_idle(timeout=90)

    assert result.failed_records == 0  # none went back to the queue: permanent at first receive
    dlq = {m.attributes["source_message_id"]: m for m in local_stack.dlq_messages() if marker in m.body}
    assert set(dlq) == set(sent)
    for message_id, message in dlq.items():
        name = sent[message_id]
        assert message.reason == "malformed", name
        assert bodies[name][1] in (message.error or ""), (name, message.error)


def test_make_run_reports_unreadable_watch_lines_and_goes_on(tmp_path: Path) -> None:
    sample = (ROOT / "events/replay/sample-stream.jsonl").read_bytes().splitlines()
    bad = [
        b'{"type": "ADDED", "object": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b'{"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "a\xff"}}}',
        b'{"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "a\\ud800"}}}',
        b'{"type": "ADDED", "object": {"kind": "Pod", "metadata": {"generation": ' + b"9" * 5000 + b"}}}",
        b'{"type": "ADDED", "object": {"kind": "Pod", "metadata": {"generation": NaN}}}',
    ]
    replay = tmp_path / "mixed.jsonl"
    replay.write_bytes(b"\n".join([*bad, *sample[:20]]) + b"\n")
    summary_path = tmp_path / "summary.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("layers/podwatch", "relay", "cli", ".")),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    proc = subprocess.run(
        [
            sys.executable, "-m", "local.run",
            "--replay", str(replay),
            "--summary", str(summary_path),
            "--max-batching-window", "0.5",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    summary = json.loads(summary_path.read_text())
    first = summary["events"][: len(bad)]
    assert all(e["relay"].startswith("malformed") for e in first), first
    assert all(e["error"] for e in first), first
    assert summary["input_events"] == len(bad) + 20
    assert "nested too deeply" in proc.stdout
