"""Identity: the ids other parts store and compare must not drift when their code is rewritten."""

from __future__ import annotations

import pytest

from podwatch import ids
from podwatch.models import EventType


@pytest.mark.parametrize("container", ["api", None, ""])
@pytest.mark.parametrize("event_type", [EventType.CRASH_LOOP, EventType.RECOVERED])
def test_notification_id_is_the_digest_of_its_parts(event_type: EventType, container: str | None) -> None:
    event_id = "6249b41dc5379cee80272dbbb151ba13"
    assert ids.notification_id(event_id, event_type, container) == ids._digest(
        "notification", event_id, event_type, container
    )


def test_notification_id_is_stable() -> None:
    # a notification id already stored (Restate idempotency keys, the audit trail) keeps its value
    assert (
        ids.notification_id("evt-12345678", EventType.CRASH_LOOP, "api") == "8e2d8b76f535c49422e0b9af294d4742"
    )
