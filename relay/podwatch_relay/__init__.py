"""podwatch relay: watches pods and their core/v1 Events, forwards compact envelopes to SQS.

Modules, in the order data flows through them:

* `watch`      list-then-watch loop over the official client's raw API calls (no model objects)
* `replay`     the same path fed from a file of recorded watch events
* `pipeline`   `Relay`: one watch event in → outcome label out; envelopes batched to the sink
* `projection` raw Pod / Event JSON → `PodEvent` / `KubeEvent`, by allowlist
* `state`      `PodTracker` / `EventTracker`: forward only changes that matter, with transitions
* `sink`       `SqsSink`: SendMessageBatch with limits, partial-failure retries and typed errors
* `leader`     Lease leader election, and the gate that keeps a standby from forwarding
* `checkpoint` what was last forwarded, on the spool volume: a restarted relay diffs against it
* `settings`   `RelaySettings` from `PODWATCH_*` environment variables
* `app`        the CLI (`python -m podwatch_relay replay|watch`)
"""

from __future__ import annotations

__version__ = "0.1.0"
