"""Issue 7 "Must show", through the whole local stack: the manager rejects a cluster's notifications
(4xx) so they land in the deliveries DLQ with the reason; the operator fixes the manager and runs
`podwatch dlq redrive`; the notifications are then delivered, each once.

Restate keeps the answer to an idempotency key for 24 h, a rejection included: the redrive works
because the CLI stamps `redrive_count` on what it sends back and the deliver function asks Restate
under a fresh key for a redriven chunk.
"""

from __future__ import annotations

import io
import json

import pytest

from local.stack import DlqMessage, LocalStack
from podwatch_cli.app import main
from tests.factories import pod_notification

pytestmark = pytest.mark.e2e


def podwatch(stack: LocalStack, *args: str) -> tuple[int, str, str]:
    assert stack.moto is not None
    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "--stack",
            stack.stack_name,
            "--endpoint-url",
            stack.moto.endpoint_url,
            "--region",
            stack.region,
            *args,
        ],
        out=out,
        err=err,
    )
    return code, out.getvalue(), err.getvalue()


def set_fault(stack: LocalStack, cluster: str, status: int | None, message: str = "") -> None:
    body = None if status is None else {"status_code": status, "message": message}
    response = stack.manager_call(cluster, "SetFault", body)  # no body: clear the fault
    assert response.status_code == 200, response.text


def rejected_in_dlq(stack: LocalStack, cluster_id: str) -> list[DlqMessage]:
    return [
        m
        for m in stack.dlq_messages()
        if m.queue == "DeliveriesDLQ" and json.loads(m.body).get("cluster_id") == cluster_id
    ]


def test_a_rejected_delivery_is_delivered_after_a_fix_and_a_redrive(
    local_stack: LocalStack, cluster_id: str
) -> None:
    # Given a manager that rejects this cluster (a 4xx: permanent, straight to the deliveries DLQ)
    set_fault(local_stack, cluster_id, 422, f"cluster {cluster_id} is not enrolled yet")
    notification = pod_notification(cluster_id, "api-0")
    local_stack.sqs.send_message(
        QueueUrl=local_stack.queue_url("DeliveriesQueue"), MessageBody=notification.model_dump_json()
    )
    local_stack.pump_until_idle(timeout=60)
    assert local_stack.delivered(cluster_id) == []
    (rejected,) = rejected_in_dlq(local_stack, cluster_id)
    assert (rejected.reason, rejected.attributes.get("status_code")) == ("rejected", "422")

    # When the operator sees why, fixes the manager, and redrives the message: the same chunk as
    # before, whose key Restate answered with the rejection (kept 24 h)
    code, out, err = podwatch(local_stack, "dlq", "show", rejected.message_id)
    assert code == 0, err
    assert "is not enrolled yet" in out
    set_fault(local_stack, cluster_id, None)
    code, out, err = podwatch(local_stack, "dlq", "redrive", rejected.message_id)
    assert code == 0, err
    assert "redrove 1 message(s)" in out
    local_stack.pump_until_idle(timeout=60)

    # Then it reaches the manager, once, and nothing of it is left in the DLQ
    assert [n["notification_id"] for n in local_stack.delivered(cluster_id)] == [notification.notification_id]
    assert rejected_in_dlq(local_stack, cluster_id) == []
