"""``kitaru deploy``, ``kitaru invoke`` and ``kitaru deployments list|show|tag|delete`` (SPEC §8)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kitaru.cli._output import Output, OutputOption, console, emit, error_console, parse_object, table, to_jsonable

deployments_app = typer.Typer(help="Deployments: versioned snapshots of flows, with tags.", no_args_is_help=True)


def _deployments() -> Any:
    from kitaru.client import KitaruClient

    return KitaruClient().deployments


def deploy(
    target: Annotated[str, typer.Argument(help="The flow: MODULE:FLOW or PATH.py:FLOW.")],
    stack: Annotated[str | None, typer.Option("--stack", help="Where invocations run (default: the active stack).")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", "-t", help="A tag for this version (repeatable).")] = None,
    image: Annotated[str | None, typer.Option("--image", help="Container image for container backends.")] = None,
    defaults: Annotated[str, typer.Option("--defaults", help="Default inputs as a JSON object.")] = "{}",
    output: OutputOption = Output.text,
) -> None:
    """Register the next version of a flow: its code snapshot, stack and defaults."""
    from kitaru.runtime import load_flow

    values = parse_object(defaults, "--defaults", example='\'{"topic": "ray"}\'')
    flow = load_flow(target)
    deployment = _deployments().deploy(flow, stack=stack, tags=tag, image=image, defaults=values)
    tags = f" tagged {', '.join(deployment.tags)}" if deployment.tags else ""
    emit(
        output,
        deployment,
        lambda: console().print(f"deployed {deployment.flow} version {deployment.version}{tags} on stack {deployment.stack}"),
    )


def invoke(
    flow: Annotated[str, typer.Argument(help="The deployed flow's name.")],
    tag: Annotated[str | None, typer.Option("--tag", "-t", help="The version this tag names.")] = None,
    version: Annotated[int | None, typer.Option("--version", min=1, help="A version number (default: the newest).")] = None,
    input: Annotated[str, typer.Option("--input", "-i", help="The flow's keyword arguments as a JSON object.")] = "{}",
    exec_id: Annotated[str | None, typer.Option("--exec-id", help="The new execution's id.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the result.")] = False,
    output: OutputOption = Output.text,
) -> None:
    """Run a deployed version of a flow on its stack (from its code snapshot); prints the execution id."""
    inputs = parse_object(input, "--input", example='\'{"topic": "ray"}\'')
    handle = _deployments().invoke(flow, version=version, tag=tag, inputs=inputs, exec_id=exec_id)
    data: dict[str, Any] = {"exec_id": handle.exec_id}
    if wait:
        data["result"] = to_jsonable(handle.wait())
    emit(output, data, lambda: console().print(data["result"] if wait else handle.exec_id))
    if not wait:
        error_console().print(f"follow it with `kitaru executions get {handle.exec_id}`")


@deployments_app.command("list")
def list_(
    flow: Annotated[str | None, typer.Argument(help="Only this flow's versions.")] = None, output: OutputOption = Output.text
) -> None:
    """Every deployment version, by flow, newest first."""
    rows = _deployments().list(flow)
    emit(
        output,
        rows,
        lambda: table(
            ("FLOW", "VERSION", "TAGS", "STACK", "TARGET"),
            [(d.flow, str(d.version), ", ".join(d.tags) or "-", d.stack, d.flow_ref) for d in rows],
            title="deployments",
        ),
    )


@deployments_app.command()
def show(
    flow: Annotated[str, typer.Argument(help="The flow.")],
    version: Annotated[int | None, typer.Option("--version", min=1)] = None,
    tag: Annotated[str | None, typer.Option("--tag", "-t")] = None,
    output: OutputOption = Output.text,
) -> None:
    """One deployment version (by --version or --tag; default the newest)."""
    deployment = _deployments().get(flow, version=version, tag=tag)
    data = to_jsonable(deployment)
    emit(
        output,
        data,
        lambda: table(("FIELD", "VALUE"), [(k, str(v)) for k, v in data.items()], title=f"{flow} v{deployment.version}"),
    )


@deployments_app.command("tag")
def tag_(
    flow: Annotated[str, typer.Argument(help="The flow.")],
    version: Annotated[int, typer.Argument(min=1, help="The version to tag.")],
    tag: Annotated[str, typer.Argument(help="The tag (moves from the version it named).")],
    output: OutputOption = Output.text,
) -> None:
    """Point a tag at a version."""
    deployment = _deployments().tag(flow, version, tag)
    emit(output, deployment, lambda: console().print(f"{flow} version {version} is now tagged {tag}"))


@deployments_app.command()
def delete(
    flow: Annotated[str, typer.Argument(help="The flow.")],
    version: Annotated[int, typer.Argument(min=1, help="The version to delete.")],
    output: OutputOption = Output.text,
) -> None:
    """Delete a version (its snapshot stays in storage for executions that ran it)."""
    _deployments().delete(flow, version)
    emit(output, {"deleted": {"flow": flow, "version": version}}, lambda: console().print(f"deleted {flow} version {version}"))
