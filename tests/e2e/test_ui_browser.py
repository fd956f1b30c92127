"""The timeline page in a real browser (Debian's Chromium, driven by pytest-playwright) on the local
stack after a replay: pick a namespace, see the crash-looping pod marked, open it, see its BackOff
Events and its notification, follow the pasted URL to the same view; keyboard only; a phone width.
No console error anywhere. Screenshots land in the test's output folder (test-results/...)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from local.historyapi import HistoryApiServer, recording_clock
from local.stack import LocalStack

pytestmark = pytest.mark.e2e

SAMPLE = "events/replay/sample-stream.jsonl"
NAMESPACE, POD = "payments", "payments-api-84c6d9f7b8-tq5vn"
#: the sample's first ten minutes (it is recorded on 2026-11-20 from 09:00 UTC)
WINDOW = "w=range&from=2026-11-20T08:59:00&to=2026-11-20T09:09:00"


@pytest.fixture(scope="module")
def replayed(local_stack: LocalStack) -> tuple[HistoryApiServer, str]:
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
    expect(row.locator('rect.mark[data-status="crash-loop"]').first).to_be_attached()
    expect(row.locator("line.tick.Warning").first).to_be_attached()  # its BackOff Events
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
