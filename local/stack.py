"""The local stack: everything `sam deploy` + `helm install` would run, on loopback, in one process
tree. Used by `make run` (local/run.py) and the e2e tests.

    with LocalStack() as stack:
        result = stack.replay("events/replay/sample-stream.jsonl")   # the relay's own code → SQS
        stack.pump_until_idle()                                      # processor → deliver → Restate
        stack.delivered("local")                                     # what the manager recorded

What runs where:

* **moto server** (child process): SQS, DynamoDB, SSM, EventBridge, Lambda, CloudFormation. The
  stack is created from template.yaml by `local.cfn.provision` (aws-sam-translator, then moto's
  CreateStack; stack `podwatch-local`, `RestateIngressUrl` = the local ingress), so the local stack
  cannot drift from what is deployed.
* **Restate server** (child process, npm binary) and the **reference manager** (`local.manager`,
  hypercorn child process), registered through the admin API.
* **The reference agent** (`local.agent`, a real a2a-sdk A2A server, hypercorn child process): the
  stack's `KagentBaseUrl`, so applied Hooks (`apply_hooks`) call it; `hook_calls()` is what it got.
* **The functions** (in this process): each template function's handler is loaded from
  `functions/<name>/app.py` (`local.lambda_runtime`), with the environment the template gives it
  plus `AWS_ENDPOINT_URL` (moto) and dummy credentials, swapped in around every invocation.
* **Functions and event source mappings in moto's Lambda API** (created by the stack): placeholder
  code and SAM's generated mappings (disabled in moto), so `!Ref DeliverFunctionDeliveries` resolves
  and config-sync's UpdateEventSourceMapping acts on them.
* **Event source mappings** (`local.esm.SqsPoller`, one per SQS event of a function, from the
  template): batch size and batching window read from the moto mapping (window optionally
  capped), partial batch responses; failed
  records come back after `retry_delay_seconds` and redrive to the DLQ after maxReceiveCount.

Everything started is stopped on exit (context manager; atexit and parent-death as fallbacks).
Logs: `.local-run/<timestamp>/` (moto.log, restate.log, manager.log, functions.log when redirected).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Self

import httpx

from local import cfn
from local.agent import AgentServer
from local.esm import (
    INVOKE_LOCK,
    DrainResult,
    MappingSource,
    SqsPoller,
    drain,
    function_environment,
    running,
)
from local.historyapi import HistoryApiServer
from local.lambda_runtime import FUNCTIONS_DIR, LambdaContext, load_function_module
from local.moto import MotoServer
from local.processes import ROOT, ProcessError, ServerProcess, new_run_dir
from local.restate import ManagerServer, RestateServer
from podwatch import wire
from podwatch.errors import MalformedMessage
from podwatch_cli.lifecycle import StartStop

log = logging.getLogger("local.stack")

AUDIT_LOGGER = "podwatch.audit"
MANAGER_OBJECT = "PodwatchManager"
DEFAULT_CLUSTER_ID = "local"


# --------------------------------------------------------------------------- results


@dataclass
class LineOutcome:
    """One line of a replayed file and what the relay did with it."""

    line_no: int
    outcome: str
    watch_type: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    #: the pod the line is about (the pod itself, or the involvedObject of a core/v1 Event)
    pod: str | None = None
    event_id: str | None = None
    reason: str | None = None
    #: why the line cannot be read as JSON (the relay's outcome says what it did with it)
    error: str | None = None


@dataclass
class ReplayResult:
    """What the relay did with a replayed file: its stats, every line's outcome, every envelope sent."""

    path: str
    cluster_id: str
    stats: Any  # podwatch_relay.pipeline.RelayStats
    lines: list[LineOutcome] = field(default_factory=list)
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    #: the SQS message bodies the relay sent, exactly
    bodies: list[str] = field(default_factory=list)

    @property
    def event_ids(self) -> set[str]:
        return {e["event_id"] for e in self.envelopes if e.get("event_id")}


@dataclass
class DlqMessage:
    queue: str  # logical id of the DLQ
    message_id: str
    body: str
    reason: str | None
    error: str | None
    attributes: dict[str, str]
    receive_count: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _AuditCapture(logging.Handler):
    """Keeps every `podwatch.audit` record's `audit` dict (plus when it was logged)."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.records: list[dict[str, Any]] = []
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        audit = getattr(record, "audit", None)
        if isinstance(audit, Mapping):
            with self._records_lock:
                self.records.append({**audit, "logged_at": record.created})

    def snapshot(self) -> list[dict[str, Any]]:
        with self._records_lock:
            return list(self.records)


class _RecordingSink:
    """Wraps the relay's real sink and remembers every envelope it accepted, in order."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.bodies: list[str] = []

    def send(self, bodies: Any) -> Any:
        result = self.inner.send(bodies)
        self.bodies.extend(bodies)
        return result


def _describe_line(raw: bytes) -> dict[str, Any]:
    """Best-effort identity of a watch line, for the report (the relay decides what is valid)."""
    try:
        event = wire.loads(raw)
    except MalformedMessage as exc:
        return {"error": str(exc)}
    if not isinstance(event, dict):
        return {}
    obj = event.get("object")
    obj = obj if isinstance(obj, dict) else {}
    meta: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    out: dict[str, Any] = {
        "watch_type": event.get("type") if isinstance(event.get("type"), str) else None,
        "kind": obj.get("kind") if isinstance(obj.get("kind"), str) else None,
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "reason": obj.get("reason") if isinstance(obj.get("reason"), str) else None,
    }
    if out["kind"] == "Pod":
        out["pod"] = out["name"]
    elif out["kind"] == "Event":
        involved = obj.get("involvedObject") or obj.get("regarding") or {}
        if isinstance(involved, dict) and involved.get("kind") == "Pod":
            out["pod"] = involved.get("name")
            out["namespace"] = involved.get("namespace") or out["namespace"]
    return out


# --------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class LocalPorts:
    """Fixed loopback ports of a local stack that stays up (`make up`; README, "The local stack")."""

    moto: int = 4566
    restate_ingress: int = 18080
    restate_admin: int = 19070
    restate_node: int = 15122
    manager: int = 19080
    history_api: int = 18090


class LocalStack(StartStop):
    """moto + Restate + reference manager + the functions behind template-defined event sources."""

    def __init__(
        self,
        *,
        run_dir: Path | None = None,
        stack_name: str = cfn.DEFAULT_STACK_NAME,
        cluster_id: str = DEFAULT_CLUSTER_ID,
        region: str = "us-east-1",
        template_path: Path = cfn.TEMPLATE_PATH,
        parameters: Mapping[str, str] | None = None,
        retry_delay_seconds: int = 1,
        max_batching_window_seconds: float | None = None,
        function_output: IO[str] | None = None,
        environment_overrides: Mapping[str, Mapping[str, str]] | None = None,
        ports: LocalPorts | None = None,
    ) -> None:
        """`max_batching_window_seconds` caps the template's batching windows (tests use ~0.5 s;
        `make run` keeps the template's). `function_output`: where the functions' stdout/stderr
        (Powertools JSON logs, EMF metrics) go; default: this process's. `environment_overrides`:
        function logical id → variables set on top of the template's (tests: a short
        CONFIG_MAX_AGE_SECONDS, say). `ports`: fixed loopback ports (`make up`); None: free ones."""
        self.run_dir = run_dir
        self.ports = ports
        self.stack_name = stack_name
        self.cluster_id = cluster_id
        self.region = region
        self.template_path = template_path
        self.parameters = dict(parameters or {})
        self.retry_delay_seconds = retry_delay_seconds
        self.max_batching_window_seconds = max_batching_window_seconds
        self.function_output = function_output
        self.environment_overrides = {k: dict(v) for k, v in (environment_overrides or {}).items()}

        self.moto: MotoServer | None = None
        self.restate: RestateServer | None = None
        self.manager: ManagerServer | None = None
        self.agent: AgentServer | None = None
        self.provisioned: cfn.Provisioned | None = None
        self.sqs: Any = None
        #: moto's Lambda API: the template's functions and event source mappings (placeholders)
        self.lambda_client: Any = None
        self.pollers: dict[str, list[SqsPoller]] = {}
        self.function_env: dict[str, dict[str, str]] = {}
        self.function_modules: dict[str, ModuleType] = {}
        self.function_specs: dict[str, cfn.FunctionSpec] = {}
        self.started_at: float | None = None
        self._audit = _AuditCapture()
        self._stack = contextlib.ExitStack()
        self._http: httpx.Client | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        t0 = time.monotonic()
        self.run_dir = self.run_dir or new_run_dir()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ports = self.ports
        self.moto = MotoServer(self.run_dir, region=self.region, port=ports.moto if ports else 0)
        restate_ports = (ports.restate_ingress, ports.restate_admin, ports.restate_node) if ports else None
        self.restate = RestateServer(self.run_dir, ports=restate_ports)
        self.manager = ManagerServer(self.run_dir, port=ports.manager if ports else 0)
        self.agent = AgentServer(self.run_dir)
        servers: list[ServerProcess] = [self.moto, self.restate, self.manager, self.agent]
        for server in servers:  # spawned side by side, then waited for
            self._stack.callback(server.stop)
            server.spawn()
        for server in servers:
            server.wait_ready()
        self.restate.register(self.manager.uri)
        self.restate.wait_ingress_ready(MANAGER_OBJECT)
        self._http = self._stack.enter_context(
            httpx.Client(base_url=self.restate.ingress_url, timeout=httpx.Timeout(10.0, connect=2.0))
        )

        self.sqs = self.moto.client("sqs")
        template = cfn.load_template(self.template_path)
        parameters = {
            "Stage": "local",
            "RestateIngressUrl": self.restate.ingress_url,
            **(
                {"KagentBaseUrl": self.agent.base_url}
                if "KagentBaseUrl" in template.get("Parameters", {})
                else {}
            ),
            **({"ClusterIds": self.cluster_id} if "ClusterIds" in template.get("Parameters", {}) else {}),
            **(
                {"HistoryDefaultClusterId": self.cluster_id}
                if "HistoryDefaultClusterId" in template.get("Parameters", {})
                else {}
            ),
            **self.parameters,
        }
        if failed := cfn.failed_rules(template, cfn.parameter_values(template, parameters)):
            raise ProcessError(f"the template's Rules refuse these parameters: {', '.join(failed)}")
        self.provisioned = cfn.provision(
            template,
            clients=self.moto.client,
            stack_name=self.stack_name,
            parameters=parameters,
            region=self.region,
        )
        self.lambda_client = self.moto.client("lambda")
        self._attach_audit_capture()
        self._stack.callback(self._reset_functions)
        for lid, spec in self.provisioned.functions().items():
            self._wire_function(lid, spec, self.provisioned, self.moto)
        log.info("local stack up in %.1fs; logs in %s", time.monotonic() - t0, self.run_dir)
        self.started_at = time.time()

    def _attach_audit_capture(self) -> None:
        audit_logger = logging.getLogger(AUDIT_LOGGER)
        audit_logger.addHandler(self._audit)
        if audit_logger.getEffectiveLevel() > logging.INFO:
            audit_logger.setLevel(logging.INFO)
        self._stack.callback(audit_logger.removeHandler, self._audit)

    def _wire_function(
        self, lid: str, spec: cfn.FunctionSpec, provisioned: cfn.Provisioned, moto: MotoServer
    ) -> None:
        if spec.code_dir.parent != FUNCTIONS_DIR.resolve() or spec.module != "app":
            raise ProcessError(f"{lid}: only functions/<name>/app.<handler> can run locally, got {spec}")
        env = {
            **provisioned.function_environment(lid),
            **moto.env(),
            "POWERTOOLS_TRACE_DISABLED": "true",
            **self.environment_overrides.get(lid, {}),
        }
        self.function_env[lid] = env
        name = spec.code_dir.name
        with function_environment(env), self._function_output():
            module = load_function_module(name, fresh=True)
            reset = getattr(module, "reset", None)
            if callable(reset):  # dependencies of an earlier run in this process must not leak in
                reset()
        self.function_modules[lid] = module
        self.function_specs[lid] = spec
        handler = getattr(module, spec.function)
        self.pollers[lid] = [
            SqsPoller(
                sqs=self.sqs,
                queue_url=source.queue_url,
                queue_arn=source.queue_arn,
                handler=handler,
                function_name=spec.name,
                batch_size=source.batch_size,
                batching_window_seconds=float(source.maximum_batching_window_seconds),
                max_batching_window_seconds=self.max_batching_window_seconds,
                mapping=MappingSource(self.lambda_client, source.mapping_id),
                report_batch_item_failures=source.report_batch_item_failures,
                retry_delay_seconds=self.retry_delay_seconds,
                timeout_seconds=spec.timeout,
                environment=env,
                output=self.function_output,
                region=self.region,
                account_id=provisioned.account_id,
            )
            for source in provisioned.event_sources(lid)
            if source.enabled
        ]

    @contextlib.contextmanager
    def _function_output(self) -> Iterator[None]:
        if self.function_output is None:
            yield
            return
        with (
            contextlib.redirect_stdout(self.function_output),
            contextlib.redirect_stderr(self.function_output),
        ):
            yield

    def _reset_functions(self) -> None:
        """Drop the functions' cached dependencies (clients pointing at servers about to stop)."""
        for lid, module in self.function_modules.items():
            reset = getattr(module, "reset", None)
            if callable(reset):
                with function_environment(self.function_env.get(lid, {})):
                    reset()

    def stop(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()

    # ------------------------------------------------------------------ helpers

    def _require(self) -> cfn.Provisioned:
        if self.provisioned is None:
            raise ProcessError("the local stack is not started")
        return self.provisioned

    @property
    def ingress_url(self) -> str:
        if self.restate is None:
            raise ProcessError("the local stack is not started")
        return self.restate.ingress_url

    def queue_url(self, logical_id: str) -> str:
        return self._require().physical(logical_id)

    def dlq_logical_ids(self) -> list[str]:
        """Queues that are the dead-letter target of another queue of the stack."""
        return self._require().dead_letter_queues()

    # ------------------------------------------------------------------ input

    def replay(
        self,
        path: str | Path,
        *,
        cluster_id: str | None = None,
        enroll: bool = True,
        relay_version: str | None = None,
        recorded_time: bool = False,
        progress: Callable[[int], None] | None = None,
        progress_every: int = 2000,
    ) -> ReplayResult:
        """Replay a watch-event file through the relay's real code (Relay + SqsSink → pod-events on
        moto), as `python -m podwatch_relay replay` does (enroll first unless `enroll=False`).

        `recorded_time`: the relay's clock is the recording's (`RecordedClock`), so `observed_at`
        is when each change happened, not when it is replayed (what `make run` shows); off, it is
        the wall clock (latency measurements). `progress(lines)` is called every `progress_every`
        lines (a big file: `make run` shows how far it got)."""
        from podwatch.models import utcnow
        from podwatch_relay import __version__ as relay_default_version
        from podwatch_relay.pipeline import Relay
        from podwatch_relay.replay import RecordedClock, replay_file
        from podwatch_relay.sink import SqsSink

        cluster = cluster_id or self.cluster_id
        sink = _RecordingSink(SqsSink(client=self.sqs, queue_url=self.queue_url("PodEventsQueue")))
        file_path = Path(path) if Path(path).is_absolute() else ROOT / path
        lines: list[LineOutcome] = []

        class _Relay(Relay):
            """The real Relay, noting each line's outcome for the report."""

            def handle_line(self, line: str | bytes, *, initial_sync: bool = False) -> str:
                outcome = super().handle_line(line, initial_sync=initial_sync)
                raw = line.encode() if isinstance(line, str) else line
                if outcome != "ignored:blank":
                    lines.append(LineOutcome(line_no=0, outcome=outcome, **_describe_line(raw)))
                    if progress is not None and len(lines) % progress_every == 0:
                        progress(len(lines))
                return outcome

        clock = RecordedClock() if recorded_time else None
        relay = _Relay(
            sink=sink,
            cluster_id=cluster,
            relay_version=relay_version or relay_default_version,
            clock=clock or utcnow,
        )
        if enroll:
            relay.enroll()
        stats = replay_file(file_path, relay, clock=clock)
        # line numbers (blank lines are not input events, but they are lines of the file)
        numbered = [i for i, raw in enumerate(file_path.read_bytes().splitlines(), start=1) if raw.strip()]
        for entry, number in zip(lines, numbered, strict=False):
            entry.line_no = number
        envelopes = [_envelope_summary(b) for b in sink.bodies]
        forwarded_lines = [entry for entry in lines if entry.outcome == "forwarded"]
        for entry, envelope in zip(
            forwarded_lines, [e for e in envelopes if e.get("kind") != "enroll"], strict=False
        ):
            entry.event_id = envelope.get("event_id")
        return ReplayResult(
            path=str(path),
            cluster_id=cluster,
            stats=stats,
            lines=lines,
            envelopes=envelopes,
            bodies=sink.bodies,
        )

    def send_raw(self, body: str, *, queue: str = "PodEventsQueue", **attributes: str) -> str:
        """Put a raw message on a queue (bad-input tests); returns its SQS message id."""
        kwargs: dict[str, Any] = {"QueueUrl": self.queue_url(queue), "MessageBody": body}
        if attributes:
            kwargs["MessageAttributes"] = {
                k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
            }
        message_id: str = self.sqs.send_message(**kwargs)["MessageId"]
        return message_id

    # ------------------------------------------------------------------ run

    def invoke(
        self, function_logical_id: str, event: dict[str, Any], *, timeout_ms: int | None = None
    ) -> Any:
        """Invoke a template function directly (a scheduled one, or a sample from events/), in its
        environment, as `sam local invoke` would; `timeout_ms`: the time the context says is left
        at the start (default: the template's timeout)."""
        spec = self.function_specs[function_logical_id]
        handler = getattr(self.function_modules[function_logical_id], spec.function)
        context = LambdaContext(
            function_name=spec.name,
            invoked_function_arn=self._require().arn(function_logical_id),
            timeout_ms=spec.timeout * 1000 if timeout_ms is None else timeout_ms,
        )
        with (
            INVOKE_LOCK,
            function_environment(self.function_env[function_logical_id]),
            self._function_output(),
        ):
            return handler(event, context)

    def in_function[T](self, function_logical_id: str, call: Callable[[ModuleType], T]) -> T:
        """`call(module)` inside the function's environment, e.g. to rebuild the deliver function's
        dependencies with test options: `stack.in_function("DeliverFunction", lambda m:
        m.set_dependencies(m.build_dependencies(breaker=...)))`."""
        module = self.function_modules[function_logical_id]
        with (
            INVOKE_LOCK,
            function_environment(self.function_env[function_logical_id]),
            self._function_output(),
        ):
            return call(module)

    def pumping(self) -> contextlib.AbstractContextManager[None]:
        """Every event source mapping runs in the background while the body runs (replay a big file
        and drain at once; moto's SQS slows as a queue fills). `pump_until_idle` settles the rest."""
        return running([p for ps in self.pollers.values() for p in ps])

    def progress(self) -> str:
        """How far the pipeline got: records each function's mappings handled so far."""
        return ", ".join(
            f"{lid.removesuffix('Function').lower()} {sum(p.stats.received for p in ps):,} records"
            for lid, ps in self.pollers.items()
        )

    def pump_until_idle(self, timeout: float = 60.0, *, until_idle: float = 0.5) -> DrainResult:
        """Run every event source mapping until all source queues are empty and nothing runs."""
        pollers = [p for ps in self.pollers.values() for p in ps]
        return drain(pollers, until_idle=until_idle, timeout=timeout)

    # ------------------------------------------------------------------ output

    def manager_call(
        self, cluster_id: str, handler: str, body: Any = None, *, idempotency_key: str | None = None
    ) -> httpx.Response:
        """POST {ingress}/PodwatchManager/{cluster_id}/{handler} (JSON body, optional idempotency key)."""
        if self._http is None:
            raise ProcessError("the local stack is not started")
        headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
        if body is None:
            return self._http.post(f"/{MANAGER_OBJECT}/{cluster_id}/{handler}", headers=headers)
        return self._http.post(f"/{MANAGER_OBJECT}/{cluster_id}/{handler}", json=body, headers=headers)

    def delivered(self, cluster_id: str | None = None) -> list[dict[str, Any]]:
        """The notifications the manager recorded for the cluster, in arrival order, as received."""
        response = self.manager_call(cluster_id or self.cluster_id, "GetDelivered")
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()["events"]
        return events

    def manager_stats(self, cluster_id: str | None = None) -> dict[str, Any]:
        response = self.manager_call(cluster_id or self.cluster_id, "GetStats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def dlq_messages(self) -> list[DlqMessage]:
        """Every message in the template's DLQs, with the quarantine attributes (reason, error, ...).
        Peeks: the messages stay on their queues."""
        out: list[DlqMessage] = []
        for lid in self.dlq_logical_ids():
            url = self.queue_url(lid)
            held: list[dict[str, Any]] = []
            while True:
                answer = self.sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=30,
                    AttributeNames=["All"],
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
                batch = answer.get("Messages", [])
                if not batch:
                    break
                held.extend(batch)
            for start in range(0, len(held), 10):
                self.sqs.change_message_visibility_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                        for i, m in enumerate(held[start : start + 10])
                    ],
                )
            for message in held:
                attrs = {k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()}
                out.append(
                    DlqMessage(
                        queue=lid,
                        message_id=message["MessageId"],
                        body=message["Body"],
                        reason=attrs.get("reason"),
                        error=attrs.get("error"),
                        attributes=attrs,
                        receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
                    )
                )
        return out

    def audit_records(self) -> list[dict[str, Any]]:
        """Every processor decision so far (`podwatch.audit` records), in order."""
        return self._audit.snapshot()

    # ------------------------------------------------------------------ hooks

    def apply_hooks(self, path: str | Path) -> str:
        """Validate and store the Hooks of a YAML file, as `podwatch hooks apply -f <path>` does (same
        `parse_hook` and `HookStore`; the CLI package is not on the local stack's path)."""
        import io

        import yaml

        from podwatch.hooks.rules import HookInvalid, parse_hook
        from podwatch.hooks.state import HookStore

        if self.moto is None:
            raise ProcessError("the local stack is not started")
        store = HookStore(table_name=self.queue_url("HooksTable"), client=self.moto.client("dynamodb"))
        out = io.StringIO()
        documents = [d for d in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if d is not None]
        try:
            hooks = [parse_hook(raw) for raw in documents]
        except HookInvalid as exc:
            raise ProcessError(f"{path}: {exc}") from exc
        for hook in hooks:
            store.put_rule(hook, now_s=int(time.time()), source="local")
            types = ", ".join(c.eventType for c in hook.spec.eventConfigurations)
            out.write(f"hook {hook.key} applied: {types}\n")
        if "HooksFunction" in self.function_modules:
            # deployed, new rules reach a warm function within RULES_MAX_AGE_SECONDS; the local
            # stack's one execution environment re-reads them at once, so a replay right after sees them
            self.in_function("HooksFunction", lambda module: module.reset())
        return out.getvalue()

    def hook_calls(self) -> list[dict[str, Any]]:
        """Every message the reference agent accepted, in arrival order (path, wire version, text)."""
        return self.agent.received() if self.agent is not None else []

    def hooks_summary(self) -> dict[str, Any]:
        """`hooks: {fired, deduplicated, failed, resolved}` from the hooks table, plus each call."""
        from podwatch.hooks.state import HookStore, status_of

        if self.moto is None:
            raise ProcessError("the local stack is not started")
        store = HookStore(table_name=self.queue_url("HooksTable"), client=self.moto.client("dynamodb"))
        totals = {"fired": 0, "deduplicated": 0, "failed": 0, "resolved": 0}
        for hook in store.rules():
            status = status_of(store.events(hook.key), now_s=int(time.time()))
            totals["fired"] += status["calls"]["ok"]
            totals["failed"] += status["calls"]["failed"]
            totals["deduplicated"] += status["duplicatesIgnored"]
            totals["resolved"] += sum(
                1 for e in store.events(hook.key) if e.get("state", {}).get("S") == "resolved"
            )
        return {**totals, "calls": self.hook_calls()}

    def restate_stats(self) -> dict[str, Any]:
        """Requests the deliver function made to the Restate ingress: {"requests", "by_status"}."""
        for lid, module in self.function_modules.items():
            if not hasattr(module, "dependencies") or "RESTATE_INGRESS_URL" not in self.function_env[lid]:
                continue
            with function_environment(self.function_env[lid]), self._function_output():
                deps = module.dependencies()
            stats: dict[str, Any] = deps.restate.stats.as_dict()
            return stats
        return {"requests": 0, "by_status": {}}

    def restate_requests(self) -> int:
        return int(self.restate_stats()["requests"])

    def serve_history_api(self, *, clock: Callable[[], Any] | None = None, port: int = 0) -> HistoryApiServer:
        """The history API (the template's HistoryFunction) on loopback until the stack stops;
        `clock`: the function's "now" (`make run`: the recording's); `port`: 0 = a free one."""
        if clock is not None:
            self.in_function(
                "HistoryFunction", lambda m: m.set_dependencies(m.build_dependencies(clock=clock))
            )
        server = HistoryApiServer(lambda event: self.invoke("HistoryFunction", event), port=port).start()
        self._stack.callback(server.stop)
        return server

    def history_items(self) -> list[dict[str, Any]]:
        """Every item of the history table (a Scan: tests and the report only)."""
        dynamodb = self._require_moto().client("dynamodb")
        table = self._require().physical("HistoryTable")
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": table}
        while True:
            answer = dynamodb.scan(**request)
            items += answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return items
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _require_moto(self) -> MotoServer:
        if self.moto is None:
            raise ProcessError("the local stack is not started")
        return self.moto

    def poller_stats(self) -> dict[str, list[dict[str, Any]]]:
        return {lid: [p.stats.as_dict() for p in ps] for lid, ps in self.pollers.items()}


def _envelope_summary(body: str) -> dict[str, Any]:
    try:
        data = wire.loads(body)
    except MalformedMessage:  # a quarantined body may be anything
        return {}
    if not isinstance(data, dict):
        return {}
    payload: dict[str, Any] = data["payload"] if isinstance(data.get("payload"), dict) else {}
    involved: dict[str, Any] = (
        payload["involved_object"] if isinstance(payload.get("involved_object"), dict) else {}
    )
    return {
        "event_id": data.get("event_id"),
        "kind": data.get("kind"),
        "namespace": payload.get("namespace"),
        "pod": payload.get("name") if data.get("kind") == "pod" else involved.get("name"),
        "watch_type": payload.get("watch_type"),
        "resource_version": payload.get("resource_version"),
    }
