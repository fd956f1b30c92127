"""SQS as the tests read it: everything on a queue now, received and deleted (moto, in-process or
a server)."""

from __future__ import annotations

from typing import Any


def drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message on the queue now, with its attributes, received and deleted."""
    out: list[dict[str, Any]] = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", []):
        out += messages
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)
    return out


def drain_bodies(sqs: Any, url: str) -> list[str]:
    """The bodies of every message on the queue now, received and deleted."""
    return [m["Body"] for m in drain_queue(sqs, url)]
