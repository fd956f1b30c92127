"""What free text and labels may leave the cluster: secret-looking values redacted, labels by allowlist.

`redact(text)` replaces what looks like a secret with `MARKER`:

* a PEM private key block (`-----BEGIN ... PRIVATE KEY-----` to its END line, or to the end of
  a text cut before it);
* an AWS access key id (`AKIA...`, `ASIA...` and the other key-id prefixes, 20 characters);
* the credentials after `Bearer` / `Basic` (an Authorization header in a log line);
* the value of a `key=value` or `key: value` pair (also `"key": "value"`) whose key names a
  secret: `password`, `passwd`, `pwd`, `secret`, `token`, `api_key` / `apikey`, `access_key`,
  `private_key`, `credential(s)`, `auth...` (any case, with anything around: `DB_PASSWORD=`,
  `aws_secret_access_key:`); a value runs to the next blank, quote or `&`;
* URL userinfo (`scheme://user:pass@host`), and `user:pass@host` at the start of a word (an image
  reference with credentials; `name:tag@sha256:...` is a digest, not userinfo).

It is applied to every free-text value the relay forwards (messages, reasons, images, label
values, an Event's source), on both paths alike, before messages are cut to `MAX_TEXT`. Only
forwarded values are redacted (never the suppressed majority), each distinct string once (a
bounded cache), and each pattern runs only when a plain substring test (`-----BEGIN`, `A`, a
secret word, `@`) says it could match: most strings pass with none run.

`LabelAllowlist` keeps the labels whose key is configured (the project/workload id keys) or
well known (`WELL_KNOWN_LABELS`, `app.kubernetes.io/*`); the others are dropped and counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MARKER = "[redacted]"

_PEM = re.compile(r"-----BEGIN[A-Z ]*PRIVATE KEY-----.*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)
#: no word boundaries: a key id glued to other text is still one (and nothing else looks like it)
_AWS_KEY_ID = re.compile(r"A(?:KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|BIA|CCA)[A-Z0-9]{16}")
#: Words whose presence (any case) lets `_KEYED` match; without one it cannot
_KEY_WORDS = ("pass", "pwd", "secret", "token", "key", "cred", "auth", "bearer", "basic")
#: A pair's key matches from its secret word on (what precedes it, `DB_` in `DB_PASSWORD`, stays)
_KEYED = re.compile(
    r"""(?P<head>(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"""
    r"""|credentials?|auth)[\w.-]*["']?\s*[=:]\s*|\b(?:bearer|basic)\s+)"""
    r"""(?:"[^"]*"|'[^']*'|(?:(?:bearer|basic)\s+)?[^\s"'&]+)""",
    re.IGNORECASE,
)
#: `scheme://userinfo@`, or `user:pass@` starting a word (not `name:tag@sha256:`, a digest)
_USERINFO = re.compile(
    r"""(?P<url>[a-z][a-z0-9+.-]*://)[^/\s@"']+@"""
    r"""|(?<![^\s"'=(<,;])[^/\s@:"'=(<,;]+:[^/\s@"']+@(?!sha(?:256|384|512):)""",
    re.IGNORECASE,
)


def _userinfo(match: re.Match[str]) -> str:
    return (match.group("url") or "") + MARKER + "@"


def _redact(text: str) -> str:
    """Each pattern runs only where a plain substring test says it could match (the pre-check)."""
    if "-----BEGIN" in text:
        text = _PEM.sub(MARKER, text)
    if "A" in text and len(text) >= 20:
        text = _AWS_KEY_ID.sub(MARKER, text)
    lower = text.lower()
    if any(word in lower for word in _KEY_WORDS):
        text = _KEYED.sub(r"\g<head>" + MARKER, text)
    if "@" in text:
        text = _USERINFO.sub(_userinfo, text)
    return text


#: Strings seen recently and what they redact to (a pod's messages repeat in its updates), bounded
_SEEN: dict[str, str] = {}
_SEEN_MAX = 4096


def redact(text: str) -> str:
    """`text` with every secret-looking value replaced by `MARKER` (see the module)."""
    got = _SEEN.get(text)
    if got is None:
        got = _redact(text)
        if len(_SEEN) >= _SEEN_MAX:
            _SEEN.clear()
        _SEEN[text] = got
    return got


#: Label keys forwarded besides the configured ones: what names an application and its workload
#: (Kubernetes' recommended labels, the common `app`/`k8s-app`, what controllers set on their pods)
WELL_KNOWN_LABELS = frozenset(
    {
        "app",
        "k8s-app",
        "component",
        "tier",
        "version",
        "helm.sh/chart",
        "pod-template-hash",
        "controller-revision-hash",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "job-name",
        "batch.kubernetes.io/job-name",
        "batch.kubernetes.io/job-completion-index",
    }
)
WELL_KNOWN_PREFIXES = ("app.kubernetes.io/",)
#: The configured keys when none are given: RemoteConfig's defaults for the project/workload ids
DEFAULT_LABEL_KEYS = ("project-id", "workload-id")


class LabelAllowlist:
    """Which pod labels leave the cluster: `keys` (configured) and the well-known ones."""

    __slots__ = ("keys", "prefixes")

    def __init__(self, keys: Iterable[str] = DEFAULT_LABEL_KEYS) -> None:
        self.keys = WELL_KNOWN_LABELS | frozenset(keys)
        self.prefixes = WELL_KNOWN_PREFIXES

    def apply(self, labels: Mapping[str, str]) -> tuple[dict[str, str], int]:
        """The labels allowed (values redacted), and how many were not."""
        keys, prefixes = self.keys, self.prefixes
        kept = {k: redact(v) for k, v in labels.items() if k in keys or k.startswith(prefixes)}
        return kept, len(labels) - len(kept)


DEFAULT_ALLOWLIST = LabelAllowlist()
