"""`podwatch events`: the event history, from the stack's history API (HistoryApiUrl).

    podwatch events --namespace shop --since 1h [--kind pod] [--reason BackOff] [--all] [--json]
    podwatch events pod shop/web-x          # one object: its history and the Events about it

A readable table by default, `--json` for scripts (the API's answer as is: a list query's pages
merged into one `events` list). Against a deployed stack the requests are signed with SigV4
(service execute-api, the profile's credentials), or carry `--token` for a JWT-protected API;
against the local stack (`--api-url http://127.0.0.1:...`) they go unsigned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import IO, Any
from urllib.parse import urlencode, urlsplit

import httpx

from podwatch.history import table

#: --since: a number and a unit (s, m, h, d)
_SINCE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class EventsError(Exception):
    """The API refused the query or could not be reached (the message says why)."""


def since_start(since: str, now: datetime) -> str:
    """`1h` → the RFC 3339 time one hour before `now`."""
    match = _SINCE.match(since.strip())
    if not match:
        raise EventsError(f"--since {since!r}: give a number and a unit, e.g. 30m, 1h, 2d")
    delta = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    return (now - delta).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HistoryClient:
    """GETs against the history API; SigV4-signed when `credentials` are given, bearer `token` else."""

    def __init__(
        self, base_url: str, *, credentials: Any = None, region: str | None = None, token: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.region = region
        self.token = token
        self._http = httpx.Client(timeout=TIMEOUT)

    def get(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        url = f"{self.base_url}{path}" + (f"?{urlencode(sorted(params.items()))}" if params else "")
        headers = self._auth(url)
        try:
            answer = self._http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise EventsError(f"cannot reach the history API at {self.base_url}: {exc}") from exc
        if answer.status_code != 200:
            try:
                detail = answer.json().get("error") or answer.text
            except ValueError:
                detail = answer.text
            raise EventsError(f"the history API answered {answer.status_code}: {detail}")
        return answer

    def forward(self, target: str, headers: Mapping[str, str]) -> httpx.Response:
        """Any GET of the API (`target`: path and query, as a browser sent it), signed, answered as
        it came (`podwatch ui`); EventsError only when the API cannot be reached."""
        url = f"{self.base_url}{target}"
        try:
            return self._http.get(url, headers={**headers, **self._auth(url)})
        except httpx.HTTPError as exc:
            raise EventsError(f"cannot reach the history API at {self.base_url}: {exc}") from exc

    def _auth(self, url: str) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.credentials is None:
            return {}
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method="GET", url=url, headers={"Host": urlsplit(url).netloc})
        SigV4Auth(self.credentials, "execute-api", self.region or "us-east-1").add_auth(request)
        return dict(request.headers.items())

    def close(self) -> None:
        self._http.close()


def list_events(client: HistoryClient, params: dict[str, str], *, follow: bool) -> dict[str, Any]:
    """One page, or every page with `follow` (cursor after cursor), merged."""
    events: list[dict[str, Any]] = []
    while True:
        answer = client.get("/api/v1/events", params)
        body = answer.json()
        events += body["events"]
        total = int(answer.headers.get("X-Total-Count", body.get("total", len(events))))
        if not (follow and body.get("nextCursor")):
            return {"events": events, "total": total, "hasMore": bool(body.get("nextCursor"))}
        params = {**params, "cursor": body["nextCursor"]}


def object_events(client: HistoryClient, kind: str, ref: str, params: dict[str, str]) -> dict[str, Any]:
    namespace, slash, name = ref.partition("/")
    if not slash or not namespace or not name:
        raise EventsError(f"{ref!r}: give the object as NAMESPACE/NAME, e.g. shop/web-x")
    answer: dict[str, Any] = client.get(f"/api/v1/events/{namespace}/{kind}/{name}", params).json()
    return answer


def render_list(answer: Mapping[str, Any], out: IO[str]) -> None:
    events = answer["events"]
    if not events:
        out.write("no events in that window\n")
        return
    for line in table(events):
        out.write(line.rstrip() + "\n")
    more = " (more: --all, or a narrower --since)" if answer.get("hasMore") else ""
    out.write(f"{len(events)} of {answer['total']} events{more}\n")


def render_object(answer: Mapping[str, Any], out: IO[str]) -> None:
    obj = answer.get("object")
    if obj is None:
        out.write("no history for that object (unknown, or older than the retention)\n")
        return
    state = "deleted" if obj["deleted"] else "last seen"
    out.write(
        f"{obj['kind']} {obj['namespace']}/{obj['name']} (uid {obj['uid']}): {state} {obj['lastSeen']}\n"
    )
    out.write(f"\nhistory ({len(answer['watchEvents'])}):\n")
    for line in table(answer["watchEvents"]):
        out.write("  " + line.rstrip() + "\n")
    out.write(f"\nrelated Events ({len(answer['relatedEvents'])}):\n")
    for line in table(answer["relatedEvents"]):
        out.write("  " + line.rstrip() + "\n")
    render_owners(answer.get("owners") or [], out)
    node = answer.get("node")
    if node:
        render_node(node, out)


def render_owners(owners: list[Mapping[str, Any]], out: IO[str]) -> None:
    """The owner chain (Pod → ReplicaSet → Deployment, ...), each with its recent records."""
    if not owners:
        return
    chain = " → ".join(f"{o['kind']} {o['name']}" for o in owners)
    out.write(f"\nowned by ({chain}):\n")
    for owner in owners:
        out.write(f"  {owner['kind']} {owner['name']}: {_seen(owner.get('object'))}\n")
        records = owner.get("watchEvents") or []
        for line in table(records) if records else ():
            out.write("    " + line.rstrip() + "\n")


def render_node(node: Mapping[str, Any], out: IO[str]) -> None:
    """A pod's node: its condition changes (newest first) and the Events about it."""
    changes = node.get("conditionChanges") or []
    out.write(f"\nnode {node['name']}: {_seen(node.get('object'))}; condition changes ({len(changes)}):\n")
    for c in changes:
        when = str(c["timestamp"]).replace("T", " ")[:23]
        reason = f"  {c['reason']}" if c.get("reason") else ""
        out.write(f"  {when}  {c['type']} {c.get('from') or '-'} → {c.get('to') or '-'}{reason}\n")
    related = node.get("relatedEvents") or []
    if related:
        out.write(f"  Events about the node ({len(related)}):\n")
        for line in table(related):
            out.write("    " + line.rstrip() + "\n")


def _seen(latest: Mapping[str, Any] | None) -> str:
    return f"last seen {latest['lastSeen']}" if latest else "no record (not watched, or older)"


def cmd_events(
    client: HistoryClient,
    *,
    kind: str | None,
    ref: str | None,
    namespace: str | None,
    since: str | None,
    filter_kind: str | None,
    reason: str | None,
    limit: int | None,
    follow: bool,
    as_json: bool,
    out: IO[str],
    now: datetime | None = None,
) -> int:
    params: dict[str, str] = {}
    if since:
        params["start"] = since_start(since, now or datetime.now(UTC))
    if limit:
        params["limit"] = str(limit)
    if kind is not None:
        if ref is None:
            raise EventsError("give the object too: podwatch events pod NAMESPACE/NAME")
        answer = object_events(client, kind, ref, params)
        render = render_object
    else:
        params.update(
            {k: v for k, v in {"namespace": namespace, "kind": filter_kind, "reason": reason}.items() if v}
        )
        answer = list_events(client, params, follow=follow)
        render = render_list
    if as_json:
        out.write(json.dumps(answer, indent=2) + "\n")
    else:
        render(answer, out)
    return 0
