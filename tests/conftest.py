"""Fixtures every test may use. Stage-specific fixtures live in the conftest.py of their folder."""

from __future__ import annotations

import os

import pytest

from local.lambda_runtime import LambdaContext

# Dummy credentials and region for every boto3 client the tests create (moto in-process or server).
# Set before any test runs, never at import of project code: project code reads no env at import.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SECURITY_TOKEN", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Podwatch")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_DEV", "false")


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture(autouse=True)
def _no_real_aws_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that wants a moto server sets AWS_ENDPOINT_URL itself; none inherits one by accident."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
