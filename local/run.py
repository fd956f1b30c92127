"""`make run`: start the local stack, replay a watch stream through the relay, let the functions
and the manager do their work, and tell what happened to every event.

    python -m local.run --replay events/replay/sample-stream.jsonl [--summary out.json] [--keep]

`--keep` (`make run KEEP=1`): after the report the stack stays up, with the history API and its
timeline page on loopback (the URL is printed), until Ctrl-C.

A big file is replayed while the functions drain the queues (moto's SQS slows as a queue fills),
with a progress line every 2,000 lines and every 5 s of the final drain.

Exit codes: 0 the run completed (every queue drained); 1 the pipeline did not settle (a queue never
emptied, or a poller crashed: see the logs); 2 bad arguments. Everything started is stopped on exit,
on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from local.esm import DrainTimeout
from local.historyapi import examples, recording_clock
from local.processes import ROOT, ProcessError, free_port, install_sigterm_handler, new_run_dir
from local.report import build_summary, render
from local.stack import DEFAULT_CLUSTER_ID, LocalStack
from podwatch.webui import view_url

log = logging.getLogger("local.run")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--replay", default="events/replay/sample-stream.jsonl", help="watch events, JSON lines"
    )
    parser.add_argument("--summary", help="write the JSON summary to this file")
    parser.add_argument(
        "--hooks",
        default="events/hooks/rules/local-sample.yaml",
        help="Hook file applied before the replay (podwatch hooks apply -f); '' for none",
    )
    parser.add_argument("--cluster-id", default=DEFAULT_CLUSTER_ID, help="cluster id the relay reports")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for the queues to drain"
    )
    parser.add_argument(
        "--max-batching-window",
        type=float,
        default=None,
        help="cap the template's batching windows (seconds); default: as deployed",
    )
    parser.add_argument("--quiet", action="store_true", help="pods and totals only, not every event")
    parser.add_argument(
        "--keep", action="store_true", help="keep the stack and the timeline page up until Ctrl-C"
    )
    parser.add_argument(
        "--api-port", type=int, default=0, help="the history API's (and page's) port; 0 = a free one"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    replay = Path(args.replay)
    if not replay.is_absolute():
        replay = (Path.cwd() / replay) if (Path.cwd() / replay).exists() else ROOT / replay
    if not replay.is_file():
        print(f"error: no such replay file: {args.replay}", file=sys.stderr)
        return 2

    install_sigterm_handler()
    run_dir = new_run_dir()
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(run_dir / "run.log")],
    )
    say = _printer(sys.stdout)  # the report goes to stdout; the functions' own output goes to functions.log
    say(f"starting the local stack (logs in {_rel(run_dir)}) ...", flush=True)
    started = time.monotonic()
    api_port = args.api_port or free_port()  # known before the stack: notifications link to the page
    with (run_dir / "functions.log").open("w", encoding="utf-8") as function_log:
        try:
            with LocalStack(
                run_dir=run_dir,
                cluster_id=args.cluster_id,
                max_batching_window_seconds=args.max_batching_window,
                function_output=function_log,
                environment_overrides=page_link(api_port),
            ) as stack:
                say(
                    f"stack up in {time.monotonic() - started:.1f}s; replaying {_rel(replay)} ...", flush=True
                )
                if args.hooks:
                    say(stack.apply_hooks(ROOT / args.hooks).rstrip(), flush=True)
                replayed = time.monotonic()

                def progress(lines: int) -> None:
                    say(
                        f"  {lines:,} lines in {time.monotonic() - replayed:.0f}s; {stack.progress()}",
                        flush=True,
                    )

                with stack.pumping():  # drained while it is filled
                    result = stack.replay(
                        replay, cluster_id=args.cluster_id, recorded_time=True, progress=progress
                    )
                say(f"replayed in {time.monotonic() - replayed:.1f}s; draining ...", flush=True)
                try:
                    with ticking(5.0, lambda: say(f"  draining: {stack.progress()}", flush=True)):
                        pumped = stack.pump_until_idle(timeout=args.timeout)
                except DrainTimeout as exc:
                    log.exception("pipeline did not settle")
                    say(f"error: the pipeline did not settle: {exc} (see {_rel(run_dir)})", file=sys.stderr)
                    return 1
                history = _history(stack, result.bodies, stack.delivered(args.cluster_id), port=api_port)
                summary = build_summary(
                    replay_path=_rel(replay),
                    cluster_id=args.cluster_id,
                    relay_stats=result.stats.to_dict(),
                    lines=result.lines,
                    audit_records=stack.audit_records(),
                    delivered=stack.delivered(args.cluster_id),
                    restate=stack.restate_stats(),
                    dlq=[m.as_dict() for m in stack.dlq_messages()],
                    log_dir=_rel(run_dir),
                    pump={**pumped.__dict__, "pollers": stack.poller_stats()},
                    manager={
                        k: v for k, v in stack.manager_stats(args.cluster_id).items() if k != "received_at"
                    },
                    hooks=stack.hooks_summary(),
                )
                if args.keep:
                    _report(run_dir, summary, history, args, started, say)
                    say(f"\nThe stack stays up: open {history['page_url']}\nCtrl-C stops it.", flush=True)
                    threading.Event().wait()  # until Ctrl-C (KeyboardInterrupt) or SIGTERM (SystemExit)
        except ProcessError as exc:
            say(f"error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            say("interrupted: the local stack is stopped", file=sys.stderr)
            return 0 if args.keep else 130
    _report(run_dir, summary, history, args, started, say)
    say(f"Done in {summary['seconds']:.1f}s; everything the run started is stopped.")
    return 0


def page_link(port: int) -> dict[str, dict[str, str]]:
    """The processor's HISTORY_PAGE_URL (the template's HistoryPageUrl): the page on loopback."""
    return {"ProcessorFunction": {"HISTORY_PAGE_URL": f"http://127.0.0.1:{port}/"}}


def _report(
    run_dir: Path,
    summary: dict[str, Any],
    history: dict[str, Any],
    args: argparse.Namespace,
    started: float,
    say: Callable[..., None],
) -> None:
    summary["history"] = history
    summary["seconds"] = round(time.monotonic() - started, 2)
    summary["log_files"] = sorted(p.name for p in run_dir.iterdir() if p.is_file())
    say("")
    say(render(summary, verbose_events=not args.quiet))
    say(render_history(history, kept=args.keep))
    if args.summary:
        Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
        Path(args.summary).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        say(f"Summary: {args.summary}")


def _printer(stdout: IO[str]) -> Callable[..., None]:
    """print() to `stdout` as it is now: while a function runs (in a poller's thread) sys.stdout is
    its log file, and progress is printed meanwhile."""

    def say(*parts: object, file: IO[str] | None = None, flush: bool = False) -> None:
        print(*parts, file=file or stdout, flush=flush)

    return say


@contextlib.contextmanager
def ticking(every: float, tick: Callable[[], None]) -> Iterator[None]:
    """`tick()` every `every` seconds while the body runs (progress of a long drain)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            tick()

    thread = threading.Thread(target=loop, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _history(
    stack: LocalStack, bodies: list[str], delivered: list[dict[str, Any]], *, port: int = 0
) -> dict[str, Any]:
    """The history API on loopback (the recording's clock) and two example queries, run now: the
    stack stops when the run ends (unless kept), so the answers are what the report shows."""
    api = stack.serve_history_api(clock=recording_clock(bodies), port=port)
    subject = delivered[0] if delivered else None
    shown = examples(api.url, subject["namespace"], subject["pod"]) if subject else []
    return {
        "api_url": api.url,
        # the first notification's pod, its panel open: what a newcomer should look at
        "page_url": view_url(api.url, namespace=subject["namespace"], pod=subject["pod"])
        if subject
        else f"{api.url}/",
        "records": len(stack.history_items()),
        "examples": [e.as_dict() for e in shown],
    }


def render_history(history: dict[str, Any], *, kept: bool = False) -> str:
    stopped = "" if kept else " (stopped with the stack: `make run KEEP=1` keeps it up)"
    lines = [
        f"History: {history['records']} records stored; the history API served on {history['api_url']}"
        f"{stopped}; the timeline page: {history['page_url']}. Two queries it answered:"
    ]
    for example in history["examples"]:
        lines += ["", f"  $ {example['command']}", f"  {example['status']}, {example['total']} records"]
        lines += [f"    {line.rstrip()}" for line in example["lines"]]
    return "\n".join(lines)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
