"""`podwatch`: operate a podwatch stack: its remote config, its dead-letter queues, its status.

    podwatch --stack podwatch-prod status
    podwatch --stack podwatch-prod dlq list
    podwatch --stack podwatch-prod dlq redrive --all --dry-run
    podwatch dlq list --stack podwatch-prod
    podwatch config validate new-config.json        (offline: no stack, no credentials)
    podwatch --stack podwatch-prod config set dedup_cooldown_seconds=600
    podwatch --stack podwatch-prod clusters forget old-cluster-1
    podwatch --stack podwatch-prod hooks apply -f hook.yaml
    podwatch --stack podwatch-prod events --namespace shop --since 1h
    podwatch --stack podwatch-prod events pod shop/web-x
    podwatch --stack podwatch-prod mcp [--transport http --port 8000]

Exit codes: 0 done; 1 refused, invalid or not found (nothing changed); 2 bad arguments; 3 AWS
could not be reached or answered with an error.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from podwatch.errors import PERMANENT_REASONS, TransientError
from podwatch_cli import __version__
from podwatch_cli import config as config_cmd
from podwatch_cli import dlq as dlq_cmd
from podwatch_cli import events as events_cmd
from podwatch_cli import hooks as hooks_cmd
from podwatch_cli import status as status_cmd
from podwatch_cli.stack import (
    DLQ_CHOICES,
    Clients,
    Stack,
    StackError,
    Target,
    resolve,
    target_from_stack_file,
)

EPILOG = """\
target options go before or after the command (`podwatch --stack X status` = `podwatch status --stack X`).
target: --stack NAME resolves queue URLs and the parameter from the CloudFormation stack's outputs.
For the local stack give --endpoint-url (the moto server) too: without CloudFormation there, the
names of docs/internals.md are used (<stack>-pod-events, /<stack>/remote-config, ...). Any one name
can be given explicitly (--pod-events-dlq-url, --config-parameter, ...).
"""


#: (dest, flag, help) of the explicit names that override what the stack resolution finds
_OVERRIDES = (
    ("PodEventsQueue", "--pod-events-queue-url"),
    ("PodEventsDLQ", "--pod-events-dlq-url"),
    ("DeliveriesQueue", "--deliveries-queue-url"),
    ("DeliveriesDLQ", "--deliveries-dlq-url"),
    ("RemoteConfigParameter", "--config-parameter"),
    ("ClustersTable", "--clusters-table"),
    ("HooksTable", "--hooks-table"),
)


def add_target_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The target options, on the top parser (with their defaults) and on every command (without:
    `argparse.SUPPRESS` leaves the top parser's value unless the option is given after the command),
    so `podwatch --stack X status` and `podwatch status --stack X` mean the same."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    target = parser.add_argument_group("target")
    target.add_argument(
        "--stack", default=default(os.environ.get("PODWATCH_STACK")), help="stack name (env PODWATCH_STACK)"
    )
    target.add_argument(
        "--region",
        default=default(None),
        help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's)",
    )
    target.add_argument("--profile", default=default(None), help="AWS profile")
    target.add_argument(
        "--endpoint-url",
        default=default(os.environ.get("PODWATCH_ENDPOINT_URL")),
        help="AWS endpoint of a local stack, e.g. http://127.0.0.1:5000 (env PODWATCH_ENDPOINT_URL)",
    )
    target.add_argument(
        "--stack-file",
        type=Path,
        default=default(None),
        help="JSON with stack_name, region, endpoint_url and outputs (default: .local-run/current/stack.json"
        " when it exists and no --stack is given)",
    )
    for lid, flag in _OVERRIDES:
        target.add_argument(
            flag,
            dest=f"override_{lid}",
            metavar="NAME",
            default=default(None),
            help=f"explicit {lid} (URL or name)",
        )


def history_api_options(parser: argparse.ArgumentParser) -> None:
    """--api-url and --token: how `events` and `mcp` reach the history API."""
    parser.add_argument(
        "--api-url",
        default=os.environ.get("PODWATCH_HISTORY_URL"),
        help="the history API (default: the stack's HistoryApiUrl; env PODWATCH_HISTORY_URL); an http://"
        " loopback URL (the local stack) is not signed",
    )
    parser.add_argument(
        "--token", default=os.environ.get("PODWATCH_HISTORY_TOKEN"), help="a JWT, for a JWT-protected API"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podwatch",
        description="Operate a podwatch stack: remote config, dead-letter queues, status.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_target_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # ---------------------------------------------------------------- config
    config = commands.add_parser(
        "config",
        help="the remote config (SSM): get, set, validate",
        description="The remote config JSON in SSM, validated by podwatch.models.RemoteConfig. Note: "
        "with config-sync on (ClusterIds set), the manager owns the config and the next sync may write it"
        " again; change it at the manager (SetRemoteConfig) for a lasting change.",
    )
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    get = config_commands.add_parser("get", help="print the stored config and whether it is valid")
    get.add_argument("--raw", action="store_true", help="print the stored text as is")
    validate = config_commands.add_parser(
        "validate", help="validate a file, stdin (-) or, without an argument, the stored value"
    )
    validate.add_argument(
        "file", nargs="?", help="JSON file to validate, - for stdin (default: the stored value)"
    )
    set_ = config_commands.add_parser(
        "set",
        help="change keys (KEY=VALUE ...) or write a whole document (--file); shows a diff first",
        description="Validate the new config with the model, show a diff against the stored one, ask, write."
        " An invalid value is refused and nothing is written. VALUE is JSON when it parses (600, true,"
        ' ["a","b"]), else text; enabled_reasons and ignored_namespaces also take a,b,c.',
    )
    set_.add_argument("assignments", nargs="*", metavar="KEY=VALUE", help="e.g. dedup_cooldown_seconds=600")
    set_.add_argument("--file", help="a whole RemoteConfig JSON document (- for stdin)")
    set_.add_argument("--yes", "-y", action="store_true", help="write without asking")
    set_.add_argument("--dry-run", action="store_true", help="validate and show the diff, write nothing")

    # ---------------------------------------------------------------- dlq
    dlq = commands.add_parser(
        "dlq",
        help="dead-letter queues: list, show, redrive",
        description="What is in the DLQs and why (message attribute `reason`, or retries exhausted), and"
        " sending messages back to the queue they came from.",
    )
    dlq_commands = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    queue_help = (
        "which DLQ: pod-events (processor), deliveries (deliver), fanout (bus), hooks, history (history"
        " writer), all (default)"
    )

    def queue_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--queue", choices=[*DLQ_CHOICES, "all"], default="all", help=queue_help)
        p.add_argument("--max", type=int, default=1000, help="read at most this many messages per DLQ (1000)")

    list_ = dlq_commands.add_parser("list", help="one line per message: id, reason, error")
    queue_option(list_)
    list_.add_argument("--json", action="store_true", help="JSON instead of a table")
    show = dlq_commands.add_parser("show", help="one message: every attribute and the body")
    show.add_argument("message_id", help="the DLQ message id (from `dlq list`)")
    queue_option(show)
    redrive = dlq_commands.add_parser(
        "redrive",
        help="send messages back to their source queue (selected ids or --all)",
        description="Each selected message is sent back to the queue the DLQ belongs to (quarantine"
        " attributes dropped) and deleted from the DLQ once SQS took it. Fix the cause first: a poison"
        " message comes straight back, so --all leaves permanent failures (bad input) where they are"
        " unless --include-permanent or --reason names them. Bodies cut to fit the DLQ are skipped"
        " unless --force.",
    )
    redrive.add_argument("message_ids", nargs="*", metavar="MESSAGE_ID", help="ids from `dlq list`")
    redrive.add_argument(
        "--all",
        action="store_true",
        help="every message of the selected DLQ(s) but permanent failures (bad input: "
        + ", ".join(sorted(PERMANENT_REASONS))
        + "), which would fail again",
    )
    redrive.add_argument(
        "--reason",
        action="append",
        metavar="REASON",
        help="every message quarantined for REASON (repeatable; `retries_exhausted` for those SQS moved)",
    )
    redrive.add_argument(
        "--include-permanent",
        action="store_true",
        help="with --all: permanent failures too (after a fix that makes them valid, e.g. a newer schema)",
    )
    redrive.add_argument("--dry-run", action="store_true", help="say what would be redriven, change nothing")
    redrive.add_argument("--force", action="store_true", help="also redrive bodies that were cut")
    redrive.add_argument(
        "--progress", action="store_true", default=None, help="draw the bar even without a tty"
    )
    queue_option(redrive)

    # ---------------------------------------------------------------- status
    status = commands.add_parser(
        "status",
        help="queue and DLQ depths, last heartbeat per cluster, breaker and alarm state",
        description="Queue depths (SQS), each cluster's last enroll/heartbeat (clusters table), the"
        " breaker (CircuitOpen in the last 15 min) and the stack's alarms (CloudWatch).",
    )
    status.add_argument("--json", action="store_true", help="JSON instead of text")

    # ---------------------------------------------------------------- clusters
    clusters = commands.add_parser(
        "clusters",
        help="the clusters config-sync watches for heartbeats",
        description="Clusters are remembered from their relays' enroll and heartbeat messages.",
    )
    cluster_commands = clusters.add_subparsers(dest="clusters_command", metavar="ACTION", required=True)
    forget = cluster_commands.add_parser(
        "forget",
        help="forget a decommissioned cluster (it no longer counts as silent)",
        description="Delete the cluster's item from the clusters table, so ClustersSilent and the"
        " relay-heartbeats-stopped alarm stop counting it. A relay of it that still runs brings it back.",
    )
    forget.add_argument("cluster_id", metavar="CLUSTER_ID")

    # ---------------------------------------------------------------- hooks
    hooks = commands.add_parser(
        "hooks",
        help="khook-format Hook rules: apply, list, delete, status",
        description="Hook rules (apiVersion kagent.dev/v1alpha2, kind Hook) in the stack's hooks table: a"
        " khook Hook file applies unchanged. Validation names the field of every problem; a refused file"
        " changes nothing.",
    )
    hook_commands = hooks.add_subparsers(dest="hooks_command", metavar="ACTION", required=True)
    apply = hook_commands.add_parser("apply", help="validate and store the Hooks of a YAML file (- = stdin)")
    apply.add_argument("-f", "--filename", required=True, metavar="FILE", help="YAML, one or more documents")
    apply.add_argument("--dry-run", action="store_true", help="validate only, store nothing")
    hooks_list = hook_commands.add_parser("list", help="one line per hook")
    hooks_list.add_argument("--json", action="store_true", help="JSON instead of a table")
    delete = hook_commands.add_parser("delete", help="remove a hook and its events")
    delete.add_argument("name", metavar="[NAMESPACE/]NAME", help="the hook (namespace default: default)")
    hook_status = hook_commands.add_parser(
        "status", help="khook-style status: activeEvents (firstSeen, lastSeen, firing|resolved), calls"
    )
    hook_status.add_argument("name", nargs="?", metavar="[NAMESPACE/]NAME", help="one hook (default: all)")

    # ---------------------------------------------------------------- events
    events = commands.add_parser(
        "events",
        help="the event history: what happened, by time or to one object (and the Events about it)",
        description="Queries the stack's history API (output HistoryApiUrl, SigV4-signed; or --api-url)."
        " Without an object: the newest records first, filtered. With one (`events pod shop/web-x`): that"
        " object's history and the Kubernetes Events about it.",
    )
    events.add_argument("object_kind", nargs="?", metavar="KIND", help="pod (pods, Pod) for one object")
    events.add_argument("object_ref", nargs="?", metavar="NAMESPACE/NAME", help="the object, e.g. shop/web-x")
    events.add_argument("--namespace", "-n", help="only this namespace")
    events.add_argument(
        "--since", help="how far back: 30m, 1h, 2d (default: the API's, 24 h / the retention)"
    )
    events.add_argument("--kind", dest="filter_kind", help="only this kind of record: pod, event")
    events.add_argument("--reason", help="only this reason (BackOff, CrashLoopBackOff, Evicted, ...)")
    events.add_argument("--limit", type=int, help="records per page (API default 100, at most 1000)")
    events.add_argument("--all", dest="follow", action="store_true", help="follow the cursor: every page")
    events.add_argument("--json", action="store_true", help="JSON instead of a table")
    history_api_options(events)

    # ---------------------------------------------------------------- mcp
    mcp = commands.add_parser(
        "mcp",
        help="the event history as an MCP server for agents (stdio, or streamable HTTP)",
        description="An MCP server (tools query_events, object_history, open_incidents; a resource per"
        " incident, podwatch://incidents/{id}) answering from the stack's history API, like `events`."
        " stdio (default): an MCP client runs this command. --transport http: streamable HTTP at"
        " http://HOST:PORT/mcp, for a kagent RemoteMCPServer (docs/operations.md); with PODWATCH_MCP_TOKEN"
        " set, only for requests with `Authorization: Bearer <token>`.",
    )
    mcp.add_argument(
        "--transport", choices=["stdio", "http"], default="stdio", help="stdio (default) or streamable HTTP"
    )
    mcp.add_argument(
        "--host", default="127.0.0.1", help="HTTP: the address to listen on (127.0.0.1; 0.0.0.0 in a pod)"
    )
    mcp.add_argument("--port", type=int, default=8000, help="HTTP: the port (8000)")
    mcp.add_argument("--path", default="/mcp", help="HTTP: the endpoint's path (/mcp)")
    mcp.add_argument(
        "--cluster",
        default=os.environ.get("PODWATCH_CLUSTER"),
        help="the cluster the tools ask about unless told (default: the API's HistoryDefaultClusterId;"
        " env PODWATCH_CLUSTER)",
    )
    history_api_options(mcp)

    # ---------------------------------------------------------------- ui
    ui = commands.add_parser(
        "ui",
        help="the timeline page of the stack in your browser, through a local proxy that signs for you",
        description="Serves the history API (its timeline page and its data) on 127.0.0.1, signing every"
        " request with SigV4 (or sending --token), so a browser reaches an IAM-authed API. Give a"
        " notification's history_url to open that view.",
    )
    ui.add_argument("view", nargs="?", metavar="HISTORY_URL", help="a view of the page (history_url)")
    ui.add_argument("--port", type=int, default=8765, help="the local port (8765; 0 = a free one)")
    history_api_options(ui)
    for command in (
        get,
        validate,
        set_,
        list_,
        show,
        redrive,
        status,
        forget,
        apply,
        hooks_list,
        delete,
        hook_status,
        events,
        mcp,
        ui,
    ):
        add_target_options(command, top=False)
    return parser


def _target(args: argparse.Namespace) -> Target:
    # boto3 itself reads AWS_DEFAULT_REGION and the profile, not AWS_REGION (which Lambda and most tools set)
    region = args.region or os.environ.get("AWS_REGION") or None
    overrides = {
        key.removeprefix("override_"): value
        for key, value in vars(args).items()
        if key.startswith("override_") and value
    }
    return target_from_stack_file(
        Target(
            stack_name=args.stack,
            region=region,
            profile=args.profile,
            endpoint_url=args.endpoint_url,
            stack_file=args.stack_file,
            overrides=overrides,
        )
    )


def _dlqs(choice: str, stack: Stack) -> list[str]:
    """The DLQs `--queue` names; `all`: every one the stack has (an older stack has no fan-out)."""
    if choice != "all":
        return [DLQ_CHOICES[choice]]
    return [dlq for dlq in DLQ_CHOICES.values() if dlq in stack.queues]


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if args.command == "config" and args.config_command == "validate" and args.file is not None:
        # a file (or stdin) is validated offline: no stack, no credentials, no network
        return config_cmd.cmd_validate(None, None, args.file, out=out, err=err)
    clients = Clients(_target(args))
    if args.command == "events":
        return _events(args, clients, out)
    if args.command == "mcp":
        return _mcp(args, clients)
    if args.command == "ui":
        return _ui(args, clients, out)
    stack = resolve(clients.target, clients)
    if args.command == "config":
        ssm, name = clients("ssm"), stack.config_parameter
        if args.config_command == "get":
            return config_cmd.cmd_get(ssm, name, raw=args.raw, out=out, err=err)
        if args.config_command == "validate":
            return config_cmd.cmd_validate(ssm, name, args.file, out=out, err=err)
        return config_cmd.cmd_set(
            ssm,
            name,
            assignments=args.assignments,
            file=args.file,
            yes=args.yes,
            dry_run=args.dry_run,
            out=out,
            err=err,
        )
    if args.command == "dlq":
        sqs, dlqs = clients("sqs"), _dlqs(args.queue, stack)
        if args.dlq_command == "list":
            return dlq_cmd.cmd_list(sqs, stack, dlqs, limit=args.max, as_json=args.json, out=out)
        if args.dlq_command == "show":
            return dlq_cmd.cmd_show(sqs, stack, dlqs, args.message_id, limit=args.max, out=out)
        if bool(args.message_ids) == bool(args.all or args.reason):
            err.write("podwatch dlq redrive: give message ids, or --all / --reason (not both)\n")
            return 2
        if args.include_permanent and not args.all:
            err.write("podwatch dlq redrive: --include-permanent goes with --all\n")
            return 2
        return dlq_cmd.cmd_redrive(
            sqs,
            stack,
            dlqs,
            message_ids=args.message_ids,
            select=dlq_cmd.Selection(
                every=args.all, reasons=frozenset(args.reason or ()), include_permanent=args.include_permanent
            ),
            dry_run=args.dry_run,
            force=args.force,
            limit=args.max,
            out=out,
            err=err,
            progress=args.progress,
        )
    if args.command == "clusters":
        return status_cmd.cmd_forget(clients, stack, args.cluster_id, out=out, err=err)
    if args.command == "hooks":
        return _hooks(args, clients, stack.hooks_table, out, err)
    return status_cmd.cmd_status(clients, stack, as_json=args.json, out=out)


def _hooks(args: argparse.Namespace, clients: Clients, table: str | None, out: IO[str], err: IO[str]) -> int:
    if not table:
        err.write("podwatch hooks: the stack has no hooks table (HooksTableName output)\n")
        return 1
    store = hooks_cmd.store_for(clients("dynamodb"), table)
    if args.hooks_command == "apply":
        return hooks_cmd.cmd_apply(store, args.filename, dry_run=args.dry_run, out=out, err=err)
    if args.hooks_command == "list":
        return hooks_cmd.cmd_list(store, as_json=args.json, out=out)
    if args.hooks_command == "delete":
        return hooks_cmd.cmd_delete(store, args.name, out=out, err=err)
    return hooks_cmd.cmd_status(store, args.name, out=out, err=err)


def history_client(args: argparse.Namespace, clients: Clients) -> events_cmd.HistoryClient:
    """The history API client of `events` and `mcp`: SigV4-signed with the profile's credentials, a
    bearer --token, or unsigned for a loopback URL (the local stack)."""
    url = args.api_url or resolve(clients.target, clients).outputs.get("HistoryApiUrl")
    if not url:
        raise StackError("the stack has no HistoryApiUrl output: pass --api-url")
    local = urlsplit(url).hostname in {"127.0.0.1", "localhost", "::1"}
    signed = not (local or args.token)
    return events_cmd.HistoryClient(
        url,
        credentials=clients.session.get_credentials() if signed else None,
        region=clients.session.region_name if signed else None,
        token=args.token,
    )


def _mcp(args: argparse.Namespace, clients: Clients) -> int:
    from podwatch_cli import mcp_server  # the MCP SDK takes about a second to import: only for this command

    client = history_client(args, clients)
    try:
        mcp_server.serve(
            mcp_server.History(client, cluster=args.cluster),
            transport=args.transport,
            host=args.host,
            port=args.port,
            path=args.path,
            token=os.environ.get("PODWATCH_MCP_TOKEN"),  # a secret: from the environment, not argv
        )
    finally:
        client.close()
    return 0


def _ui(args: argparse.Namespace, clients: Clients, out: IO[str]) -> int:
    from podwatch_cli import ui

    client = history_client(args, clients)
    try:
        return ui.cmd_ui(client, port=args.port, view=args.view, out=out, stop=threading.Event())
    except KeyboardInterrupt:
        return 0
    finally:
        client.close()


def _events(args: argparse.Namespace, clients: Clients, out: IO[str]) -> int:
    client = history_client(args, clients)
    try:
        return events_cmd.cmd_events(
            client,
            kind=args.object_kind,
            ref=args.object_ref,
            namespace=args.namespace,
            since=args.since,
            filter_kind=args.filter_kind,
            reason=args.reason,
            limit=args.limit,
            follow=args.follow,
            as_json=args.json,
            out=out,
        )
    finally:
        client.close()


def main(argv: Sequence[str] | None = None, *, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        return run(args, out, err)
    except config_cmd.ConfigRefused as exc:
        err.write(f"podwatch: {exc}\n")
        return 1
    except (StackError, events_cmd.EventsError) as exc:
        err.write(f"podwatch: {exc}\n")
        return 1
    except (ClientError, BotoCoreError, TransientError) as exc:
        err.write(f"podwatch: AWS error: {exc}\n")
        return 3
    except KeyboardInterrupt:
        err.write("podwatch: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
