"""The newcomer's walk in docs/internals.md names real code: every (file, function) row of its tables
exists, so the walk cannot silently describe functions that were renamed or moved."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "internals.md"
#: a table row: | step | `file` | `function` or `Class.method` | what |
ROW = re.compile(r"^\|\s*\d+\s*\|\s*`(?P<file>[^`]+\.py)`\s*\|\s*`(?P<name>[\w.]+)`\s*\|")


def walk_rows() -> list[tuple[str, str]]:
    text = DOC.read_text()
    start = text.index("## A newcomer's walk")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    return [(m["file"], m["name"]) for line in section.splitlines() if (m := ROW.match(line))]


def defines(path: Path, dotted: str) -> bool:
    """Whether `path` defines `dotted` (a module-level function or class, or `Class.method`)."""
    body: list[ast.stmt] = ast.parse(path.read_text()).body
    for part in dotted.split("."):
        found = next(
            (
                n
                for n in body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part
            ),
            None,
        )
        if found is None:
            return False
        body = found.body
    return True


def test_the_walk_has_the_cloud_half_from_queue_to_manager() -> None:
    files = [file for file, _ in walk_rows()]
    stops = ["functions/processor/app.py", "layers/podwatch/podwatch/dedup.py", "functions/deliver/app.py"]
    assert [files.index(stop) for stop in stops] == sorted(files.index(stop) for stop in stops)
    assert files[-1] == "local/manager.py"


def test_every_step_of_the_walk_names_a_function_that_exists_in_its_file() -> None:
    missing = [f"{file}: {name}" for file, name in walk_rows() if not defines(ROOT / file, name)]
    assert missing == []


def test_the_check_finds_a_renamed_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("class Store:\n    def claim(self):\n        pass\n\ndef flush():\n    pass\n")
    assert defines(module, "Store.claim")
    assert defines(module, "flush")
    assert not defines(module, "Store.open")
    assert not defines(module, "claim")
