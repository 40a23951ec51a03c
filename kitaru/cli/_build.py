"""``kitaru build TARGET``: write a flow's image (Dockerfile + requirements) and print how to build and push it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kitaru.cli._output import Output, OutputOption, console, emit, parse_pairs

__all__ = ["build_command"]


def build_command(
    target: Annotated[str, typer.Argument(help="The flow: MODULE:FLOW or PATH.py:FLOW.")],
    stack: Annotated[
        str | None, typer.Option("--stack", help="Take the registry and storage of this stack (default: the active one).")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option("--output", "-O", help="Directory for the files (default: build/image-FLOW).")
    ] = None,
    base_image: Annotated[
        str | None, typer.Option("--base-image", help="Image to start from (default: python:3.11-slim).")
    ] = None,
    requirement: Annotated[list[str] | None, typer.Option("--requirement", "-r", help="A pip requirement; repeatable.")] = None,
    apt: Annotated[list[str] | None, typer.Option("--apt", help="A Debian package; repeatable.")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help="KEY=VALUE set in the image; repeatable.")] = None,
    output: OutputOption = Output.text,
) -> None:
    """Write the Dockerfile and requirements of a flow's image (dependencies only: code travels as a snapshot)."""
    from kitaru._images import image_spec, plan_build, write_build
    from kitaru.client import KitaruClient
    from kitaru.runtime import load_flow

    flow = load_flow(target)
    stacks = KitaruClient().stacks
    chosen = stacks.get(stack) if stack else stacks.current()
    spec = image_spec(
        getattr(flow, "image", None),
        base_image=base_image,
        requirements=tuple(requirement or ()),
        apt_packages=tuple(apt or ()),
        environment={key: str(value) for key, value in parse_pairs(env, "--env", json_values=False).items()},
    )
    name = getattr(flow, "name", None) or target.rpartition(":")[2]
    plan = plan_build(spec, flow=name, registry=chosen.container_registry, storage_url=chosen.storage_url)
    directory = output_dir or Path("build") / f"image-{name}"
    files = write_build(plan, directory)
    commands = plan.commands(directory)

    def text() -> None:
        out = console()
        out.print(f"wrote {', '.join(str(path) for path in files)} (image {plan.tag})")
        out.print(
            "it holds the dependencies only: the container backends ship the flow's code with each run as a snapshot "
            "in the stack's storage, so rebuild it only when dependencies change."
        )
        out.print("build and push it with:")
        for command in commands:
            out.print(f"  {command}", markup=False, highlight=False)

    emit(output, {"image": plan.tag, "files": [str(path) for path in files], "commands": commands, "stack": chosen.name}, text)
