"""relay/Dockerfile cannot be built here (no container engine), so its invariants are read from the
file: a pinned python:3.13 slim base (the tests' Python), multi-stage, a numeric non-root user that
matches the chart, only the relay's code and requirements copied in, nothing but those installed."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "relay" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
HADOLINT = ROOT / ".tools" / "venv" / "bin" / "hadolint"
REQUIREMENTS = ROOT / "relay" / "requirements.txt"
#: What the image is made of, as paths in the build context (the repository root).
IMAGE_INPUTS = {"layers/podwatch/podwatch", "relay/podwatch_relay", "relay/requirements.txt"}
#: Where those packages live in the checkout: the image puts both on PYTHONPATH=/app.
PACKAGE_ROOTS = {
    "podwatch": ROOT / "layers/podwatch/podwatch",
    "podwatch_relay": ROOT / "relay/podwatch_relay",
}
BASE = re.compile(
    r"^python:(?P<version>3\.\d+)(?P<patch>\.\d+)?-slim(-(bookworm|trixie))?(?P<digest>@sha256:[0-9a-f]{64})?$"
)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse() -> tuple[dict[str, str], list[Stage]]:
    """(ARGs before the first FROM, stages) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?: AS (\S+))?", args, flags=re.I)
            assert match, line
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: global_args[m[1] or m[2]], match[1])
            stages.append(Stage(base=base, name=match[2]))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before FROM: {line}"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse()[1]


def chart_values() -> dict[str, object]:
    values: dict[str, object] = yaml.safe_load((ROOT / "relay/chart/values.yaml").read_text())
    return values


def test_base_is_a_pinned_slim_python_of_the_tests_version(stages: list[Stage]) -> None:
    tests_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    pinned = (ROOT / ".python-version").read_text().strip()
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert pinned.startswith(tests_python + ".")
    assert f">={tests_python}" in requires
    for stage in stages:
        match = BASE.match(stage.base)
        assert match, f"{stage.base}: want python:{tests_python}.<patch>-slim[-<debian>] or a @sha256 digest"
        assert match["version"] == tests_python, stage.base
        assert match["patch"] or match["digest"], f"{stage.base}: a floating tag, pin the patch or the digest"
    assert len({stage.base for stage in stages}) == 1, "build and runtime must share one base"


def test_multi_stage_and_the_runtime_only_copies_results(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    build, runtime = stages[0], stages[-1]
    assert build.name
    assert any(args.startswith(f"--from={build.name} ") for args in runtime.all("COPY"))
    # pip runs in the build stage only: the runtime stage installs nothing
    for args in runtime.all("RUN"):
        assert "pip" not in args, args
        assert "apt-get" not in args, args


def test_runs_as_a_numeric_non_root_user_that_the_chart_matches(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the runtime stage sets no USER"
    match = re.fullmatch(r"(\d+):(\d+)", users[-1])
    assert match, f"USER {users[-1]}: numeric uid:gid, so that runAsNonRoot can verify it"
    uid, gid = int(match[1]), int(match[2])
    assert uid > 0
    assert gid > 0
    values = chart_values()
    for context in (values["podSecurityContext"], values["securityContext"]):
        assert isinstance(context, dict)
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)


def test_copies_only_the_relay_and_its_requirements(stages: list[Stage]) -> None:
    sources = set()
    for stage in stages:
        for args in stage.all("COPY") + stage.all("ADD"):
            assert not args.startswith("--from") or stage is stages[-1], args
            if args.startswith("--from"):
                continue
            *srcs, _dest = args.split()
            sources |= {src.rstrip("/") for src in srcs if not src.startswith("--")}
    assert sources == IMAGE_INPUTS
    assert all((ROOT / src).exists() for src in sources)
    assert not [stage for stage in stages for kw, _ in stage.instructions if kw == "ADD"], "use COPY"


def test_installs_exactly_relay_requirements(stages: list[Stage]) -> None:
    pip_install = re.compile(r"\bpip\b.* install ")
    parts = [part for stage in stages for args in stage.all("RUN") for part in args.split("&&")]
    [install] = [part for part in parts if pip_install.search(part)]
    # `-r <the copied relay/requirements.txt>` and options; no package named on the command line
    words = install.split()
    tail = words[words.index("install") + 1 :]
    assert tail[-2:] == ["-r", "/tmp/requirements.txt"]
    assert all(word.startswith("--") for word in tail[:-2]), tail
    copied = [a for stage in stages for a in stage.all("COPY") if a.startswith("relay/requirements.txt ")]
    assert copied == ["relay/requirements.txt /tmp/requirements.txt"]
    # pinned, and no development tool among them
    for line in REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[\w.]+", line.strip()), line
            name = Requirement(line).name.lower()
            assert name not in {"pytest", "ruff", "mypy", "moto", "pyyaml", "restate-sdk", "hypercorn"}, line


def test_entrypoint_port_and_spool_match_the_chart(stages: list[Stage]) -> None:
    runtime = stages[-1]
    assert runtime.all("ENTRYPOINT") == ['["python", "-m", "podwatch_relay"]']
    assert runtime.all("CMD") == ['["watch"]']
    values = chart_values()
    ports = values["containerPorts"]
    spool = values["spool"]
    assert isinstance(ports, dict)
    assert isinstance(spool, dict)
    assert runtime.all("EXPOSE") == [str(ports["http"])]
    env = " ".join(runtime.all("ENV"))
    assert f"PODWATCH_SPOOL_DIR={spool['path']}" in env
    assert f"PODWATCH_HTTP_PORT={ports['http']}" in env
    assert "PYTHONPATH=/app" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # the root filesystem is read-only


def test_dockerignore_sends_only_the_image_inputs() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    assert {p.removeprefix("!") for p in patterns if p.startswith("!")} == IMAGE_INPUTS


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def module_file(name: str) -> Path | None:
    top, *rest = name.split(".")
    base = PACKAGE_ROOTS[top].joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def requirement_closure() -> set[str]:
    """Import names of relay/requirements.txt and everything they depend on, as installed here."""
    seen: set[str] = set()
    todo = [
        Requirement(line).name
        for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for spec in importlib.metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    providers = importlib.metadata.packages_distributions()
    return {
        module
        for module, dists in providers.items()
        if any(d.lower().replace("_", "-") in seen for d in dists)
    }


def test_the_image_imports_only_what_it_installs() -> None:
    """Follow the imports from `python -m podwatch_relay` through both packages: every third-party
    module must come from relay/requirements.txt (or what it pulls in); the image has nothing else."""
    todo, seen, third_party = ["podwatch_relay.__main__", "podwatch_relay"], set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.split(".")[0]
        if top in PACKAGE_ROOTS:
            path = module_file(name)
            if path is not None:
                todo.extend(imports_of(path))
        elif top not in sys.stdlib_module_names and top != "__future__":
            third_party.add(top)
    assert "podwatch.models" in seen  # the walk did reach the shared package
    assert third_party, "no third-party import found: the walk is broken"
    assert third_party <= requirement_closure(), third_party - requirement_closure()


def test_hadolint_finds_nothing() -> None:
    if not (HADOLINT.is_file() and os.access(HADOLINT, os.X_OK)):
        reason = f"hadolint is not installed at {HADOLINT}: run scripts/install-helm-tools.sh"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    done = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
