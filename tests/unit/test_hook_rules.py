"""Hook rules: khook's files apply unchanged; a bad Hook is refused with the field named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from podwatch.hooks.rules import HookInvalid, event_types_for, parse_hook
from podwatch.models import EventType

HOOKS = Path(__file__).resolve().parents[2] / "events" / "hooks" / "rules"


def _hook(*configs: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kagent.dev/v1alpha2",
        "kind": "Hook",
        "metadata": {"name": "h", "namespace": "shop"},
        "spec": {"eventConfigurations": list(configs), **spec},
    }


def _config(
    event_type: str = "pod-restart", prompt: str = "Pod {{.ResourceName}} restarted"
) -> dict[str, Any]:
    return {"eventType": event_type, "agentRef": {"name": "k8s-agent"}, "prompt": prompt}


def _problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(HookInvalid) as caught:
        parse_hook(raw)
    return caught.value.problems


@pytest.mark.parametrize("name", ["khook-readme-first-hook.yaml", "khook-readme-basic-pod-monitoring.yaml"])
def test_khook_readme_examples_apply_unchanged(name: str) -> None:
    # Given a Hook file copied verbatim from khook's README
    raw = yaml.safe_load((HOOKS / name).read_text())
    # When it is validated
    hook = parse_hook(raw)
    # Then it is accepted as written, agents resolved the way khook resolves them
    assert [c.eventType for c in hook.spec.eventConfigurations] == ["pod-restart", "oom-kill"]
    first = hook.spec.eventConfigurations[0]
    expected_agent = "k8s-agent" if first.agentRef else "pod-restart-analyzer"
    assert hook.agent_of(first) == (hook.metadata.namespace, expected_agent)
    assert not hook.spec.clusterWide


def test_an_unknown_template_name_is_refused_naming_the_field() -> None:
    problems = _problems(_hook(_config(prompt="Pod {{.Foo}} restarted")))
    assert problems == [
        "spec.eventConfigurations[0].prompt: unknown template name {{.Foo}} "
        + problems[0].split("{{.Foo}} ", 1)[1]
    ]
    assert "(known: " in problems[0]
    assert "ResourceName" in problems[0]


def test_a_python_attribute_expression_is_refused() -> None:
    problems = _problems(_hook(_config(prompt="{{ .__class__ }}")))
    assert len(problems) == 1
    assert problems[0].startswith("spec.eventConfigurations[0].prompt: {{ .__class__ }} is not a placeholder")


def test_a_prompt_of_10001_characters_is_refused_and_10000_is_accepted() -> None:
    problems = _problems(_hook(_config(prompt="x" * 10_001)))
    assert problems == ["spec.eventConfigurations[0].prompt: 10001 characters, at most 10000"]
    assert parse_hook(_hook(_config(prompt="x" * 10_000)))


def test_one_event_type_twice_is_refused() -> None:
    problems = _problems(_hook(_config("oom-kill"), _config("pod-restart"), _config("oom-kill")))
    assert problems == [
        "spec.eventConfigurations[2].eventType: 'oom-kill' is already configured at "
        "spec.eventConfigurations[0] (one configuration per eventType)"
    ]


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("{{.Namespace}", "'{{' at character 0 is not closed"),
        ("a }} b", "'}}' at character 2 closes nothing"),
        ("{{.Namespace {{.Reason}}", "'{{' at character 0 is not closed"),
    ],
)
def test_unbalanced_braces_are_refused(prompt: str, fragment: str) -> None:
    problems = _problems(_hook(_config(prompt=prompt)))
    assert problems == [f"spec.eventConfigurations[0].prompt: unbalanced braces: {fragment}"]


def test_configuration_count_is_1_to_50() -> None:
    assert _problems(_hook()) == ["spec.eventConfigurations: 0 configurations, must be 1 to 50"]
    types = sorted(["pod-restart", "pod-pending", "oom-kill", "probe-failed", "crash-loop", "image-pull"])
    many = [_config(types[i % len(types)]) for i in range(51)]
    assert _problems(_hook(*many))[0] == "spec.eventConfigurations: 51 configurations, must be 1 to 50"


def test_wrong_kind_unknown_fields_and_targets_name_the_field() -> None:
    raw = _hook({"eventType": "pod-restart", "prompt": "p", "agentRef": {"name": "a b"}}, clusterwide=True)
    raw["apiVersion"] = "kagent.dev/v1alpha1"
    problems = _problems(raw)
    assert "apiVersion: must be 'kagent.dev/v1alpha2'" in problems
    assert "spec.clusterwide: Extra inputs are not permitted" in problems
    two = _hook({**_config(), "webhook": {"url": "https://hooks.example/x"}})
    assert _problems(two) == [
        "spec.eventConfigurations[0]: name exactly one target: agentRef, agentId or webhook "
        "(given: ['agentRef', 'webhook'])"
    ]
    bad_agent = _hook({**_config(), "agentRef": {"name": "a b"}})
    assert _problems(bad_agent)[0].startswith("spec.eventConfigurations[0].agentRef.name: ")
    bad_type = _problems(_hook(_config("recovered")))
    assert bad_type[0].startswith("spec.eventConfigurations[0].eventType: unknown event type 'recovered'")
    bad_secret = _hook(
        {
            "eventType": "oom-kill",
            "prompt": "p",
            "webhook": {"url": "https://x", "signingSecretFrom": "env:X"},
        }
    )
    assert _problems(bad_secret)[0].startswith(
        "spec.eventConfigurations[0].webhook.signingSecretFrom: must be"
    )


def test_podwatch_extensions_are_optional_fields() -> None:
    hook = parse_hook(
        _hook(
            {"eventType": "crash-loop", "prompt": "{{.Cluster}} {{.IncidentId}}", "agentId": "ops/triage"},
            {
                "eventType": "evicted",
                "prompt": "p",
                "webhook": {"url": "https://hooks.example/pw", "signingSecretFrom": "ssm:/pw/hmac"},
            },
            clusterWide=True,
            dedupWindowSeconds=60,
            agent={
                "baseUrl": "http://kagent.internal:8083",
                "protocol": "1.0",
                "tokenFrom": "secretsmanager:kagent",
            },
        )
    )
    assert hook.spec.clusterWide
    assert hook.spec.dedupWindowSeconds == 60
    assert hook.agent_of(hook.spec.eventConfigurations[0]) == ("ops", "triage")
    assert hook.spec.agent is not None
    assert hook.spec.agent.protocol == "1.0"


def test_khook_types_stand_for_podwatch_types() -> None:
    assert event_types_for("pod-restart") == {EventType.POD_RESTART, EventType.CRASH_LOOP}
    assert EventType.UNSCHEDULABLE in event_types_for("pod-pending")
    assert event_types_for("oom-kill") == {EventType.OOM_KILL}
    assert event_types_for("evicted") == {EventType.EVICTED}
