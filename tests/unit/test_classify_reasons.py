"""Kubernetes' own vocabulary, type by type: volume/mount trouble, container start failures,
node-lost and admission rejections, kubelet evictions seen only as a DisruptionTarget condition,
not-ready-too-long, crash loops from the first failed restart, the order of the `Failed` message
rules, and one incident per trouble."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from podwatch import classify as classify_module
from podwatch.classify import FAILED_MESSAGE_RULES, Finding, Thresholds, classify, failed_message_type
from podwatch.models import ContainerStatus, EventType, PodCondition, RemoteConfig, Transition
from tests.unit.test_classify import T0, kube_event, pod, running, types

RUN_AS_ROOT = "Error: container has runAsNonRoot and image will run as root"
OCI_EXEC = (
    "Error: failed to create containerd task: failed to create shim task: OCI runtime create failed: "
    'runc create failed: unable to start container process: exec: "/manager": stat /manager: '
    "no such file or directory: unknown"
)


# --------------------------------------------------------------------------- Failed messages, in order


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('Failed to pull image "nginx:nope": rpc error: code = NotFound', EventType.IMAGE_PULL),
        ("Error: ErrImagePull", EventType.IMAGE_PULL),
        ("Error: ImagePullBackOff", EventType.IMAGE_PULL),
        ("Error: ErrImageNeverPull", EventType.IMAGE_PULL),
        ("Error: CreateContainerConfigError", EventType.CONFIG_ERROR),
        ("Error: RunContainerError", EventType.CONTAINER_START),
        (OCI_EXEC, EventType.CONTAINER_START),
        (
            'Error: failed to start container "app": Error response from daemon: OCI runtime create failed: '
            "container_linux.go:348: starting container process caused "
            '"exec: \\"/run.sh\\": permission denied"',
            EventType.CONTAINER_START,
        ),
        # a config error whose text mentions the image is still a config error, not image-pull
        (RUN_AS_ROOT, EventType.CONFIG_ERROR),
        (
            "Error: container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user "
            "is non-root",
            EventType.CONFIG_ERROR,
        ),
        ("Error: couldn't find key VALUE in Secret default/aegis-secret", EventType.CONFIG_ERROR),
        ('Error: configmap "autotune-config-key" not found', EventType.CONFIG_ERROR),
        ('Error: secret "db-password" not found', EventType.CONFIG_ERROR),
        ("Failed to inspect image", None),
        ("something failed", None),
    ],
)
def test_failed_messages_are_read_by_their_structure(message: str, expected: EventType | None) -> None:
    assert failed_message_type(message) == expected
    findings = classify(kube_event("Failed", message, field_path="spec.containers{app}"))
    assert [f.event_type for f in findings] == ([expected] if expected else [])


def test_failed_message_rules_are_tried_in_order() -> None:
    # pull before reason tokens before the runtime's start failure before "anything else"
    assert [name for name, _ in FAILED_MESSAGE_RULES] == ["pull", "reason-token", "runtime-start", "config"]
    # an "Error: <token>" that is not a waiting reason falls through to the config rule
    assert failed_message_type("Error: Unauthorized") == EventType.CONFIG_ERROR
    # the word "image" or "pull" inside a config error never makes it image-pull (the old keyword rule)
    assert failed_message_type('Error: secret "image-pull-creds" not found') == EventType.CONFIG_ERROR


# --------------------------------------------------------------------------- volume / mount trouble


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("FailedMount", 'MountVolume.SetUp failed for volume "certs" : secret "coturn" not found'),
        (
            "FailedMount",
            "Unable to attach or mount volumes: unmounted volumes=[secret-volume], unattached "
            "volumes=[secret-volume kube-api-access-pfqc5]: timed out waiting for the condition",
        ),
        (
            "FailedAttachVolume",
            'Multi-Attach error for volume "pvc-7a81" Volume is already exclusively attached to one node '
            "and can't be attached to another",
        ),
        ("FailedMapVolume", 'MapVolume.SetUpDevice failed for volume "pvc-1"'),
    ],
)
def test_volume_trouble(reason: str, message: str) -> None:
    assert classify(kube_event(reason, message)) == [Finding(EventType.VOLUME_MOUNT, reason, None, message)]


# --------------------------------------------------------------------------- container start failures


@pytest.mark.parametrize("reason", ["RunContainerError", "PostStartHookError", "PreStartHookError"])
def test_waiting_start_failures(reason: str) -> None:
    envelope = pod(containers=[ContainerStatus(name="app", state="waiting", reason=reason)])
    assert types(classify(envelope)) == [("container-start", reason, "app")]


@pytest.mark.parametrize("reason", ["StartError", "ContainerCannotRun"])
def test_terminated_start_failures(reason: str) -> None:
    # restartPolicy Never: the container stays terminated, and the failed pod is the same incident
    envelope = pod(
        phase="Failed",
        containers=[ContainerStatus(name="app", state="terminated", reason=reason, exit_code=128)],
    )
    assert types(classify(envelope)) == [("container-start", reason, "app")]


def test_a_new_start_failure_in_last_state_after_a_restart() -> None:
    envelope = pod(
        containers=[
            ContainerStatus(
                name="app",
                state="running",
                restart_count=2,
                last_termination_reason="StartError",
                last_exit_code=128,
            )
        ],
        transitions=[Transition(field="restart_count", container="app", old=1, new=2)],
    )
    assert types(classify(envelope)) == [("container-start", "StartError", "app")]


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (
            "FailedCreatePodSandBox",
            "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network",
        ),
        ("FailedPostStartHook", "PostStartHook failed"),
    ],
)
def test_start_failure_events(reason: str, message: str) -> None:
    assert types(classify(kube_event(reason, message))) == [("container-start", reason, None)]


# --------------------------------------------------------------------------- node lost, admission


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("NodeLost", EventType.NODE_LOST),
        ("Shutdown", EventType.NODE_LOST),
        ("Terminated", EventType.NODE_LOST),
        ("NodeShutdown", EventType.NODE_LOST),
        ("UnexpectedAdmissionError", EventType.ADMISSION_REJECTED),
        ("NodeAffinity", EventType.ADMISSION_REJECTED),
        ("OutOfcpu", EventType.ADMISSION_REJECTED),
        ("OutOfmemory", EventType.ADMISSION_REJECTED),
        ("OutOfnvidia.com/gpu", EventType.ADMISSION_REJECTED),
        ("DeadlineExceeded", EventType.FAILED),
    ],
)
def test_pod_status_reasons(reason: str, expected: EventType) -> None:
    envelope = pod(phase="Failed", reason=reason, message="from the kubelet", containers=[])
    assert classify(envelope) == [Finding(expected, reason, None, "from the kubelet")]


def test_phase_unknown_is_node_lost() -> None:
    assert types(classify(pod(phase="Unknown", containers=[running("api")]))) == [
        ("node-lost", "Unknown", None)
    ]


def test_out_of_alone_is_not_a_resource() -> None:
    assert classify_module.table_type(classify_module.POD_REASONS, "OutOf") is None


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("UnexpectedAdmissionError", EventType.ADMISSION_REJECTED),
        ("OutOfcpu", EventType.ADMISSION_REJECTED),
        ("NodeAffinity", EventType.ADMISSION_REJECTED),
        ("NodeShutdown", EventType.NODE_LOST),
    ],
)
def test_admission_events(reason: str, expected: EventType) -> None:
    assert [f.event_type for f in classify(kube_event(reason, "rejected"))] == [expected]


# --------------------------------------------------------------------------- DisruptionTarget


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("TerminationByKubelet", [("evicted", "TerminationByKubelet", None)]),
        ("PreemptionByScheduler", [("evicted", "PreemptionByScheduler", None)]),
        ("DeletionByTaintManager", [("node-lost", "DeletionByTaintManager", None)]),
        ("DeletionByPodGC", [("node-lost", "DeletionByPodGC", None)]),
        ("EvictionByEvictionAPI", [("failed", "Failed", None)]),  # a drain: only the phase speaks
    ],
)
def test_disruption_target_condition_without_status_reason(
    reason: str, expected: list[tuple[str, str, str | None]]
) -> None:
    envelope = pod(
        phase="Failed",
        containers=[ContainerStatus(name="api", state="terminated", reason="Error", exit_code=137)],
        conditions=[PodCondition(type="DisruptionTarget", status="True", reason=reason, message="m")],
    )
    assert types(classify(envelope)) == expected


def test_a_drain_of_a_running_pod_is_not_trouble() -> None:
    envelope = pod(
        containers=[running("api")],
        conditions=[PodCondition(type="DisruptionTarget", status="True", reason="EvictionByEvictionAPI")],
    )
    assert classify(envelope) == []


def test_status_reason_wins_over_the_condition() -> None:
    envelope = pod(
        phase="Failed",
        reason="Evicted",
        conditions=[PodCondition(type="DisruptionTarget", status="True", reason="TerminationByKubelet")],
    )
    assert types(classify(envelope)) == [("evicted", "Evicted", None)]


# --------------------------------------------------------------------------- crash loop before back-off


def crashed(restarts: int, old: int | None = None, **kw: Any) -> Any:
    kw.setdefault("last_termination_reason", "Error")
    kw.setdefault("last_exit_code", 1)
    return pod(
        containers=[running("api", restart_count=restarts, **kw)],
        transitions=[
            Transition(
                field="restart_count", container="api", old=restarts - 1 if old is None else old, new=restarts
            )
        ],
    )


def test_first_non_zero_exit_that_restarts_is_a_crash_loop() -> None:
    assert types(classify(crashed(1))) == [("crash-loop", "Error", "api")]


def test_a_probe_kill_that_restarts_is_a_crash_loop() -> None:
    assert types(classify(crashed(1, last_exit_code=137))) == [("crash-loop", "Error", "api")]


def test_crash_loop_threshold_from_remote_config() -> None:
    assert types(classify(crashed(2), thresholds=Thresholds(crash_loop_restarts=3))) == [
        ("pod-restart", "Error", "api")
    ]
    assert types(classify(crashed(3), thresholds=Thresholds(crash_loop_restarts=3))) == [
        ("crash-loop", "Error", "api")
    ]
    # 0: only CrashLoopBackOff makes a crash loop
    assert types(classify(crashed(9), thresholds=Thresholds(crash_loop_restarts=0))) == [
        ("pod-restart", "Error", "api")
    ]


def test_a_first_seen_pods_existing_restart_count_is_not_news() -> None:
    # Given a pod the relay sees for the first time (after its own restart), which restarted 7 times
    # days ago: the relay diffs it against nothing, so its container's state comes from nothing
    envelope = pod(
        containers=[running("api", restart_count=7, last_termination_reason="Error", last_exit_code=1)],
        transitions=[
            Transition(field="state", container="api", old=None, new="running"),
            Transition(field="restart_count", container="api", old=0, new=7),
            Transition(field="last_termination_reason", container="api", old=None, new="Error"),
        ],
        watch_type="ADDED",
    )
    # Then there is no trouble: the restarts are history
    assert classify(envelope) == []
    # and neither is a restart the initial sync reports
    resync = crashed(7)
    assert (
        classify(
            resync.model_copy(update={"payload": resync.payload.model_copy(update={"initial_sync": True})})
        )
        == []
    )


# --------------------------------------------------------------------------- one incident per trouble


def test_oom_kill_and_the_failed_phase_are_one_incident_but_a_later_eviction_is_news() -> None:
    oom = ContainerStatus(name="job", state="terminated", reason="OOMKilled", exit_code=137)
    assert types(classify(pod(phase="Failed", containers=[oom]))) == [("oom-kill", "OOMKilled", "job")]
    evicted = pod(phase="Failed", reason="Evicted", containers=[oom])
    assert types(classify(evicted)) == [("oom-kill", "OOMKilled", "job"), ("evicted", "Evicted", None)]


def test_a_failed_pod_whose_container_only_exited_is_failed() -> None:
    envelope = pod(
        phase="Failed",
        containers=[ContainerStatus(name="job", state="terminated", reason="Error", exit_code=2)],
    )
    assert types(classify(envelope)) == [("failed", "Failed", None)]


# --------------------------------------------------------------------------- not ready too long


def not_ready(seconds: int, **kw: Any) -> Any:
    return pod(
        containers=[ContainerStatus(name="api", state="running", ready=False, started=True)],
        conditions=[
            PodCondition(type="PodScheduled", status="True"),
            PodCondition(
                type="Ready",
                status="False",
                reason="ContainersNotReady",
                message="containers with unready status: [api]",
                last_transition_time=T0 - timedelta(seconds=seconds),
            ),
        ],
        **kw,
    )


def test_not_ready_too_long() -> None:
    [finding] = classify(not_ready(901), thresholds=Thresholds(not_ready_too_long_seconds=900))
    assert (finding.event_type, finding.reason, finding.container) == (
        EventType.NOT_READY_TOO_LONG,
        "ContainersNotReady",
        None,
    )
    assert finding.message == "not Ready for 901s: containers with unready status: [api]"


def test_not_ready_for_less_or_disabled_or_terminating_is_not_trouble() -> None:
    assert classify(not_ready(899), thresholds=Thresholds(not_ready_too_long_seconds=900)) == []
    assert classify(not_ready(10_000), thresholds=Thresholds(not_ready_too_long_seconds=0)) == []
    assert classify(not_ready(10_000, deleted_at=T0)) == []


# --------------------------------------------------------------------------- the remote config


def test_old_remote_config_documents_still_validate() -> None:
    # Given a document written before these knobs and types existed
    old = (
        '{"version":"v7","dedup_cooldown_seconds":900,"batch_size":25,"batch_flush_seconds":5,'
        '"enabled_reasons":["config-error","crash-loop","evicted","failed","image-pull","oom-kill",'
        '"probe-failed","unschedulable"],"ignored_namespaces":[],"project_label_key":"project-id",'
        '"workload_label_key":"workload-id","dedup_scope":"container","pending_too_long_seconds":600}'
    )
    config = RemoteConfig.from_json(old)
    # Then it validates, its own enabled list stands, and the new knobs take their defaults
    assert EventType.VOLUME_MOUNT not in config.enabled_reasons
    assert (config.not_ready_too_long_seconds, config.crash_loop_restarts) == (900, 1)
    assert Thresholds() == Thresholds(
        config.pending_too_long_seconds, config.not_ready_too_long_seconds, config.crash_loop_restarts
    )


def test_the_new_types_are_enabled_by_default() -> None:
    new = {
        EventType.VOLUME_MOUNT,
        EventType.CONTAINER_START,
        EventType.NODE_LOST,
        EventType.ADMISSION_REJECTED,
        EventType.NOT_READY_TOO_LONG,
        EventType.PENDING_TOO_LONG,
    }
    assert new <= RemoteConfig().enabled_reasons
    assert {EventType.POD_RESTART, EventType.RECOVERED}.isdisjoint(RemoteConfig().enabled_reasons)
