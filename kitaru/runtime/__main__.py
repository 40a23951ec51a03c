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
import os
import sys
from typing import Any

from kitaru.errors import KitaruError, KitaruNotFoundError, KitaruUsageError


def main(argv: list[str] | None = None) -> int:
    from kitaru.config import resolve_settings
    from kitaru.runtime import _executions

    args = _parser().parse_args(argv)
    settings = resolve_settings()
    _executions.OWN_JOB = True  # this process drives only these executions: its Ray job page is theirs
    try:
        _use_code_snapshot(args, settings)
        drivers = _start(args, settings)
    except KitaruError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, (KitaruUsageError, KitaruNotFoundError)) else 1
    for exec_id, _ in drivers:
        print(f"driving execution {exec_id}", flush=True)
    statuses = [_finish(exec_id, driver, settings) for exec_id, driver in drivers]
    return 0 if all(status in ("completed", "waiting") for status in statuses) else 1


def _use_code_snapshot(args: argparse.Namespace, settings: Any) -> None:
    """In a container: the project's code from its snapshot, before any flow is imported (see ``kitaru.runtime._code``)."""
    from kitaru.runtime._code import CODE_SNAPSHOT_ENV, in_snapshot, use_code_snapshot

    if not os.environ.get(CODE_SNAPSHOT_ENV):
        return
    directory = use_code_snapshot(settings)
    if directory is not None and args.action == "run":
        args.target = in_snapshot(args.target, directory)


def _start(args: argparse.Namespace, settings: Any) -> list[tuple[str, Any]]:
    """(exec id, running driver or ``None`` when there was nothing to run) for each execution this process drives."""
    from kitaru.contracts.lifecycle import continue_statuses
    from kitaru.runtime import load_flow, resume_execution, start_execution, start_replay

    if args.action == "run":
        flow = load_flow(args.target)
        inputs = json.loads(args.input)
        stack = settings.stack or flow.stack
        options = {"exec_id": args.exec_id, "cache": None, "retries": None, "stack": stack}
        return [(args.exec_id, start_execution(flow, (), inputs, settings=settings, **options))]
    if args.action == "invoke":
        return [(args.exec_id, _invoke(args.flow, args.version, args.exec_id, json.loads(args.input), settings))]
    if args.action == "replay":
        spec = json.loads(args.spec)
        driver = start_replay(args.exec_ids[0], at=args.at, new_exec_id=args.exec_id, settings=settings, **spec)
        return [(args.exec_id, driver)]
    statuses = continue_statuses(args.action)
    drivers = []
    for exec_id in args.exec_ids:
        try:
            drivers.append((exec_id, resume_execution(exec_id, settings=settings, from_statuses=statuses)))
        except KitaruError as exc:
            if len(args.exec_ids) == 1:
                raise
            print(f"error: {exc}", file=sys.stderr, flush=True)  # resume --all: another client may have taken one
    return drivers


def _invoke(flow: str, version: int, exec_id: str, inputs: dict[str, Any], settings: Any) -> Any:
    """Run version ``version`` of deployed ``flow`` from its code snapshot, recording the version on the execution."""
    from kitaru._service import connect_service
    from kitaru._stacks import apply_stack
    from kitaru.runtime import start_execution
    from kitaru.runtime._snapshot import load_snapshot
    from kitaru.storage import open_storage

    service = connect_service(settings.service_url, settings.api_key)
    deployment = service.get_deployment(flow, version=version)
    stacked = apply_stack(settings, service, deployment["stack"])
    storage = open_storage(stacked.storage_url, stacked.storage_options, service_url=stacked.service_url, api_key=stacked.api_key)
    target = load_snapshot(storage, deployment["snapshot"], deployment["flow_ref"])
    return start_execution(
        target,
        (),
        {**deployment["defaults"], **inputs},
        settings=settings,
        exec_id=exec_id,
        cache=None,
        retries=None,
        stack=deployment["stack"],
        metadata={"deployment": {"flow": flow, "version": version}},
    )


def _finish(exec_id: str, driver: Any, settings: Any) -> str:
    """Wait for the driver thread (it ends when the execution is terminal or suspended); the status it left."""
    from kitaru._service import connect_service

    if driver is not None and driver.thread is not None:
        driver.thread.join()
    status = connect_service(settings.service_url, settings.api_key).get_execution(exec_id, with_calls=False)["status"]
    print(f"execution {exec_id} is {status}", flush=True)
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
