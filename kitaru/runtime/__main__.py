"""A detached driver process: ``python -m kitaru.runtime run|resume|retry|replay ...``.

The CLI (and the UI, MCP) start this with ``start_new_session=True`` so an
execution outlives the command that started it. It runs the driver here and
exits once every execution it drives is terminal or suspended on a wait.

    python -m kitaru.runtime run TARGET --exec-id ID [--input JSON]
    python -m kitaru.runtime resume ID [ID ...]
    python -m kitaru.runtime retry ID
    python -m kitaru.runtime replay ID --exec-id NEW_ID --at SELECTOR [--spec JSON]
    python -m kitaru.runtime invoke FLOW --version V --exec-id ID [--input JSON]

``--spec`` is a JSON object with any of ``flow_overrides``, ``checkpoint_overrides``,
``invocation_overrides`` and ``skip``. Exit status: 0 when every execution completed or
is waiting for input, 1 when one failed or was cancelled, 2 when it could not start
(the reason is the last line on stderr, prefixed ``error:``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kitaru.errors import KitaruError, KitaruNotFoundError, KitaruUsageError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        handles = _start(args)
    except KitaruError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, (KitaruUsageError, KitaruNotFoundError)) else 1
    for handle in handles:
        print(f"driving execution {handle.exec_id}", flush=True)
    statuses = [_finish(handle) for handle in handles]
    return 0 if all(status in ("completed", "waiting") for status in statuses) else 1


def _start(args: argparse.Namespace) -> list[Any]:
    if args.action == "run":
        from kitaru.runtime._targets import load_flow

        inputs = json.loads(args.input)
        return [load_flow(args.target).run(exec_id=args.exec_id, **inputs)]
    if args.action == "invoke":
        return [_invoke(args.flow, args.version, args.exec_id, json.loads(args.input))]
    if args.action == "replay":
        from kitaru.runtime._executions import start_replay

        spec = json.loads(args.spec)
        return [start_replay(args.exec_ids[0], at=args.at, new_exec_id=args.exec_id, **spec)]
    from kitaru.runtime._executions import RESUMABLE, resume_execution

    statuses = ("failed",) if args.action == "retry" else RESUMABLE
    handles = []
    for exec_id in args.exec_ids:
        try:
            handles.append(resume_execution(exec_id, from_statuses=statuses))
        except KitaruError as exc:
            if len(args.exec_ids) == 1:
                raise
            print(f"error: {exc}", file=sys.stderr, flush=True)  # resume --all: another client may have taken one
    return handles


def _invoke(flow: str, version: int, exec_id: str, inputs: dict[str, Any]) -> Any:
    """Run version ``version`` of deployed ``flow`` from its code snapshot, recording the version on the execution."""
    from kitaru._service import connect_service
    from kitaru._stacks import apply_stack
    from kitaru.config import resolve_settings
    from kitaru.runtime._executions import start_execution
    from kitaru.runtime._snapshot import load_snapshot
    from kitaru.storage import open_storage

    settings = resolve_settings()
    service = connect_service(settings.service_url, settings.api_key)
    deployment = service.get_deployment(flow, version=version)
    stacked = apply_stack(settings, service, deployment["stack"])
    storage = open_storage(stacked.storage_url, stacked.storage_options)
    target = load_snapshot(storage, deployment["snapshot"], deployment["flow_ref"])
    arguments = {**deployment["defaults"], **inputs}
    return start_execution(
        target,
        (),
        arguments,
        exec_id=exec_id,
        cache=None,
        retries=None,
        stack=deployment["stack"],
        metadata={"deployment": {"flow": flow, "version": version}},
    )


def _finish(handle: Any) -> str:
    """Wait for the driver thread (it ends when the execution is terminal or suspended); the status it left."""
    if handle._driver is not None and handle._driver.thread is not None:
        handle._driver.thread.join()
    status = handle.status
    print(f"execution {handle.exec_id} is {status}", flush=True)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kitaru.runtime", description="Run a Kitaru driver in this process.")
    actions = parser.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="start a new execution of a flow")
    run.add_argument("target", help="MODULE:FLOW or PATH.py:FLOW")
    run.add_argument("--exec-id", required=True)
    run.add_argument("--input", default="{}", help="the flow's keyword arguments as a JSON object")
    for name in ("resume", "retry"):
        action = actions.add_parser(name, help=f"{name} executions")
        action.add_argument("exec_ids", nargs="+" if name == "resume" else 1, metavar="EXEC_ID")
    replay = actions.add_parser("replay", help="replay an execution as a new one")
    replay.add_argument("exec_ids", nargs=1, metavar="EXEC_ID")
    replay.add_argument("--exec-id", required=True, help="the new execution's id")
    replay.add_argument("--at", required=True)
    replay.add_argument("--spec", default="{}")
    invoke = actions.add_parser("invoke", help="run a deployed version of a flow from its code snapshot")
    invoke.add_argument("flow", help="the deployed flow's name")
    invoke.add_argument("--version", type=int, required=True)
    invoke.add_argument("--exec-id", required=True)
    invoke.add_argument("--input", default="{}", help="the flow's keyword arguments as a JSON object")
    return parser


if __name__ == "__main__":
    sys.exit(main())
