"""The ``local`` backend: the driver runs in a background thread of the caller's process.

This is ``Flow.run()`` from Python: the flow body runs here against an embedded
``ray.init()`` (or the Ray that ``KITARU_RAY_ADDRESS`` names). A submission holds
the driver itself, so it lives as long as this process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

from kitaru.backends._options import BackendOption
from kitaru.backends._settings import refuse_image, settings_for
from kitaru.contracts.launch import BackendReport, BackendState, ExecutionSpec, LaunchAction, Submission
from kitaru.contracts.lifecycle import continue_statuses
from kitaru.errors import KitaruFeatureNotAvailableError, KitaruStateError, KitaruUsageError

__all__ = ["OPTIONS", "LocalBackend"]

OPTIONS = (
    BackendOption(
        "server_drivers",
        "bool",
        "Let a server bound beyond loopback start this stack's drivers on its own machine (UI and MCP actions).",
        default=False,
    ),
)


class LocalBackend:
    """Drivers as threads of this process (``details["driver"]`` is the running driver)."""

    name: ClassVar[str] = "local"

    def submit(self, spec: ExecutionSpec) -> Submission:
        """Start the driver here; returns once the execution is recorded and its body runs."""
        from kitaru.runtime import resume_execution, start_execution, start_replay

        refuse_image(self.name, spec)
        settings = settings_for(spec)
        if spec.action is LaunchAction.RUN:
            if spec.function is None:
                raise KitaruUsageError("the local backend runs a flow object; load the target first (or use detach=True).")
            driver = start_execution(
                spec.function,
                tuple(spec.args),
                dict(spec.inputs),
                settings=settings,
                exec_id=spec.exec_id,
                cache=spec.cache,
                retries=spec.retries,
                stack=spec.stack,
            )
        elif spec.action is LaunchAction.REPLAY:
            if not spec.source_exec_id:
                raise KitaruUsageError("a replay needs the execution it replays.")
            options = dict(spec.replay)
            driver = start_replay(
                spec.source_exec_id, at=options.pop("at"), new_exec_id=spec.exec_id, settings=settings, **options
            )
        elif spec.action in (LaunchAction.RESUME, LaunchAction.RETRY):
            driver = resume_execution(spec.exec_id, settings=settings, from_statuses=continue_statuses(spec.action.value))
        else:
            raise KitaruFeatureNotAvailableError(f"the local backend cannot {spec.action.value} yet; run the flow instead.")
        details: dict[str, Any] = {} if driver is None else {"driver": driver}
        return Submission(self.name, spec.exec_id, submission_id=None if driver is None else driver.driver_id, details=details)

    def status(self, submission: Submission) -> BackendReport:
        """``running`` while the driver thread lives, ``succeeded`` once it has ended (the record says how)."""
        driver = submission.details.get("driver")
        thread = getattr(driver, "thread", None)
        if driver is None:
            return BackendReport(BackendState.SUCCEEDED)  # an idempotent run: nothing was started
        if thread is None:
            return BackendReport(BackendState.PENDING)
        return BackendReport(BackendState.RUNNING if thread.is_alive() else BackendState.SUCCEEDED)

    def cancel(self, submission: Submission) -> None:
        """Ask the driver to stop (it cancels its running calls and ends the execution as cancelled)."""
        driver = submission.details.get("driver")
        if driver is not None and driver.thread is not None and driver.thread.is_alive():
            with contextlib.suppress(KitaruStateError):  # it ended meanwhile
                driver.service.request_cancel(submission.exec_id)

    def logs(self, submission: Submission, *, follow: bool = False) -> Iterator[str]:
        """Nothing of its own: the flow body's output is captured into the execution's logs."""
        return iter(())

    def dashboard_url(self, submission: Submission) -> str | None:
        """``None``: the driver shares this process's Ray job with whatever else runs here."""
        return None
