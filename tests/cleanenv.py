"""Clean virtual environments with only what a deployed part ships, for the tests that prove it runs
there: the Lambda layer's requirements plus the boto3 the Lambda runtime brings, or the relay
image's requirements. Built once per content hash under .cache/clean-env/ (gitignored), so a rerun
costs nothing and a changed pin builds a new one; CI builds its own on the first test that asks."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "clean-env"
LAYER_REQUIREMENTS = ROOT / "layers/podwatch/requirements.txt"
RELAY_REQUIREMENTS = ROOT / "relay/requirements.txt"
#: the AWS SDK the Lambda python3.13 runtime includes (docs: "Runtime-included SDK versions"); older
#: than requirements-dev's, so code that needs a newer boto3 than Lambda gives fails here first
LAMBDA_RUNTIME_SDK = ("boto3==1.40.4", "botocore==1.40.4")


def _key(requirements: Sequence[Path], extra: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for path in requirements:
        digest.update(path.read_bytes())
    digest.update("\n".join(extra).encode())
    return digest.hexdigest()[:16]


def clean_env(name: str, requirements: Sequence[Path], extra: Sequence[str] = ()) -> Path:
    """The python of a venv with exactly `requirements` (files) and `extra` (specs), wheels only,
    `pip check` clean; built into a temporary folder and renamed, so a failed build leaves nothing
    (only `bin/python` is used: the venv's scripts would still name the temporary folder)."""
    target = CACHE / f"{name}-{_key(requirements, extra)}"
    python = target / "bin" / "python"
    if python.exists():
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=CACHE))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(build)], check=True, timeout=300)
        pip = [str(build / "bin" / "python"), "-m", "pip", "install", "-q", "--only-binary=:all:"]
        files = [arg for path in requirements for arg in ("-r", str(path))]
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        env.pop("PYTHONPATH", None)
        subprocess.run([*pip, *files, *extra], check=True, timeout=900, env=env)
        check = [str(build / "bin" / "python"), "-m", "pip", "check"]
        subprocess.run(check, check=True, timeout=120, env=env)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    try:
        build.rename(target)
    except OSError:  # another run built the same one meanwhile
        shutil.rmtree(build, ignore_errors=True)
    return python


def layer_python() -> Path:
    """What a deployed function has: the layer's requirements and the runtime's boto3, nothing else."""
    return clean_env("lambda-layer", [LAYER_REQUIREMENTS], LAMBDA_RUNTIME_SDK)


def relay_python() -> Path:
    """What the relay image has: relay/requirements.txt, nothing else."""
    return clean_env("relay-image", [RELAY_REQUIREMENTS])


def bare_env(**extra: str) -> dict[str, str]:
    """An environment with nothing of the test venv in it (no PYTHONPATH, no VIRTUAL_ENV)."""
    keep = {"PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT"}
    return {**{k: v for k, v in os.environ.items() if k in keep}, **extra}
