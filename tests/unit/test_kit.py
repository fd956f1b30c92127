"""The handler kit (podwatch.kit): every function is built on it, follows its import policy, and its
Environment builds once, injects, closes and forgets as the functions' tests and the local stack rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aws_lambda_powertools import Tracer

from podwatch import kit
from podwatch.settings import ConfigSyncSettings, DeliverSettings

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
#: what only an invocation needs: importing a function must not import these (the kit's import policy)
NOT_AT_IMPORT = ("boto3", "httpx", "pybreaker", "podwatch.aws", "podwatch.settings", "podwatch.restate")

_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import app
print(json.dumps({
    "late": [m for m in sys.argv[2:] if m in sys.modules],
    "tools": [type(getattr(app, n)).__name__ for n in ("logger", "tracer", "metrics")],
    "kit": sorted(
        n for n in ("dependencies", "set_dependencies", "reset", "build_dependencies") if hasattr(app, n)
    ),
    "lazy": "podwatch.lazy" in sys.modules,
}))
"""


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_imports_only_its_tools_and_the_kit(function: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "podwatch")}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(ROOT / "functions" / function), *NOT_AT_IMPORT],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seen = json.loads(out.stdout)
    assert seen["late"] == [], f"{function} imports at import time what only an invocation needs"
    assert seen["tools"] == ["Logger", "Tracer", "Metrics"]
    assert seen["kit"] == ["build_dependencies", "dependencies", "reset", "set_dependencies"]
    assert seen["lazy"] is False


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_builds_its_tools_and_environment_with_the_kit(function: str) -> None:
    source = (ROOT / "functions" / function / "app.py").read_text()
    assert "kit.tools()" in source
    assert "kit.Environment(" in source
    for own in ("Tracer(", "Logger(", "Metrics(", "Lazy("):
        assert own not in source


class Closable:
    def __init__(self, name: str) -> None:
        self.name, self.closed = name, False


def test_environment_builds_once_injects_closes_and_forgets() -> None:
    built: list[Closable] = []
    forgotten: list[bool] = []

    def build() -> Closable:
        built.append(Closable(f"built-{len(built)}"))
        return built[-1]

    def close(value: Closable) -> None:
        value.closed = True

    environment = kit.Environment(
        build, tracer=Tracer(disabled=True), close=close, forget=lambda: forgotten.append(True)
    )
    first = environment.get()
    assert environment.get() is first
    assert len(built) == 1

    injected = Closable("injected")
    environment.set(injected)
    assert first.closed
    assert environment.get() is injected
    assert len(built) == 1

    environment.reset()
    assert injected.closed
    assert forgotten == [True]
    assert environment.get().name == "built-1"


def test_restate_client_from_settings_takes_the_functions_paths_and_timeouts() -> None:
    deliver = DeliverSettings.from_env(
        {
            "CONFIG_PARAMETER_NAME": "/p",
            "QUARANTINE_QUEUE_URL": "q",
            "RESTATE_INGRESS_URL": "http://restate:8080/",
            "RESTATE_NOTIFY_PATH": "/M/{cluster_id}/Notify",
            "RESTATE_READ_TIMEOUT_SECONDS": "3",
        }
    )
    client = kit.restate_client(deliver, parameters=None, max_tries=2)  # type: ignore[arg-type]
    try:
        assert client.base_url == "http://restate:8080"
        assert client.notify_path == "/M/{cluster_id}/Notify"
        assert client.timeout.read == 3.0
    finally:
        client.close()

    sync = ConfigSyncSettings.from_env(
        {
            "CONFIG_PARAMETER_NAME": "/p",
            "RESTATE_INGRESS_URL": "http://r",
            "RESTATE_CONFIG_PATH": "/C/{cluster_id}",
        }
    )
    client = kit.restate_client(sync, parameters=None)  # type: ignore[arg-type]
    try:
        assert client.config_path == "/C/{cluster_id}"
    finally:
        client.close()


def test_failed_items_is_the_sqs_partial_batch_response() -> None:
    assert kit.failed_items(["m1", "m2"]) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]
    }
    assert kit.failed_items([]) == {"batchItemFailures": []}
