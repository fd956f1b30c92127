"""The timeline page's static files (HTML, JS, CSS), served by the history function itself: read
once per execution environment from the function's own `ui/` folder, with a content type, an
ETag and a cache policy. The page and what it reads are described in docs/internals.md
("Timeline page")."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

#: the only files served: a request for anything else is a 404, never a read of another path
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
INDEX = "index.html"
#: the page is small and changes with a deploy: revalidate every time (ETag), never serve stale JS
CACHE_CONTROL = "no-cache"
#: the page talks only to its own origin; no inline script (style attributes: the SVG's positions)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    content_type: str
    etag: str

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": self.content_type,
            "ETag": self.etag,
            "Cache-Control": CACHE_CONTROL,
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
        }


class Assets:
    """The files of one folder that the page is made of, by name (`index.html`, `app.js`, ...)."""

    def __init__(self, folder: Path) -> None:
        self._by_name: dict[str, Asset] = {}
        for path in sorted(folder.iterdir()):
            content_type = CONTENT_TYPES.get(path.suffix)
            if content_type is None or not path.is_file():
                continue
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            self._by_name[path.name] = Asset(path.name, body, content_type, etag)
        if INDEX not in self._by_name:
            raise FileNotFoundError(f"{folder} has no {INDEX}: the function was built without its page")

    def get(self, name: str) -> Asset | None:
        return self._by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self._by_name)


#: a view linked from a notification: the hour around the event (45 min before, 15 after)
LINK_BEFORE = timedelta(minutes=45)
LINK_AFTER = timedelta(minutes=15)


def view_url(
    base: str,
    *,
    namespace: str,
    pod: str | None = None,
    cluster: str | None = None,
    around: datetime | None = None,
) -> str:
    """The page's address of one view (the state is in the hash: app.js `readHash`): a namespace's
    timeline, one pod's panel open, and with `around` the window around that moment (UTC)."""
    state: dict[str, str] = {}
    if cluster:
        state["c"] = cluster
    state["ns"] = namespace
    if around is not None:
        moment = around.astimezone(UTC).replace(microsecond=0, tzinfo=None)
        state |= {
            "w": "range",
            "from": (moment - LINK_BEFORE).isoformat(),
            "to": (moment + LINK_AFTER).isoformat(),
        }
    if pod:
        state["pod"] = pod
    return f"{base.rstrip('/')}/#{urlencode(state, quote_via=quote)}"
