"""Hooks: khook-format rules that turn podwatch notifications into one agent (A2A) or webhook call
per matching hook, with per-hook dedup whose window starts after a successful call.

Modules:
    rules    the Hook model (kagent.dev/v1alpha2), validation naming the field, event type aliases
    prompt   the safe, one-pass prompt renderer (`{{.Name}}` only; the pod's message fenced)
    match    which (hook, configuration) pairs a notification matches
    state    the hooks table: rules, and per-hook dedup / status items (DynamoDB)
    targets  the A2A (wire 0.3 and 1.0) and webhook clients, breaker per target
    engine   one batch of hooks-queue records → calls, dedup decisions, DLQ (docs/internals.md)
    cluster  a Hook applied or deleted in the cluster (`hook` envelope) → the rules (the processor)
"""
