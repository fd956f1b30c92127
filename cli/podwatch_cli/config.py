"""`podwatch config get|set|validate`: the remote config parameter in SSM.

The value is validated by the model the functions use (`podwatch.models.RemoteConfig`), so what
`set` writes is what they accept; an invalid value is refused before anything is written. `set`
shows a diff and asks before writing (or `--yes`), and refuses to write if the parameter changed
since it was read (someone else, or config-sync, wrote in between).
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Sequence
from typing import IO, Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from podwatch.models import RemoteConfig

#: Fields that hold sets: `KEY=a,b` is accepted for them next to a JSON list.
SET_FIELDS = frozenset({"enabled_reasons", "ignored_namespaces"})


class ConfigRefused(Exception):
    """A value the model refuses, or a write that must not happen; nothing was changed."""


def pretty(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def explain(exc: ValidationError) -> str:
    """Pydantic's errors as `field: message (got value)` lines."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        got = error.get("input")
        shown = "" if isinstance(got, dict) else f" (got {json.dumps(got, default=str)})"
        lines.append(f"  {where}: {error['msg']}{shown}")
    return "\n".join(lines)


def validate_text(text: str) -> RemoteConfig:
    """The RemoteConfig in `text`; ConfigRefused saying why not."""
    try:
        return RemoteConfig.from_json(text)
    except ValidationError as exc:
        raise ConfigRefused(f"not a valid RemoteConfig:\n{explain(exc)}") from exc


def read_parameter(ssm: Any, name: str) -> tuple[str, int, str]:
    """(value, version, last modified) of the parameter."""
    try:
        parameter = ssm.get_parameter(Name=name)["Parameter"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ParameterNotFound":
            raise ConfigRefused(f"parameter {name} does not exist (is the stack deployed?)") from exc
        raise
    modified = parameter.get("LastModifiedDate")
    return str(parameter["Value"]), int(parameter.get("Version", 0)), str(modified or "?")


def parse_assignments(assignments: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs; VALUE is JSON when it parses (numbers, lists, strings in quotes), else the
    text; for set fields, a comma-separated list."""
    changes: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigRefused(f"{assignment!r}: expected KEY=VALUE (e.g. dedup_cooldown_seconds=600)")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = [item.strip() for item in raw.split(",") if item.strip()] if key in SET_FIELDS else raw
        changes[key] = value
    return changes


def diff(old: str, new: str, *, old_label: str, new_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=old_label, tofile=new_label
        )
    )


def _as_document(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def cmd_get(ssm: Any, name: str, *, raw: bool, out: IO[str], err: IO[str]) -> int:
    value, version, modified = read_parameter(ssm, name)
    document = _as_document(value)
    out.write(value + "\n" if raw or document is None else pretty(document))
    try:
        validate_text(value)
    except ConfigRefused as exc:
        err.write(f"{name} (version {version}, {modified}): INVALID, the functions ignore it: {exc}\n")
        return 1
    err.write(f"{name} (version {version}, {modified}): valid\n")
    return 0


def cmd_validate(ssm: Any, name: str | None, source: str | None, *, out: IO[str], err: IO[str]) -> int:
    """Validate FILE, stdin (-) or, with `source` None, the stored value of `name` (which needs `ssm`)."""
    if source is None:
        if ssm is None or name is None:
            raise ConfigRefused("nothing to validate: give a file, - for stdin, or a stack")
        text, what = read_parameter(ssm, name)[0], name
    elif source == "-":
        text, what = sys.stdin.read(), "stdin"
    else:
        try:
            with open(source, encoding="utf-8") as handle:
                text, what = handle.read(), source
        except OSError as exc:
            raise ConfigRefused(f"cannot read {source}: {exc.strerror}") from exc
    try:
        config = validate_text(text)
    except ConfigRefused as exc:
        err.write(f"{what}: {exc}\n")
        return 1
    out.write(f"{what}: valid (version {config.version!r})\n")
    return 0


def cmd_set(
    ssm: Any,
    name: str,
    *,
    assignments: Sequence[str],
    file: str | None,
    yes: bool,
    dry_run: bool,
    out: IO[str],
    err: IO[str],
    confirm: Any = None,
) -> int:
    """Validate, show the diff, confirm, write. Raises ConfigRefused (nothing written) when refused."""
    if bool(assignments) == bool(file):
        raise ConfigRefused("give KEY=VALUE changes or --file FILE (a whole document), not both or neither")
    current, version, _ = read_parameter(ssm, name)
    if file is not None:
        try:
            text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()  # noqa: SIM115
        except OSError as exc:
            raise ConfigRefused(f"cannot read {file}: {exc.strerror}") from exc
        new = validate_text(text)
    else:
        base = _as_document(current)
        try:
            RemoteConfig.from_json(current)
        except ValidationError as exc:
            raise ConfigRefused(
                f"the stored value of {name} is not valid, so KEY=VALUE has nothing to start from;"
                f" write a whole document with --file:\n{explain(exc)}"
            ) from exc
        document = {**base, **parse_assignments(assignments)}
        try:
            new = RemoteConfig.from_json(document)
        except ValidationError as exc:
            raise ConfigRefused(f"refused, {name} was not changed:\n{explain(exc)}") from exc
    old_text = pretty(_as_document(current)) if _as_document(current) is not None else current + "\n"
    new_text = pretty(json.loads(new.to_json()))
    if old_text == new_text and current == new.to_json():
        out.write(f"{name}: no change\n")
        return 0
    out.write(diff(old_text, new_text, old_label=f"{name} (version {version})", new_label=f"{name} (new)"))
    if dry_run:
        err.write("dry run: nothing written\n")
        return 0
    if not yes:
        ask = confirm or _ask
        if not ask(f"write this to {name}? [y/N] "):
            err.write("not written\n")
            return 1
    if read_parameter(ssm, name)[1] != version:
        raise ConfigRefused(
            f"{name} changed since it was read (version {version}); nothing written, run again"
        )
    answer = ssm.put_parameter(Name=name, Value=new.to_json(), Type="String", Overwrite=True)
    err.write(f"{name}: written, version {answer.get('Version', '?')}; functions pick it up within 60 s\n")
    return 0


def _ask(prompt: str) -> bool:
    if not sys.stdin.isatty():
        raise ConfigRefused("not a terminal: pass --yes to write without asking (or --dry-run)")
    return input(prompt).strip().lower() in {"y", "yes"}
