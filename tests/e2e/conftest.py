"""One local stack for the whole e2e session (moto + Restate + manager start in a few seconds).
Tests stay independent by using their own cluster ids: event ids, dedup keys and manager objects
are all per cluster. The browser test's Chromium is the system one (`browser_type_launch_args`)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local import browser
from local.stack import LocalStack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        run_dir=tmp_path_factory.mktemp("local-run"),
        max_batching_window_seconds=0.5,  # the template's 5 s window, shortened for tests
        retry_delay_seconds=1,
    ) as stack:
        yield stack


@pytest.fixture
def cluster_id() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch arguments, pointed at the system browser (local/browser.py).
    Missing: in CI (`CI=true`) the test fails with that reason; elsewhere it is skipped, saying how
    to install it."""
    if reason := browser.missing():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return {**browser_type_launch_args, **browser.launch_args()}
