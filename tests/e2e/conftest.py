"""One local stack for the whole e2e session (moto + Restate + manager start in a few seconds).
Tests stay independent by using their own cluster ids: event ids, dedup keys and manager objects
are all per cluster."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

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
