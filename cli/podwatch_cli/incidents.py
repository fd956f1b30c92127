"""Incidents and compact records, from history records (the history API's answers), for `podwatch mcp`.

The history API stores no incident state of its own; every record carries podwatch's
classification of it (`eventType`, `decision`, `reason`, `incidentId` = the dedup key). An incident
is the run of records that share one `incidentId`, read oldest first: trouble (forwarded or
deduplicated) makes it firing, a `recovered` finding that was forwarded (it resolved the incident)
makes it resolved, trouble after that opens it again. A pod (node) deleted after its incident's
last trouble, with nothing resolving it, is `pod-deleted` (`node-deleted`). docs/internals.md ("MCP
server") says why.

    incidents_of(records)       → [Incident ...], newest trouble first
    summary(record)             → the record without its snapshot: what an agent needs to read
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podwatch.workload import guess_workload_name

FIRING, RESOLVED, POD_DELETED, NODE_DELETED = "firing", "resolved", "pod-deleted", "node-deleted"
RECOVERED = "recovered"
#: decisions that are part of an incident (`filtered` ones never opened or joined one)
_COUNTED = frozenset({"forwarded", "deduplicated"})
URI_PREFIX = "podwatch://incidents/"
#: container fields an agent reads, in this order (the snapshot's names → the summary's)
_CONTAINER_FIELDS = (
    ("name", "name"),
    ("state", "state"),
    ("reason", "reason"),
    ("message", "message"),
    ("ready", "ready"),
    ("restart_count", "restartCount"),
    ("exit_code", "exitCode"),
    ("last_termination_reason", "lastTerminationReason"),
    ("last_exit_code", "lastExitCode"),
)


@dataclass(frozen=True, slots=True)
class IncidentId:
    """The parts of a dedup key: `cluster/namespace/pod/container/type` (container scope),
    `cluster/namespace/pod/type` (pod scope), `cluster/namespace/workload:<name>/type` (workload),
    `cluster/node:<name>/type` (a node's condition)."""

    cluster: str
    event_type: str
    namespace: str | None = None
    pod: str | None = None
    workload: str | None = None
    node: str | None = None
    container: str | None = None

    @classmethod
    def parse(cls, text: str) -> IncidentId:
        parts = text.split("/")
        if len(parts) == 3 and all(parts) and parts[1].startswith("node:"):
            return cls(parts[0], parts[2], node=parts[1].removeprefix("node:"))
        if len(parts) not in (4, 5) or not all(parts):
            raise ValueError(
                f"{text!r} is not an incident id (cluster/namespace/pod/container/type, as open_incidents"
                " returns it)"
            )
        cluster, namespace, subject = parts[:3]
        container = parts[3] if len(parts) == 5 else None
        if subject.startswith("workload:"):
            workload = subject.removeprefix("workload:")
            return cls(cluster, parts[-1], namespace, workload=workload, container=container)
        return cls(cluster, parts[-1], namespace, subject, guess_workload_name(subject), container=container)

    @classmethod
    def lenient(cls, text: str) -> IncidentId:
        """The parts of an id of a shape this CLI does not know (a newer stack's): cluster and type."""
        try:
            return cls.parse(text)
        except ValueError:
            parts = text.split("/")
            return cls(parts[0], parts[-1])

    @property
    def subject(self) -> tuple[str, str, str] | None:
        """(Kind, namespace, name) of the object whose history holds the incident; None for a workload."""
        if self.pod is not None and self.namespace is not None:
            return "Pod", self.namespace, self.pod
        if self.node is not None:
            return "Node", "", self.node
        return None


@dataclass(slots=True)
class Incident:
    """One incident as the records in the window show it."""

    id: str
    state: str = FIRING
    opened_at: str | None = None
    last_seen: str | None = None
    resolved_at: str | None = None
    occurrences: int = 0
    reasons: list[str] = field(default_factory=list)
    last_message: str | None = None

    @property
    def key(self) -> IncidentId:
        return IncidentId.lenient(self.id)

    def as_dict(self) -> dict[str, Any]:
        key = self.key
        return {
            "id": self.id,
            "uri": URI_PREFIX + self.id,
            "state": self.state,
            "eventType": key.event_type,
            "cluster": key.cluster,
            "namespace": key.namespace,
            "pod": key.pod,
            "workload": key.workload,
            "node": key.node,
            "container": key.container,
            "openedAt": self.opened_at,
            "lastSeen": self.last_seen,
            "resolvedAt": self.resolved_at,
            "occurrences": self.occurrences,
            "reasons": self.reasons,
            "lastMessage": self.last_message,
        }


def subject_of(record: Mapping[str, Any]) -> tuple[str, str, str]:
    """(Kind, namespace, name) of the object a record is about: its own, or an Event's involved one."""
    ref = record["objectRef"]
    involved = record.get("involvedObject") or {}
    if ref["kind"] == "Event" and involved.get("name"):
        return str(involved.get("kind")), str(involved.get("namespace") or ""), str(involved["name"])
    return str(ref["kind"]), str(ref.get("namespace") or ""), str(ref["name"])


def is_deletion_of(record: Mapping[str, Any], key: IncidentId) -> bool:
    """Whether the record is the deletion of the incident's pod or node."""
    return (
        record.get("verb") == "delete"
        and record["objectRef"]["kind"] != "Event"
        and (subject_of(record) == key.subject)
    )


def _message(record: Mapping[str, Any]) -> str | None:
    if record.get("message"):
        return str(record["message"])
    for container in (record.get("object") or {}).get("containers", []):
        if container.get("message"):
            return str(container["message"])
    return None


def _apply(incident: Incident, record: Mapping[str, Any], verdict: Mapping[str, Any]) -> None:
    """One classified record, in time order, applied to its incident."""
    when = str(record["timestamp"])
    if verdict.get("eventType") == RECOVERED:
        if verdict.get("decision") == "forwarded":  # it resolved the incident (dedup said so)
            incident.state, incident.resolved_at = RESOLVED, when
        return
    if incident.state != FIRING or verdict.get("reason") == "opened":  # trouble again: a new incident
        incident.state, incident.resolved_at, incident.occurrences, incident.reasons = FIRING, None, 0, []
        incident.opened_at = None
    if verdict.get("reason") == "opened":
        incident.opened_at = when
    incident.occurrences += 1
    incident.last_seen = when
    reason = record.get("reason")
    if reason and reason not in incident.reasons:
        incident.reasons.append(str(reason))
    incident.last_message = _message(record) or incident.last_message


def incidents_of(records: Iterable[Mapping[str, Any]]) -> list[Incident]:
    """The incidents the records show (records in any order), newest trouble first."""
    ordered = sorted(records, key=lambda r: str(r["timestamp"]))
    found: dict[str, Incident] = {}
    deleted_at: dict[tuple[str, str, str], str] = {}
    for record in ordered:
        if record.get("verb") == "delete" and record["objectRef"]["kind"] != "Event":
            deleted_at[subject_of(record)] = str(record["timestamp"])
        for verdict in record.get("classification") or []:
            incident_id = verdict.get("incidentId")
            if not incident_id or verdict.get("decision") not in _COUNTED:
                continue
            incident = found.setdefault(incident_id, Incident(incident_id))
            _apply(incident, record, verdict)
    for incident in found.values():
        subject = incident.key.subject
        gone = deleted_at.get(subject) if subject else None
        if subject and incident.state == FIRING and gone and gone >= (incident.last_seen or ""):
            incident.state = POD_DELETED if subject[0] == "Pod" else NODE_DELETED
    return sorted(found.values(), key=lambda i: i.last_seen or i.resolved_at or "", reverse=True)


def matches(incident: Incident, *, namespace: str | None, workload: str | None) -> bool:
    key = incident.key
    return (namespace is None or key.namespace == namespace) and (
        workload is None or workload in {key.workload, key.pod}
    )


def _containers(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {out: c[name] for name, out in _CONTAINER_FIELDS if c.get(name) is not None}
        for c in snapshot.get("containers", [])
    ]


def summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record without its full snapshot: for a pod its phase, node, restarts and containers' states;
    for an Event its type, count, message and first/last seen (about 30 % of the record's JSON); any
    other kind keeps its snapshot."""
    ref = record["objectRef"]
    out: dict[str, Any] = {
        "id": record["id"],
        "timestamp": record["timestamp"],
        "verb": record["verb"],
        "kind": ref["kind"],
        "namespace": ref["namespace"],
        "name": ref["name"],
        "reason": record.get("reason"),
        "classification": record.get("classification") or [],
    }
    if ref["kind"] == "Event":
        involved = record.get("involvedObject") or {}
        out.update(
            involvedObject={k: involved.get(k) for k in ("kind", "name", "fieldPath") if involved.get(k)},
            type=record.get("type"),
            count=record.get("count"),
            message=record.get("message"),
            firstSeen=record.get("firstSeen"),
            lastSeen=record.get("lastSeen"),
        )
        return out
    snapshot = record.get("object") or {}
    if ref["kind"] != "Pod":  # a kind without a summary of its own: its snapshot as recorded
        out["object"] = snapshot
        return out
    out.update(
        phase=snapshot.get("phase"),
        node=snapshot.get("node"),
        restartCount=snapshot.get("restart_count"),
        containers=_containers(snapshot),
    )
    if snapshot.get("message"):
        out["message"] = snapshot["message"]
    return out
