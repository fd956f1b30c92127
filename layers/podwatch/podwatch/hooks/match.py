"""Which (hook, configuration) pairs a notification matches.

A hook sees the events of its own namespace, or of every namespace when `spec.clusterWide`; a
configuration matches the podwatch types its `eventType` stands for (`rules.event_types_for`).
One notification may match several hooks and several configurations of one hook; each match is
handled on its own (`engine`). The index is built once per rule set, so matching costs a dict
lookup per namespace scope, not a scan of the rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from podwatch.hooks.prompt import Template, compile_template
from podwatch.hooks.rules import EventConfiguration, Hook, event_types_for
from podwatch.models import EventType, Notification

_ANY_NAMESPACE = ""


@dataclass(frozen=True, slots=True)
class Match:
    hook: Hook
    index: int
    config: EventConfiguration
    template: Template

    @property
    def name(self) -> str:
        """`namespace/name#index`: names this configuration in logs and the DLQ."""
        return f"{self.hook.key}#{self.index}"


class HookIndex:
    """The rules, indexed by podwatch event type and namespace."""

    def __init__(self, hooks: Iterable[Hook]) -> None:
        self.hooks = list(hooks)
        self._index: dict[EventType, dict[str, list[Match]]] = defaultdict(lambda: defaultdict(list))
        for hook in self.hooks:
            scope = _ANY_NAMESPACE if hook.spec.clusterWide else hook.metadata.namespace
            for i, config in enumerate(hook.spec.eventConfigurations):
                match = Match(hook, i, config, compile_template(config.prompt))
                for event_type in event_types_for(config.eventType):
                    self._index[event_type][scope].append(match)

    def __len__(self) -> int:
        return len(self.hooks)

    def matches(self, notification: Notification) -> list[Match]:
        by_scope = self._index.get(notification.event_type)
        if not by_scope:
            return []
        return [*by_scope.get(notification.namespace, ()), *by_scope.get(_ANY_NAMESPACE, ())]

    def resolvers(self, notification: Notification) -> list[Match]:
        """For a `recovered` notification: the matches of the trouble it ends (their events resolve)."""
        if notification.event_type is not EventType.RECOVERED or notification.resolves is None:
            return []
        by_scope = self._index.get(notification.resolves) or {}
        return [*by_scope.get(notification.namespace, ()), *by_scope.get(_ANY_NAMESPACE, ())]
