"""relay/chart, rendered by the real helm binary (scripts/install-helm-tools.sh puts it in .tools/):
least-privilege RBAC, a hardened pod, two replicas with probes, every relay setting mapped, and the
chart README's install command rendering as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
import pytest
import yaml
from pydantic import ValidationError

from podwatch_relay.kinds import BUILTIN, HOOK_GROUP, HOOK_PLURAL
from podwatch_relay.settings import CHART_KINDS, RelaySettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "relay" / "chart"
README = CHART / "README.md"
HELM = Path(os.environ.get("HELM", ROOT / ".tools" / "bin" / "helm"))
RELEASE = "podwatch-relay"
NAMESPACE = "podwatch"
QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/podwatch-pod-events"
ROLE_ARN = "arn:aws:iam::123456789012:role/podwatch-relay"
REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
#: What the README's placeholders stand for when the test runs its commands.
PLACEHOLDERS = {
    "<PodEventsQueueUrl output>": QUEUE_URL,
    "<role with RelayPolicyArn>": ROLE_ARN,
    "<registry>": REGISTRY,
}
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))

#: The only grants: the relay's calls (watch.py): list/watch pods and Events, get kube-system (the
#: default cluster id), list/watch namespaces (label selector mode); get/create/update the Lease.
READ_VERBS = {"get", "list", "watch"}
LEASE_VERBS = {"get", "create", "update"}

#: RelaySettings field -> values.yaml path. Every field must be here (checked below).
SETTINGS_VALUES = {
    "queue_url": "sqs.queueUrl",
    "cluster_id": "relay.clusterId",
    "namespaces": "relay.namespaces",
    "initial_sync_mode": "relay.initialSyncMode",
    "label_keys": "relay.labelKeys",
    "kinds": "relay.kinds",
    "custom_resource_groups": "relay.customResourceGroups",
    "watch_hooks": "hooks.watchCRD",
    "request_timeout_seconds": "relay.requestTimeoutSeconds",
    "watch_timeout_seconds": "relay.watchTimeoutSeconds",
    "inactivity_timeout_seconds": "relay.inactivityTimeoutSeconds",
    "reconnect_backoff_seconds": "relay.reconnectBackoffSeconds",
    "reconnect_backoff_max_seconds": "relay.reconnectBackoffMaxSeconds",
    "list_page_size": "relay.listPageSize",
    "flush_interval_seconds": "relay.flushIntervalSeconds",
    "sqs_batch_size": "sqs.batchSize",
    "sqs_max_batch_bytes": "sqs.maxBatchBytes",
    "sqs_max_attempts": "sqs.maxAttempts",
    "sqs_backoff_seconds": "sqs.backoffSeconds",
    "sqs_backoff_max_seconds": "sqs.backoffMaxSeconds",
    "sqs_connect_timeout_seconds": "sqs.connectTimeoutSeconds",
    "sqs_read_timeout_seconds": "sqs.readTimeoutSeconds",
    "log_level": "relay.logLevel",
    "namespace_selector": "relay.namespaceSelector",
    "buffer_size": "relay.bufferSize",
    "backpressure_timeout_seconds": "relay.backpressureTimeoutSeconds",
    "shutdown_grace_seconds": "relay.shutdownGraceSeconds",
    "heartbeat_interval_seconds": "relay.heartbeatIntervalSeconds",
    "pending_too_long_seconds": "relay.pendingTooLongSeconds",
    "not_ready_too_long_seconds": "relay.notReadyTooLongSeconds",
    "look_again_interval_seconds": "relay.lookAgainIntervalSeconds",
    "health_stall_seconds": "relay.healthStallSeconds",
    "http_port": "containerPorts.http",
    "spool_dir": "spool.path",
    "spool_max_bytes": "spool.maxBytes",
    "checkpoint_interval_seconds": "spool.checkpointIntervalSeconds",
    "leader_election": "leaderElection.enabled",
    "lease_name": "leaderElection.leaseName",
    "lease_duration_seconds": "leaderElection.leaseDurationSeconds",
    "renew_deadline_seconds": "leaderElection.renewDeadlineSeconds",
    "retry_period_seconds": "leaderElection.retryPeriodSeconds",
}
#: RelaySettings fields the chart sets from the downward API, not from a value.
SETTINGS_DOWNWARD_API = {"lease_namespace", "lease_identity"}
#: Where the chart's defaults deliberately differ from the relay's: the chart always mounts a spool
#: volume and turns the spool on (the relay alone has none), and runs replicas, so it elects a
#: leader (the relay alone is one process).
CHART_DEFAULT_OVERRIDES: dict[str, Any] = {
    "spool_dir": "/var/spool/podwatch",
    "leader_election": True,
    "kinds": CHART_KINDS,
}
#: PODWATCH_* variables the chart may set ahead of the relay code that reads them (none now). The
#: relay ignores unknown variables, so a name set here and read under another name would fail
#: silently: keep both sides in step.
PENDING_VARIABLES: set[str] = set()

Manifest = list[dict[str, Any]]


# --- rendering ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not (HELM.is_file() and os.access(HELM, os.X_OK)):
        reason = f"helm is not installed at {HELM}: run scripts/install-helm-tools.sh"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("helm")
    return os.environ | {
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def helm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HELM), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def render(env: dict[str, str], *args: str) -> Manifest:
    done = helm(env, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_error(env: dict[str, str], *args: str) -> str:
    done = helm(env, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    assert done.returncode != 0, f"helm template {' '.join(args)} rendered; it must fail"
    return done.stderr


@pytest.fixture(scope="session")
def default(helm_env: dict[str, str]) -> Manifest:
    return render(helm_env, "--set", f"sqs.queueUrl={QUEUE_URL}")


@pytest.fixture(scope="session")
def renders(helm_env: dict[str, str], default: Manifest) -> dict[str, Manifest]:
    """The default values and every ci/*.yaml: what scripts/check-chart.sh validates."""
    out = {"default": default}
    for values in CI_VALUES:
        out[values.stem] = render(helm_env, "--values", str(values))
    return out


def objects(manifest: Manifest, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifest if doc["kind"] == kind]


def one(manifest: Manifest, kind: str) -> dict[str, Any]:
    [obj] = objects(manifest, kind)
    return obj


def pod_spec(manifest: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifest, "Deployment")["spec"]["template"]["spec"]
    return spec


def container(manifest: Manifest) -> dict[str, Any]:
    [relay] = pod_spec(manifest)["containers"]
    return dict(relay)


def environment(manifest: Manifest) -> dict[str, Any]:
    """The relay container's environment: the ConfigMap it loads, then its own env entries."""
    relay = container(manifest)
    [config_map] = [src["configMapRef"]["name"] for src in relay["envFrom"] if "configMapRef" in src]
    [settings] = [m for m in objects(manifest, "ConfigMap") if m["metadata"]["name"] == config_map]
    env: dict[str, Any] = dict(settings["data"])
    for entry in relay.get("env", []):
        env[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return env


def values_yaml() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def lookup(tree: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        tree = tree[key]
    return tree


# --- the README's install command -----------------------------------------------------------------


def readme_commands(program: str) -> Iterator[str]:
    """Shell commands in the README's ```sh blocks that start with `program`, continuations joined."""
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S):
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            if command.strip().startswith(program):
                yield command.strip()


def fill_placeholders(command: str) -> str:
    unknown = set(re.findall(r"<[^<>]+>", command)) - set(PLACEHOLDERS)
    assert not unknown, f"README placeholders this test cannot fill: {unknown}"
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(placeholder, value)
    return command


def test_readme_install_command_renders_as_written(helm_env: dict[str, str]) -> None:
    # Given the one `helm install` of the chart README
    [command] = readme_commands("helm install")
    argv = shlex.split(fill_placeholders(command))
    assert argv[:4] == ["helm", "install", RELEASE, "relay/chart"]
    # When helm renders exactly that command (template takes the same flags)
    done = helm(helm_env, "template", *argv[2:])
    assert done.returncode == 0, done.stderr
    manifest = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    # Then the queue, the IRSA role and the image are the ones the README passes
    assert environment(manifest)["PODWATCH_QUEUE_URL"] == QUEUE_URL
    assert environment(manifest)["AWS_REGION"] == "eu-west-1"
    sa = one(manifest, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE_ARN}
    assert container(manifest)["image"] == f"{REGISTRY}/podwatch-relay:0.1.0"
    # and everything namespaced lands in the README's namespace, under the names its steps use
    for doc in manifest:
        if doc["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]
    assert "--create-namespace" in argv
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in manifest}
    lease = environment(manifest)["PODWATCH_LEASE_NAME"]
    for step in readme_commands("kubectl -n podwatch"):
        for kind, name in re.findall(r"\b(deployment|service)/([a-z0-9-]+)", step):
            assert (kind.capitalize(), name) in names, step
        for name in re.findall(r"\bget lease ([a-z0-9-]+)", step):
            assert name == lease, step
    # and the ServiceAccount the README's IAM trust policy and Pod Identity association name is this one
    text = README.read_text()
    assert f"system:serviceaccount:{NAMESPACE}:{sa['metadata']['name']}" in text
    assert f"--namespace {NAMESPACE} --service-account {sa['metadata']['name']}" in text


def test_readme_sets_only_values_that_exist() -> None:
    values = values_yaml()
    commands = [*readme_commands("helm install"), *readme_commands("helm upgrade")]
    assert commands
    for command in commands:
        for key in re.findall(r"--set ([A-Za-z][\w.]*?)(?:\.\"[^\"]+\")?=", command):
            lookup(values, key)


# --- RBAC -----------------------------------------------------------------------------------------


def _needed_cluster_grants(
    env: dict[str, Any], custom_groups: set[str]
) -> set[tuple[str, str, str, tuple[str, ...]]]:
    """(apiGroup, resource, verb, resourceNames) the relay calls with these settings (watch.py,
    objectwatch.py): the pod path's, each configured kind's (kinds.BUILTIN), CRDs and custom
    resource groups, khook's hooks."""
    every = ("*",)
    needed = {("", r, v, every) for r in ("pods", "events") for v in ("list", "watch")}
    if "PODWATCH_CLUSTER_ID" not in env:
        needed.add(("", "namespaces", "get", ("kube-system",)))
    if "PODWATCH_NAMESPACE_SELECTOR" in env:
        needed |= {("", "namespaces", v, every) for v in ("list", "watch")}
    for kind in filter(None, env.get("PODWATCH_KINDS", "").split(",")):
        if kind in BUILTIN:
            needed |= {(BUILTIN[kind].group, BUILTIN[kind].plural, v, every) for v in ("list", "watch")}
    hooks = env.get("PODWATCH_WATCH_HOOKS") == "true"
    if custom_groups or hooks:
        needed |= {("apiextensions.k8s.io", "customresourcedefinitions", v, every) for v in ("list", "watch")}
    needed |= {(g, "*", v, every) for g in custom_groups for v in ("list", "watch")}
    if hooks:
        needed |= {(HOOK_GROUP, HOOK_PLURAL, v, every) for v in ("list", "watch")}
    return needed


def test_rbac_grants_only_reads_of_watched_resources_and_the_lease(renders: dict[str, Manifest]) -> None:
    builtin_groups = {spec.group for spec in BUILTIN.values()} | {"apiextensions.k8s.io"}
    for name, manifest in renders.items():
        sa_name = pod_spec(manifest)["serviceAccountName"]
        roles = {}
        for cluster_role in objects(manifest, "ClusterRole"):
            assert "aggregationRule" not in cluster_role, name
            granted = set()
            custom_groups: set[str] = set()
            for rule in cluster_role["rules"]:
                assert set(rule) - {"resourceNames"} == {"apiGroups", "resources", "verbs"}, (name, rule)
                assert set(rule["verbs"]) <= READ_VERBS, (name, rule)
                assert "secrets" not in rule["resources"], (name, rule)
                if rule["resources"] == ["*"]:  # custom resource groups: never a built-in group
                    assert not set(rule["apiGroups"]) & builtin_groups, (name, rule)
                    custom_groups |= set(rule["apiGroups"])
                names = tuple(rule.get("resourceNames", ["*"]))
                granted |= {
                    (g, r, v, names)
                    for g in rule["apiGroups"]
                    for r in rule["resources"]
                    for v in rule["verbs"]
                }
            # exactly the calls the relay makes with these settings: not less, not more
            env = environment(manifest)
            exact = {
                g for g in env.get("PODWATCH_CUSTOM_RESOURCE_GROUPS", "").split(",") if g and "*" not in g
            }
            assert exact <= custom_groups, name
            assert granted == _needed_cluster_grants(env, custom_groups), name
            roles["ClusterRole", cluster_role["metadata"]["name"]] = cluster_role
        lease = environment(manifest).get("PODWATCH_LEASE_NAME")
        for role in objects(manifest, "Role"):
            assert lease, f"{name}: a Role without leader election"
            for rule in role["rules"]:
                assert rule["apiGroups"] == ["coordination.k8s.io"], (name, rule)
                assert rule["resources"] == ["leases"], (name, rule)
                assert set(rule["verbs"]) <= LEASE_VERBS, (name, rule)
                if set(rule["verbs"]) != {"create"}:  # a create cannot be limited by name
                    assert rule["resourceNames"] == [lease], (name, rule)
            roles["Role", role["metadata"]["name"]] = role
        assert bool(objects(manifest, "Role")) == bool(lease), name
        bindings = objects(manifest, "ClusterRoleBinding") + objects(manifest, "RoleBinding")
        assert len(bindings) == len(roles), name
        for binding in bindings:
            ref = binding["roleRef"]
            assert (ref["kind"], ref["name"]) in roles, (name, ref)
            assert binding["subjects"] == [
                {"kind": "ServiceAccount", "name": sa_name, "namespace": NAMESPACE}
            ], name
        assert {doc["kind"] for doc in manifest} <= {
            "ServiceAccount",
            "ConfigMap",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
            "PersistentVolumeClaim",
            "ServiceMonitor",
            "PrometheusRule",
            "NetworkPolicy",
        }, name


@pytest.mark.parametrize("kind", ["Secret", "secret"])
def test_a_secret_in_the_kinds_fails_the_render(helm_env: dict[str, str], kind: str) -> None:
    error = render_error(
        helm_env, "--set", f"sqs.queueUrl={QUEUE_URL}", "--set", f"relay.kinds={{Pod,{kind}}}"
    )
    assert "Secret is never watched" in error


def test_an_unknown_kind_or_an_ungranted_group_pattern_fails_the_render(helm_env: dict[str, str]) -> None:
    queue = f"sqs.queueUrl={QUEUE_URL}"
    assert 'unknown kind "Widget"' in render_error(
        helm_env, "--set", queue, "--set", "relay.kinds={Pod,Widget}"
    )
    error = render_error(helm_env, "--set", queue, "--set", "relay.customResourceGroups={*.acme.io}")
    assert "rbac.customResourceApiGroups" in error


# --- the pod --------------------------------------------------------------------------------------


def test_pod_is_hardened(renders: dict[str, Manifest]) -> None:
    for name, manifest in renders.items():
        spec = pod_spec(manifest)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert isinstance(pod["runAsUser"], int), name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        relay = container(manifest)["securityContext"]
        assert relay["runAsNonRoot"] is True, name
        assert relay["runAsUser"] == pod["runAsUser"], name
        assert relay["readOnlyRootFilesystem"] is True, name
        assert relay["allowPrivilegeEscalation"] is False, name
        assert relay["privileged"] is False, name
        assert relay["capabilities"] == {"drop": ["ALL"]}, name
        assert relay["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host), (name, host)
        # the API token goes to this pod only; the ServiceAccount does not hand it out by default
        assert spec["automountServiceAccountToken"] is True, name
        for sa in objects(manifest, "ServiceAccount"):
            assert sa["automountServiceAccountToken"] is False, name
        # writable places on a read-only root: /tmp and the spool, nothing else
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container(manifest)["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        spool = volumes[mounts[environment(manifest)["PODWATCH_SPOOL_DIR"]]]
        assert "emptyDir" in spool or "persistentVolumeClaim" in spool, name
        assert container(manifest)["resources"]["requests"], name
        assert container(manifest)["resources"]["limits"]["memory"], name


def test_default_is_two_replicas_with_probes_and_a_budget(default: Manifest) -> None:
    deployment = one(default, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    relay = container(default)
    assert relay["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert relay["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert relay["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    [port] = relay["ports"]
    assert port["name"] == "http"
    assert str(port["containerPort"]) == environment(default)["PODWATCH_HTTP_PORT"] == "8080"
    service = one(default, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    pdb = one(default, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    # the two replicas prefer different nodes
    term = pod_spec(default)["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    # leader election: lease name from values, namespace and identity from the downward API
    env = environment(default)
    assert env["PODWATCH_LEASE_NAME"] == RELEASE
    assert env["PODWATCH_LEASE_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["PODWATCH_LEASE_IDENTITY"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert not objects(default, "ServiceMonitor")


def test_http_port_and_drain_time_follow_the_settings(renders: dict[str, Manifest]) -> None:
    for name, manifest in renders.items():
        env = environment(manifest)
        relay = container(manifest)
        # the container port the probes and the Service target is the port the relay listens on
        [port] = relay["ports"]
        assert port["name"] == "http", name
        assert str(port["containerPort"]) == env["PODWATCH_HTTP_PORT"], name
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe in relay:
                assert relay[probe]["httpGet"]["port"] == "http", (name, probe)
        # SIGKILL comes after the relay's drain, not during it
        grace = pod_spec(manifest)["terminationGracePeriodSeconds"]
        assert grace > float(env["PODWATCH_SHUTDOWN_GRACE_SECONDS"]), name
        # the spool's cap fits in its volume, and the volume is mounted where the relay writes
        spool = {v["name"]: v for v in pod_spec(manifest)["volumes"]}["spool"]
        if "emptyDir" in spool:
            limit = spool["emptyDir"]["sizeLimit"]
            assert limit.endswith("Mi"), (name, limit)
            assert int(env["PODWATCH_SPOOL_MAX_BYTES"]) <= int(limit[:-2]) * 2**20, name
    custom = renders["namespace-selector-values"]
    assert environment(custom)["PODWATCH_HTTP_PORT"] == "9102"
    assert environment(custom)["PODWATCH_NAMESPACE_SELECTOR"] == "podwatch=on,tier!=dev"
    assert environment(custom)["PODWATCH_NAMESPACES"] == "*"


def test_single_replica_has_no_budget_lease_or_role(renders: dict[str, Manifest]) -> None:
    manifest = renders["single-replica-values"]
    assert one(manifest, "Deployment")["spec"]["replicas"] == 1
    assert not objects(manifest, "PodDisruptionBudget")
    assert not objects(manifest, "Role")
    assert not any(key.startswith("PODWATCH_LEASE") for key in environment(manifest))
    claim = one(manifest, "PersistentVolumeClaim")["metadata"]["name"]
    volumes = pod_spec(manifest)["volumes"]
    assert {"name": "spool", "persistentVolumeClaim": {"claimName": claim}} in volumes


def test_servicemonitor_scrapes_the_metrics_service(renders: dict[str, Manifest]) -> None:
    manifest = renders["irsa-servicemonitor-values"]
    monitor = one(manifest, "ServiceMonitor")
    service = one(manifest, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "http"
    assert endpoint["path"] == "/metrics"


# --- values, schema and the relay's settings ------------------------------------------------------


def test_every_relay_setting_has_a_value_and_a_variable(renders: dict[str, Manifest]) -> None:
    mapped = set(SETTINGS_VALUES) | SETTINGS_DOWNWARD_API
    assert mapped == set(RelaySettings.model_fields), "map every RelaySettings field"
    values = values_yaml()
    for field in mapped:
        if field in SETTINGS_VALUES:
            lookup(values, SETTINGS_VALUES[field])  # the key exists
        # set in some render (cluster_id only when given: unset means "ask the cluster")
        variable = f"PODWATCH_{field.upper()}"
        assert any(variable in environment(m) for m in renders.values()), variable
    for name, manifest in renders.items():
        for variable in environment(manifest):
            if variable.startswith("PODWATCH_"):
                field = variable.removeprefix("PODWATCH_").lower()
                assert field in RelaySettings.model_fields or variable in PENDING_VARIABLES, (name, variable)


def test_the_relay_accepts_every_rendered_configuration(
    renders: dict[str, Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay's own settings parser reads what the chart renders; chart defaults are its defaults."""
    for variable in [v for v in os.environ if v.startswith("PODWATCH_")]:
        monkeypatch.delenv(variable)
    for name, manifest in renders.items():
        env = {k: v for k, v in environment(manifest).items() if isinstance(v, str)}
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            try:
                settings = RelaySettings()
            except ValidationError as exc:
                pytest.fail(f"{name}: the relay rejects the chart's settings: {exc}")
        if name == "default":
            values = values_yaml()
            assert CHART_DEFAULT_OVERRIDES["spool_dir"] == lookup(values, "spool.path")
            assert CHART_DEFAULT_OVERRIDES["leader_election"] == lookup(values, "leaderElection.enabled")
            expected = RelaySettings(queue_url=QUEUE_URL, **CHART_DEFAULT_OVERRIDES).model_dump()
            assert settings.model_dump() == expected


def test_schema_bounds_match_the_relay_settings() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    for field, path in SETTINGS_VALUES.items():
        node = schema
        for key in path.split("."):
            node = node["properties"][key]
        info = RelaySettings.model_fields[field]
        for meta in info.metadata:
            if isinstance(meta, annotated_types.Gt):
                assert node.get("exclusiveMinimum") == meta.gt, path
            elif isinstance(meta, annotated_types.Ge):
                assert node.get("minimum") == meta.ge, path
            elif isinstance(meta, annotated_types.Le):
                assert node.get("maximum") == meta.le, path
        if get_origin(info.annotation) is Literal:
            assert set(node["enum"]) == set(get_args(info.annotation)), path


def test_values_and_schema_have_the_same_keys() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(values: dict[str, Any], node: dict[str, Any], where: str) -> None:
        if node.get("additionalProperties") is False:
            keys = set(node["properties"]) - {"global"}
            assert set(values) == keys, f"{where or 'top'}: values {set(values) ^ keys} differ"
        for key, value in values.items():
            child = node.get("properties", {}).get(key)
            if isinstance(value, dict) and child and "properties" in child:
                walk(value, child, f"{where}.{key}".lstrip("."))

    assert schema["additionalProperties"] is False
    walk(values_yaml(), schema, "")


def test_every_value_is_documented() -> None:
    """Each key has a `# --` comment, or sits under a key that has one (helm-docs' rule)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    documented_at: list[int] = []  # indents of documented ancestors
    undocumented = []
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w.-]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        documented_at = [i for i in documented_at if i < indent]
        above = lines[number - 1].strip() if number else ""
        comment = above.startswith("#") and number > 0
        # a `# --` comment may span several lines: walk up to its first line
        back = number - 1
        while back >= 0 and lines[back].strip().startswith("#") and "# --" not in lines[back]:
            back -= 1
        has_doc = comment and back >= 0 and "# --" in lines[back]
        if has_doc:
            documented_at.append(indent)
        elif not documented_at:
            undocumented.append(match.group(2))
    # objects whose children are each documented need no comment of their own
    parents = {"image", "sqs", "relay", "leaderElection", "spool", "emptyDir", "persistence"}
    parents |= {"serviceAccount", "rbac", "podDisruptionBudget", "service", "ports", "serviceMonitor"}
    parents |= {"prometheusRule", "grafanaDashboard", "networkPolicy", "hooks"}
    assert [key for key in undocumented if key not in parents] == []


# --- refusals -------------------------------------------------------------------------------------


def test_queue_url_is_required_with_a_clear_message(helm_env: dict[str, str]) -> None:
    assert "sqs.queueUrl is required" in render_error(helm_env)
    assert "PodEventsQueueUrl" in render_error(helm_env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "bogus=1"], "additional properties 'bogus' not allowed"),
        (["--set", "relay.bogus=1"], "additional properties 'bogus' not allowed"),
        (["--set", "relay.initialSyncMode=some"], "initialSyncMode"),
        (["--set", "sqs.batchSize=11"], "batchSize"),
        (["--set", "leaderElection.enabled=false"], "requires leaderElection.enabled=true"),
        (["--set", "leaderElection.retryPeriodSeconds=9"], "renewDeadlineSeconds must be greater than 1.2"),
        (["--set", "spool.persistence.enabled=true"], "ReadWriteMany"),
        (["--set", "sqs.queueUrl=http://localhost:4566/000000000000/q"], "sqs.region is required"),
        (["--set", "relay.shutdownGraceSeconds=30"], "terminationGracePeriodSeconds must be greater"),
        (["--set", "relay.healthStallSeconds=100"], "healthStallSeconds must be greater"),
        (["--set", "containerPorts.http=80"], "containerPorts.http must be at least 1024"),
        (["--set", "containerPorts.http=0"], "containerPorts.http must be at least 1024"),
        (["--set", "relay.namespaceSelector=a=b", "--set", "relay.namespaces={x}"], "cannot be combined"),
        (["--set", "spool.maxBytes=1073741824"], "must fit in the spool volume"),
        (["--set", "spool.maxBytes=1000"], "maxBytes"),
        (["--set", "relay.bufferSize=5"], "bufferSize"),
    ],
)
def test_chart_refuses_bad_values(helm_env: dict[str, str], args: list[str], message: str) -> None:
    queue = [] if any(a.startswith("sqs.queueUrl") for a in args) else ["--set", f"sqs.queueUrl={QUEUE_URL}"]
    assert message in render_error(helm_env, *queue, *args)


def test_notes_name_this_release_objects(helm_env: dict[str, str], default: Manifest) -> None:
    # `install --dry-run=client` renders NOTES.txt without a cluster
    done = helm(
        helm_env,
        *("install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE),
        *("--set", f"sqs.queueUrl={QUEUE_URL}"),
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("\nNOTES:\n", 1)[1]
    deployment = one(default, "Deployment")["metadata"]["name"]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{deployment}" in notes
    assert f"kubectl -n {NAMESPACE} logs deployment/{deployment}" in notes
    assert f"get lease {environment(default)['PODWATCH_LEASE_NAME']}" in notes
    assert f"port-forward service/{one(default, 'Service')['metadata']['name']}" in notes
    assert QUEUE_URL in notes


# --- monitoring: alerts and dashboard name what the relay exports; NetworkPolicy; metadata -------


def exported_metrics() -> set[str]:
    """The series names the relay's `/metrics` can carry, read from a registry built as `watch`
    builds it (every collector, the election's and the checkpoint's included)."""
    import threading

    from prometheus_client import generate_latest

    from podwatch_relay.checkpoint import CheckpointStats
    from podwatch_relay.leader import LeaderCollector, LeaderElector, StandbyGate
    from podwatch_relay.ops import RelayCollector, metrics_registry
    from podwatch_relay.outbox import Outbox
    from podwatch_relay.pipeline import Relay
    from podwatch_relay.sink import FileSink, SinkStats
    from podwatch_relay.watch import PODS, ListWatcher

    sink = FileSink(path=os.devnull)
    relay = Relay(sink=sink, cluster_id="c", relay_version="t")
    watcher = ListWatcher(api=None, relay=relay, resource=PODS, namespace=None, stop=threading.Event())  # type: ignore[arg-type]
    elector = LeaderElector(
        api=None, name="l", namespace="n", identity="i", lease_duration=15, renew_deadline=10, retry_period=2
    )  # type: ignore[arg-type]
    gate = StandbyGate(sink=sink, leading=elector.is_leader, renewal_seen=lambda: None, margin=13)
    collector = RelayCollector(
        relay=relay,
        watchers=lambda: [watcher],
        outbox=Outbox(sink=sink),
        sink_stats=SinkStats(),
        checkpoint=CheckpointStats(written_at=0.0),
    )
    text = generate_latest(metrics_registry(collector, LeaderCollector(elector=elector, gate=gate))).decode()
    suffix = {"counter": "_total", "info": "_info"}  # as the samples are named
    names = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE)
    return {name if name.endswith(suffix.get(kind, "")) else name + suffix[kind] for name, kind in names}


def named_metrics(expr: str) -> set[str]:
    """The relay's metric names in a PromQL expression (ours, and prometheus-client's process_*)."""
    return set(re.findall(r"\b(?:podwatch_relay|process|python)_[a-z0-9_]+\b", expr))


def test_metrics_carry_process_collectors_and_build_info() -> None:
    exported = exported_metrics()
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"} <= exported
    assert {"python_info", "python_gc_collections_total", "podwatch_relay_build_info"} <= exported
    assert {"podwatch_relay_is_leader", "podwatch_relay_checkpoint_age_seconds"} <= exported


def test_alerts_and_dashboard_name_only_metrics_the_relay_exports(renders: dict[str, Manifest]) -> None:
    exported = exported_metrics()
    manifest = renders["monitoring-values"]
    [rule] = objects(manifest, "PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    # the issue's five, and drops
    assert set(alerts) == {
        "PodwatchRelayDown",
        "PodwatchRelayWatchStalled",
        "PodwatchRelaySpoolGrowing",
        "PodwatchRelaySqsFailures",
        "PodwatchRelayDropping",
        "PodwatchRelayNoLeader",
    }
    for alert, expr in alerts.items():
        assert named_metrics(expr), alert
        assert named_metrics(expr) <= exported, (alert, named_metrics(expr) - exported)
    [dashboard_map] = [
        m for m in objects(manifest, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]
    assert dashboard_map["metadata"]["namespace"] == "monitoring"
    assert dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(dashboard_map["data"]["podwatch-relay.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "podwatch-relay.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert named_metrics(target["expr"]), panel["title"]
            assert named_metrics(target["expr"]) <= exported, (panel["title"], target["expr"])
    for variable in dashboard["templating"]["list"]:
        assert named_metrics(variable["query"]) <= exported, variable["name"]


def test_no_leader_alert_only_with_leader_election(helm_env: dict[str, str]) -> None:
    args = ["--set", f"sqs.queueUrl={QUEUE_URL}", "--set", "prometheusRule.enabled=true"]
    single = render(helm_env, *args, "--set", "leaderElection.enabled=false", "--set", "replicaCount=1")
    [rule] = objects(single, "PrometheusRule")
    names = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "PodwatchRelayNoLeader" not in names
    assert "PodwatchRelayDown" in names


def test_network_policy_lets_in_only_scrapes_and_out_only_dns_the_api_server_and_sqs(
    renders: dict[str, Manifest],
) -> None:
    manifest = renders["monitoring-values"]
    policy = one(manifest, "NetworkPolicy")
    spec = policy["spec"]
    selector = one(manifest, "Deployment")["spec"]["selector"]["matchLabels"]
    assert spec["podSelector"] == {"matchLabels": selector}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = spec["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    dns, https = spec["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert {(p["port"], p["protocol"]) for p in https["ports"]} == {(443, "TCP"), (6443, "TCP")}
    assert https["to"] == [{"ipBlock": {"cidr": "10.0.0.0/16"}}]
    for name, other in renders.items():
        if name != "monitoring-values":
            assert not objects(other, "NetworkPolicy"), name  # off by default


def test_chart_metadata_says_what_it_is_and_names_no_guessed_address() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    # no public repository exists yet: an invented home/sources URL would send users nowhere
    assert "home" not in chart
    assert "sources" not in chart
    assert chart["maintainers"]
    assert all(m["name"] for m in chart["maintainers"])
    assert {"kubernetes", "prometheus"} <= set(chart["keywords"])
    images = yaml.safe_load(chart["annotations"]["artifacthub.io/images"])
    assert images == [{"name": "podwatch-relay", "image": f"podwatch-relay:{chart['appVersion']}"}]
