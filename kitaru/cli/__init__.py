"""The ``kitaru`` command line: ``kitaru --help``.

Query commands (``executions list``, ``status``, ``info``, ``stack list``...) read
the server (embedded: the database under ``KITARU_HOME``) and never import Ray.
Commands that continue an execution (``resume``, ``retry``, ``replay``, an
``input`` that resumes) start a detached driver process (``python -m
kitaru.runtime``), so the execution outlives the command.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
import typer.core

from kitaru.cli import _output

try:  # typer >= 0.26 carries its own copy of click
    from typer import _click as _click_module
except ImportError:  # pragma: no cover - older typer on click
    import click as _click_module

Context = _click_module.Context
ClickException = _click_module.exceptions.ClickException
UsageError = _click_module.exceptions.UsageError
# click < 8.2 prints the help itself for no_args_is_help; later versions raise this.
NoArgsIsHelpError = getattr(_click_module.exceptions, "NoArgsIsHelpError", type("NoArgsIsHelpError", (UsageError,), {}))

__all__ = ["app", "main"]


class KitaruGroup(typer.core.TyperGroup):
    """The root command: turns every error into one line on stderr and an exit code (see :mod:`kitaru.cli._output`)."""

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except KeyboardInterrupt:
            _output.print_error("interrupted.")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line and an exit code
            if _output.debug_enabled():
                raise
            _output.print_error(_output.describe(exc))
            raise typer.Exit(_output.exit_code_for(exc)) from None

    def main(
        self, args: Any = None, prog_name: Any = None, complete_var: Any = None, standalone_mode: bool = True, **extra: Any
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:
            _print_help(exc.ctx)
            sys.exit(exc.exit_code)
        except UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "kitaru"
            _output.print_error(f"{exc.format_message()} (see `{where} --help`)")
            sys.exit(exc.exit_code)
        except ClickException as exc:
            _output.print_error(exc.format_message())
            sys.exit(exc.exit_code)
        except typer.Abort:
            _output.print_error("aborted.")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _print_help(ctx: Context | None) -> None:
    if ctx is not None:
        typer.echo(ctx.get_help())


app = typer.Typer(
    cls=KitaruGroup,
    name="kitaru",
    help="Kitaru: durable execution for AI agents, on Ray.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    from kitaru.cli import _project
    from kitaru.cli._build import build_command
    from kitaru.cli._deployments import deploy, deployments_app, invoke
    from kitaru.cli._executions import executions_app
    from kitaru.cli._mcp import mcp_command
    from kitaru.cli._models import model_app, secrets_app
    from kitaru.cli._stacks import stack_app
    from kitaru.cli._ui import ui_command
    from kitaru.cli._warm import down, up

    _project.register(app)
    app.command("up")(up)
    app.command("down")(down)
    app.command("mcp")(mcp_command)
    app.command("ui")(ui_command)
    app.command("build")(build_command)
    app.add_typer(executions_app, name="executions")
    app.add_typer(stack_app, name="stack")
    app.command("deploy")(deploy)
    app.command("invoke")(invoke)
    app.add_typer(deployments_app, name="deployments")
    app.add_typer(model_app, name="model")
    app.add_typer(secrets_app, name="secrets")
    _add_server_commands()


def _add_server_commands() -> None:
    """``kitaru server ...`` lives in :mod:`kitaru.cli._server`; the rest of the CLI works without it."""
    import importlib.util

    if importlib.util.find_spec("kitaru.cli._server") is None:
        return
    try:
        from kitaru.cli._server import server_app
    except ImportError as exc:
        reason = str(exc)
        missing = typer.Typer(help="Run the Kitaru server (needs the server extra).", no_args_is_help=False)

        @missing.callback(invoke_without_command=True)
        def unavailable() -> None:
            raise _output.fail(
                f"the server commands need the server extra ({reason}); install it with `pip install 'kitaru[server]'`."
            )

        app.add_typer(missing, name="server")
        return
    app.add_typer(server_app, name="server")


_register()


def main() -> None:
    """Entry point of the ``kitaru`` console script."""
    app()
