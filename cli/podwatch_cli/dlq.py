"""`podwatch dlq list|show|redrive`: what is in the dead-letter queues, why, and replaying it.

A message reaches a DLQ in one of two ways:

* quarantined by a function (a permanent error): the original body, with message attributes
  `reason`, `error`, `source_message_id`, `body_sha256`, `body_truncated` and, for a manager 4xx,
  `status_code` and `response_body` (docs/internals.md, "Quarantine messages");
* moved by SQS after `maxReceiveCount` failed receives (transient errors that never cleared): the
  original message, with its own attributes and no `reason` — shown as `(retries exhausted)`.

Reading peeks: messages are received with a short visibility timeout and released at once, so they
stay. A redrive sends each selected body back to the queue the DLQ belongs to (without the quarantine
attributes, keeping any others) and deletes it from the DLQ only once SQS took it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from podwatch import wire
from podwatch.errors import PERMANENT_REASONS, MalformedMessage
from podwatch.quarantine import REDRIVE_ATTRIBUTE
from podwatch_cli.progress import Progress
from podwatch_cli.stack import DLQ_SOURCES, QUEUES, Stack

#: Attributes a quarantine adds; a redrive drops them (they describe the failure, not the message).
QUARANTINE_ATTRIBUTES = frozenset(
    {"reason", "error", "source_message_id", "body_sha256", "body_truncated", "status_code", "response_body"}
)
EXHAUSTED = "(retries exhausted)"
#: what `--reason` calls the messages SQS moved (no `reason` attribute)
EXHAUSTED_REASON = "retries_exhausted"
#: How long a peeked message stays hidden from the functions (it is released right after).
PEEK_VISIBILITY_SECONDS = 30


@dataclass
class DlqMessage:
    queue: str
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]
    raw_attributes: dict[str, Any]
    system: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.attributes.get("reason", EXHAUSTED)

    @property
    def truncated(self) -> bool:
        return self.attributes.get("body_truncated") == "true"

    @property
    def sent_at(self) -> str:
        stamp = self.system.get("SentTimestamp")
        if not stamp:
            return "?"
        return datetime.fromtimestamp(int(stamp) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")

    @property
    def receive_count(self) -> str:
        return self.system.get("ApproximateReceiveCount", "?")

    def summary(self) -> dict[str, Any]:
        return {
            "queue": QUEUES[self.queue][0],
            "message_id": self.message_id,
            "reason": self.reason,
            "error": self.attributes.get("error"),
            "sent_at": self.sent_at,
            "receive_count": self.receive_count,
            "attributes": self.attributes,
        }


def _messages(sqs: Any, queue: str, url: str, *, visibility: int, limit: int) -> Iterator[list[DlqMessage]]:
    """Batches received from `url` (hidden for `visibility` s) until the queue has none left or
    `limit` were received. Two empty long polls in a row end it (a short poll may miss messages)."""
    received = empty = 0
    while received < limit and empty < 2:
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, limit - received),
            VisibilityTimeout=visibility,
            WaitTimeSeconds=1 if empty else 0,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        batch = answer.get("Messages", [])
        if not batch:
            empty += 1
            continue
        empty = 0
        received += len(batch)
        yield [
            DlqMessage(
                queue=queue,
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m["Body"],
                attributes={
                    k: str(v.get("StringValue", "")) for k, v in m.get("MessageAttributes", {}).items()
                },
                raw_attributes=dict(m.get("MessageAttributes", {})),
                system=dict(m.get("Attributes", {})),
            )
            for m in batch
        ]


def _release(sqs: Any, url: str, messages: Sequence[DlqMessage]) -> None:
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ],
        )


def peek(sqs: Any, stack: Stack, dlqs: Sequence[str], *, limit: int) -> list[DlqMessage]:
    """Every message (up to `limit` per DLQ) of `dlqs`, left on their queues."""
    found: list[DlqMessage] = []
    for dlq in dlqs:
        url = stack.queue_url(dlq)
        held = [
            m
            for batch in _messages(sqs, dlq, url, visibility=PEEK_VISIBILITY_SECONDS, limit=limit)
            for m in batch
        ]
        _release(sqs, url, held)
        found += held
    return found


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def cmd_list(sqs: Any, stack: Stack, dlqs: Sequence[str], *, limit: int, as_json: bool, out: IO[str]) -> int:
    messages = peek(sqs, stack, dlqs, limit=limit)
    if as_json:
        out.write(json.dumps([m.summary() for m in messages], indent=2) + "\n")
        return 0
    if not messages:
        out.write(f"no messages in {', '.join(QUEUES[d][0] for d in dlqs)}\n")
        return 0
    rows = [("QUEUE", "MESSAGE ID", "REASON", "SENT", "RECEIVES", "ERROR")]
    for m in sorted(messages, key=lambda m: (m.queue, m.sent_at)):
        error = m.attributes.get("error", "")
        rows.append((QUEUES[m.queue][0], m.message_id, m.reason, m.sent_at, m.receive_count, _cut(error, 70)))
    out.write(table(rows))
    out.write(
        f"{len(messages)} message(s); `podwatch dlq show ID` for one, `podwatch dlq redrive` to replay\n"
    )
    return 0


def cmd_show(
    sqs: Any, stack: Stack, dlqs: Sequence[str], message_id: str, *, limit: int, out: IO[str]
) -> int:
    match = [m for m in peek(sqs, stack, dlqs, limit=limit) if m.message_id == message_id]
    if not match:
        out.write(f"no message {message_id} in {', '.join(QUEUES[d][0] for d in dlqs)}\n")
        return 1
    m = match[0]
    out.write(f"queue:          {QUEUES[m.queue][0]} (redrives to {QUEUES[DLQ_SOURCES[m.queue]][0]})\n")
    out.write(f"message id:     {m.message_id}\n")
    out.write(f"reason:         {m.reason}\n")
    out.write(f"sent:           {m.sent_at}\n")
    out.write(f"receives:       {m.receive_count}\n")
    for key in sorted(m.attributes):
        if key != "reason":
            out.write(f"{key + ':':<16}{m.attributes[key]}\n")
    out.write("body:\n")
    try:  # bad input is what a DLQ holds: anything not strict JSON is shown as it is
        out.write(json.dumps(wire.loads(m.body), indent=2, ensure_ascii=False) + "\n")
    except MalformedMessage:
        out.write(m.body + "\n")
    return 0


@dataclass(frozen=True)
class Selection:
    """Which messages a redrive without ids takes: `every` (--all) one but permanent failures unless
    `include_permanent`; `reasons` (--reason) those quarantined for one of them, permanent or not
    (naming a reason is asking for it)."""

    every: bool = False
    reasons: frozenset[str] = frozenset()
    include_permanent: bool = False

    @property
    def any(self) -> bool:
        return self.every or bool(self.reasons)

    def takes(self, message: DlqMessage) -> bool:
        reason = _reason(message)
        if self.reasons:
            return reason in self.reasons
        return self.every and (self.include_permanent or reason not in PERMANENT_REASONS)

    def leaves_permanent(self, message: DlqMessage) -> bool:
        """--all passed over this message because it is a permanent failure."""
        passed_over = self.every and not self.reasons and not self.takes(message)
        return passed_over and _reason(message) in PERMANENT_REASONS


def _reason(message: DlqMessage) -> str:
    return EXHAUSTED_REASON if message.reason == EXHAUSTED else message.reason


def cmd_redrive(
    sqs: Any,
    stack: Stack,
    dlqs: Sequence[str],
    *,
    message_ids: Sequence[str],
    select: Selection,
    dry_run: bool,
    force: bool,
    limit: int,
    out: IO[str],
    err: IO[str],
    progress: bool | None = None,
) -> int:
    """Send the selected messages back to their source queue and delete them from the DLQ."""
    wanted = set(message_ids)
    moved = skipped = failed = left = 0
    # a message quarantined again while this runs is new: --all must not send it round again
    started_ms = int(datetime.now(UTC).timestamp() * 1000)
    for dlq in dlqs:
        url, source = stack.queue_url(dlq), stack.queue_url(DLQ_SOURCES[dlq])
        total = depth(sqs, url) if select.any else len(wanted)
        held: list[DlqMessage] = []
        label = f"redrive {QUEUES[dlq][0]} -> {QUEUES[DLQ_SOURCES[dlq]][0]}"
        with Progress(total, label, stream=err, enabled=progress) as bar:
            for batch in _messages(sqs, dlq, url, visibility=120, limit=limit):
                chosen = [
                    m
                    for m in batch
                    if m.message_id in wanted
                    or (select.takes(m) and int(m.system.get("SentTimestamp", 0)) < started_ms)
                ]
                left += sum(1 for m in batch if m not in chosen and select.leaves_permanent(m))
                held += [m for m in batch if m not in chosen]
                ready = []
                for m in chosen:
                    wanted.discard(m.message_id)
                    if m.truncated and not force:
                        err.write(
                            f"{m.message_id}: body was cut to fit the DLQ; not redriven (--force to send)\n"
                        )
                        skipped += 1
                        held.append(m)
                    else:
                        ready.append(m)
                if dry_run:
                    for m in ready:
                        out.write(
                            f"would redrive {m.message_id} ({m.reason}) to {QUEUES[DLQ_SOURCES[dlq]][0]}\n"
                        )
                    held += ready
                    moved += len(ready)
                else:
                    ok, bad = _send_back(sqs, source, url, ready)
                    moved, failed = moved + ok, failed + len(bad)
                    for m, why in bad:
                        err.write(f"{m.message_id}: not redriven: {why}\n")
                        held.append(m)
                bar.advance(len(chosen))
                if not select.any and not wanted:
                    break
        _release(sqs, url, held)
    for missing in sorted(wanted):
        err.write(f"{missing}: not found in {', '.join(QUEUES[d][0] for d in dlqs)}\n")
    verb = "would redrive" if dry_run else "redrove"
    out.write(f"{verb} {moved} message(s); {skipped} skipped, {failed} failed, {len(wanted)} not found\n")
    if left:
        out.write(
            f"{left} permanent failure(s) left in place ({', '.join(sorted(PERMANENT_REASONS))}): they would"
            " fail again; --include-permanent or --reason REASON to send them anyway\n"
        )
    return 0 if not (failed or wanted) else 1


def _send_back(
    sqs: Any, source_url: str, dlq_url: str, messages: Sequence[DlqMessage]
) -> tuple[int, list[Any]]:
    """Send to the source queue, then delete from the DLQ what SQS took. (sent, [(message, why)])."""
    if not messages:
        return 0, []
    by_id = {str(i): m for i, m in enumerate(messages)}
    answer = sqs.send_message_batch(
        QueueUrl=source_url,
        Entries=[
            {"Id": i, "MessageBody": m.body, "MessageAttributes": _redriven_attributes(m)}
            for i, m in by_id.items()
        ],
    )
    failures = [(by_id[f["Id"]], f.get("Message") or f.get("Code")) for f in answer.get("Failed", [])]
    sent = [by_id[s["Id"]] for s in answer.get("Successful", [])]
    if sent:
        deleted = sqs.delete_message_batch(
            QueueUrl=dlq_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(sent)],
        )
        for f in deleted.get("Failed", []):
            # sent but still in the DLQ: a later redrive would send it twice (the functions dedup it)
            failures.append((sent[int(f["Id"])], f"sent, but not deleted from the DLQ: {f.get('Message')}"))
    return len(sent), failures


def _redriven_attributes(message: DlqMessage) -> dict[str, Any]:
    """The message's own attributes without the quarantine's, and `redrive_count` one higher: the
    deliver function then asks Restate under a new idempotency key (Restate keeps the answer to a key,
    a rejection included, for 24 h, so the old key would get the old rejection back)."""
    kept = {k: v for k, v in message.raw_attributes.items() if k not in QUARANTINE_ATTRIBUTES}
    previous = str(kept.get(REDRIVE_ATTRIBUTE, {}).get("StringValue", "0"))
    count = int(previous) + 1 if previous.isdigit() else 1
    kept[REDRIVE_ATTRIBUTE] = {"DataType": "Number", "StringValue": str(count)}
    return kept


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in rows
    )
