"""The timeline page in a real browser (Debian's Chromium, driven by pytest-playwright) on the local
stack after a replay: pick a namespace, see the crash-looping pod marked, open it, see its BackOff
Events and its notification, follow the pasted URL to the same view; keyboard only; a phone width;
and every `podwatch ui` command the docs show, run as written, serving the page to the browser.
No console error anywhere. Screenshots land in the test's output folder (test-results/...)."""

from __future__ import annotations

import os
import re
import shlex
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from local.historyapi import HistoryApiServer, recording_clock
from local.processes import ROOT, ManagedProcess, free_port
from local.stack import LocalStack
from podwatch.hooks.state import HookStore
from tests.integration.test_documented_commands import DOCS, commands_in_markdown, is_ui

pytestmark = pytest.mark.e2e

SAMPLE = "events/replay/sample-stream.jsonl"
NAMESPACE, POD = "payments", "payments-api-84c6d9f7b8-tq5vn"
#: the sample's first ten minutes (it is recorded on 2026-11-20 from 09:00 UTC)
WINDOW = "w=range&from=2026-11-20T08:59:00&to=2026-11-20T09:09:00"


#: a Hook of this module's own (cluster-wide, crash-loop): the panel lists its call
HOOK = """
apiVersion: kagent.dev/v1alpha2
kind: Hook
metadata: {name: NAME, namespace: ops}
spec:
  clusterWide: true
  agent: {protocol: "1.0"}
  eventConfigurations:
  - eventType: crash-loop
    agentId: ops/triage
    prompt: "{{.Namespace}}/{{.ResourceName}} crash-loops"
"""


@pytest.fixture(scope="module")
def hook(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"ui-{uuid.uuid4().hex[:6]}"
    path = tmp_path_factory.mktemp("hooks") / "hook.yaml"
    path.write_text(HOOK.replace("NAME", name))
    local_stack.apply_hooks(path)
    yield f"ops/{name}"
    assert local_stack.moto is not None
    store = HookStore(
        table_name=local_stack.queue_url("HooksTable"), client=local_stack.moto.client("dynamodb")
    )
    store.delete_rule(f"ops/{name}")  # the session's other tests see only their own hooks
    local_stack.in_function("HooksFunction", lambda module: module.reset())


@pytest.fixture(scope="module")
def replayed(local_stack: LocalStack, hook: str) -> tuple[HistoryApiServer, str]:
    cluster = f"e2e-ui-{uuid.uuid4().hex[:6]}"
    result = local_stack.replay(SAMPLE, cluster_id=cluster, recorded_time=True)
    local_stack.pump_until_idle(timeout=90)
    return local_stack.serve_history_api(clock=recording_clock(result.bodies)), cluster


@pytest.fixture
def problems(page: Page) -> list[str]:
    """Console errors and uncaught exceptions of the page, for the test to assert there are none."""
    seen: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in {"error", "warning"}:
            seen.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.append(f"page error: {error}"))
    return seen


def crash_row(page: Page) -> Any:
    return page.locator(f'.row[data-key="Pod/{POD}"]')


def test_pick_a_namespace_open_the_crash_looping_pod_and_paste_its_url(
    replayed: tuple[HistoryApiServer, str],
    hook: str,
    page: Page,
    browser: Browser,
    problems: list[str],
    output_path: str,
) -> None:
    api, cluster = replayed
    shots = Path(output_path)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{api.url}/#c={cluster}&{WINDOW}")
    expect(page.locator("#status")).to_contain_text("Choose a namespace")

    page.select_option("#ns", NAMESPACE)
    row = crash_row(page)
    expect(row).to_have_class("row incident")  # an open incident
    expect(row.locator('path.mark[data-status="crash-loop"]')).to_be_attached()
    expect(row.locator("path.tick.Warning")).to_be_attached()  # its BackOff Events
    expect(page.locator("#incidents")).to_contain_text(POD)
    page.screenshot(path=str(shots / "timeline-1280.png"))

    row.get_by_role("button").click()
    panel = page.locator("#panel")
    expect(panel).to_be_visible()
    expect(panel.locator("h2")).to_have_text(POD)
    expect(panel.locator(".notification")).to_have_count(1)
    expect(panel.locator(".notification")).to_contain_text("crash-loop")
    expect(panel.locator(".notification")).to_contain_text("opened")
    events = panel.locator("ol.events li")
    expect(events).to_have_count(5)
    expect(events.first).to_contain_text("BackOff x5")  # newest first
    expect(events.last).to_contain_text("BackOff x1")
    called = panel.locator("ol.hooks li", has_text=hook)  # the hook it made call its agent, once
    expect(called).to_contain_text("1 ok, 0 failed")
    expect(called).to_contain_text("crash-loop")
    page.screenshot(path=str(shots / "pod-panel-1280.png"))

    pasted = page.url
    assert f"pod={POD}" in pasted
    assert f"ns={NAMESPACE}" in pasted
    other = browser.new_page(viewport={"width": 1280, "height": 800})
    other_problems: list[str] = []
    other.on("console", lambda m: other_problems.append(m.text) if m.type == "error" else None)
    other.goto(pasted)
    expect(other.locator("#panel h2")).to_have_text(POD)
    expect(other.locator("#panel ol.events li")).to_have_count(5)
    expect(other.locator(".row.selected")).to_have_attribute("data-key", f"Pod/{POD}")
    expect(other.locator("#ns")).to_have_value(NAMESPACE)
    other.close()
    assert other_problems == []
    assert problems == []


def test_keyboard_only_and_a_phone_width(
    replayed: tuple[HistoryApiServer, str], page: Page, problems: list[str], output_path: str
) -> None:
    api, cluster = replayed
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{api.url}/#c={cluster}&ns={NAMESPACE}&w=1h")
    expect(crash_row(page)).to_be_visible()
    # nothing wider than the screen: no sideways scrolling on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    for _ in range(40):  # Tab through the form to the pod's button, then Enter opens it
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.pod || ''") == POD:
            break
    else:
        pytest.fail("the pod's button is not reachable with Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#panel h2")).to_have_text(POD)
    expect(page.locator("#panel")).to_be_focused()
    page.screenshot(path=str(Path(output_path) / "pod-panel-390.png"))
    page.keyboard.press("Escape")
    expect(page.locator("#panel")).to_be_hidden()
    assert "pod=" not in page.url
    assert problems == []


def documented_ui() -> list[str]:
    found: set[str] = set()
    for doc in DOCS:
        found |= {c for c in commands_in_markdown(doc.read_text(encoding="utf-8")) if is_ui(c)}
    return sorted(found)


def test_the_docs_show_podwatch_ui() -> None:
    assert any(c.endswith(" ui") for c in documented_ui())
    assert any("#" in c for c in documented_ui())  # one opens a pasted view (a history_url)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("documented", documented_ui())
def test_a_documented_podwatch_ui_command_serves_the_page_as_written(
    documented: str, replayed: tuple[HistoryApiServer, str], page: Page, problems: list[str], tmp_path: Path
) -> None:
    # Given an operator's shell whose history API is the local stack's (a loopback URL: not signed)
    api, cluster = replayed
    path = os.pathsep.join(str(ROOT / p) for p in ("layers/podwatch", "relay", "cli", "."))
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PODWATCH_"))}
    shell = {**keep, "PYTHONPATH": path, "AWS_REGION": "us-east-1", "PODWATCH_HISTORY_URL": api.url}
    words = shlex.split(documented)
    port = free_port()  # the documented default port, 8765, may be taken on a shared host
    words += ["--port", str(port)]
    process = ManagedProcess(
        "podwatch-ui",
        [sys.executable, "-m", "podwatch_cli", *words[1:]],
        log_path=tmp_path / "ui.log",
        env=shell,
        cwd=tmp_path,
    )
    process.start()
    try:
        log = tmp_path / "ui.log"
        printed_url = lambda: listening(port) and "Ctrl-C" in log.read_text()  # noqa: E731
        process.wait_healthy(printed_url, timeout=60, what=f"listening on {port}, its URL printed")
        # When the browser opens what it printed (the local stack's cluster and the sample's window)
        printed = re.search(r"http://127\.0\.0\.1:\d+/\S*", (tmp_path / "ui.log").read_text())
        assert printed is not None
        view = [w for w in words if "#" in w]
        if view:  # a pasted history_url: its view, on the proxy
            assert printed.group(0).endswith("#" + view[0].partition("#")[2])
        page.goto(f"http://127.0.0.1:{port}/#c={cluster}&ns={NAMESPACE}&{WINDOW}")
        # Then the page and its data came through it
        expect(crash_row(page)).to_have_class("row incident")
    finally:
        process.stop()
    assert problems == []
