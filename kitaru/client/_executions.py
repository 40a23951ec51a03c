"""``KitaruClient().executions``: observe executions and act on them."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from kitaru.client._models import Execution, ExecutionEvent, LogEntry, Wait, _time
from kitaru.errors import KitaruNotFoundError, KitaruStateError, KitaruUsageError

if TYPE_CHECKING:
    from kitaru.client import KitaruClient
    from kitaru.client._statistics import ExecutionStatistics
    from kitaru.flow import FlowHandle
    from kitaru.replay import ReplaySubmission


class Executions:
    """Operations on executions (embedded mode: the database under ``KITARU_HOME``)."""

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    @property
    def _service(self) -> Any:
        return self._client.service

    # --- reading ------------------------------------------------------------------------------

    def get(self, exec_id: str) -> Execution:
        """One execution with its calls and pending waits. Raises :class:`KitaruNotFoundError`."""
        record = self._service.get_execution(exec_id)
        open_waits = record["status"] in ("running", "waiting", "interrupted")  # a cancelled one asks again on resume
        waits = self._service.list_waits(exec_id, status="pending") if open_waits else []
        return Execution.from_record(record, waits=waits, client=self._client)

    def list(self, *, flow: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0) -> list[Execution]:
        """Executions, newest first (without their calls; use :meth:`get` for those)."""
        return [
            Execution.from_record(row, client=self._client)
            for row in self._client.reads.list_executions(flow=flow, status=status, limit=limit, offset=offset)
        ]

    def latest(self, *, flow: str | None = None, status: str | None = None) -> Execution:
        """The newest execution (of ``flow``, in ``status``)."""
        rows = self._service.list_executions(flow=flow, status=status, limit=1)
        if not rows:
            what = "".join(part for part in (f" of flow {flow!r}" if flow else "", f" with status {status!r}" if status else ""))
            raise KitaruNotFoundError(f"there is no execution{what}; start one with <flow>.run().")
        return self.get(rows[0]["exec_id"])

    def logs(
        self, exec_id: str, *, checkpoint: str | None = None, source: str | None = None, limit: int | None = None
    ) -> list[LogEntry]:
        """Captured stdout, stderr and logging of the flow body (``runner``) and checkpoints (``step``)."""
        self._service.get_execution(exec_id, with_calls=False)
        rows = self._service.get_logs(exec_id, invocation_id=checkpoint, source=source, limit=limit)
        return [
            LogEntry(_time(r["timestamp"]), r["level"], r["message"], r["source"], r["invocation_id"], r["attempt"]) for r in rows
        ]

    def events(
        self, exec_id: str, *, kinds: Sequence[str] | None = None, checkpoint: str | None = None, since: int | str = 0
    ) -> list[ExecutionEvent]:
        """Recorded events (``checkpoint.*``, ``wait.*``, ``progress``, published ones) after cursor ``since``.

        ``kinds`` keeps only those kinds; ``checkpoint`` only one call's events (by invocation id).
        """
        self._service.get_execution(exec_id, with_calls=False)
        rows = self._service.get_events(exec_id, after_id=int(since or 0))
        return [
            ExecutionEvent.from_record(row)
            for row in rows
            if (kinds is None or row["kind"] in kinds) and (checkpoint is None or row.get("invocation_id") == checkpoint)
        ]

    def statistics(
        self,
        *,
        group_by: Sequence[str] = (),
        metrics: Sequence[str] = (),
        flow: str | None = None,
        status: str | None = None,
        stack: str | None = None,
    ) -> ExecutionStatistics:
        """Execution counts grouped by ``status``, ``flow`` and/or ``stack`` (one group of everything by default).

        ``metrics``: ``"NAME:duration:avg"`` (or ``sum``, ``min``, ``max``) per group, in seconds.
        """
        from kitaru.client._statistics import execution_statistics

        return execution_statistics(self._service, group_by=group_by, metrics=metrics, flow=flow, status=status, stack=stack)

    def stream_events(self, exec_id: str, *, since: int = 0, follow: bool = True) -> Iterator[dict[str, Any]]:
        """Events with an id greater than ``since``, as they are recorded, until the execution is terminal.

        Remote mode reads the server's event stream (server-sent events), embedded mode tails
        the database; ``follow=False`` stops at the events recorded now. Each event is the dict
        :meth:`events` returns (its ``id`` is the cursor for ``since``).

        Raises:
            KitaruNotFoundError: no such execution (on the first ``next()``).
        """
        from kitaru.client._streams import follow_rows

        return follow_rows(self._client, exec_id, "events", since=since, follow=follow)

    def stream_logs(
        self, exec_id: str, *, checkpoint: str | None = None, source: str | None = None, since: int = 0, follow: bool = True
    ) -> Iterator[LogEntry]:
        """Log entries as they are written, until the execution is terminal (``kitaru executions logs --follow``).

        Filters and sources are those of :meth:`logs`; ``since`` skips entries up to that row id.

        Raises:
            KitaruNotFoundError: no such execution (on the first ``next()``).
        """
        from kitaru.client._streams import follow_rows

        rows = follow_rows(
            self._client, exec_id, "logs", since=since, follow=follow, params={"invocation_id": checkpoint, "source": source}
        )
        return _log_entries(rows)

    def pending_waits(self, exec_id: str) -> list[Wait]:
        """The execution's waits still expecting input."""
        self._service.get_execution(exec_id, with_calls=False)
        return [Wait.from_record(w) for w in self._service.list_waits(exec_id, status="pending")]

    # --- acting -------------------------------------------------------------------------------

    def input(
        self, exec_id: str, *, wait: str | None = None, value: Any = None, resume: bool = True, detach: bool = True
    ) -> Execution:
        """Answer a pending wait with ``value`` (validated against its schema); returns the execution.

        ``wait`` may be omitted when exactly one wait is pending. A suspended execution
        is resumed unless ``resume=False``: in a driver process of its own, so it never dies with a
        short script (``detach=False``: a thread of this process, which waits for it at exit).
        ``.wait()`` on the returned execution blocks until it ends.

        Raises:
            KitaruWaitValidationError: ``value`` does not match the schema (the wait stays open).
            KitaruConflictError: the wait was answered (or aborted) already.
            KitaruNotFoundError: no such execution or wait.
        """
        from kitaru.contracts.lifecycle import validate_wait_input

        record = self._service.get_wait(exec_id, self._wait_name(exec_id, wait))
        validate_wait_input(record["schema"], value, wait_name=record["name"])
        execution = self._service.settle_wait(exec_id, record["name"], status="answered", value=value)
        self._resume_if_suspended(execution, resume, detach)
        return self.get(exec_id)

    def abort_wait(self, exec_id: str, *, wait: str | None = None, resume: bool = True, detach: bool = True) -> Execution:
        """Abort a pending wait: ``wait()`` raises :class:`KitaruWaitAbortedError` in the flow body.

        A suspended execution is resumed for that, as by :meth:`input`.
        """
        name = self._wait_name(exec_id, wait)
        execution = self._service.settle_wait(exec_id, name, status="aborted")
        self._resume_if_suspended(execution, resume, detach)
        return self.get(exec_id)

    def run(
        self,
        target: str,
        *,
        inputs: dict[str, Any] | None = None,
        exec_id: str | None = None,
        stack: str | None = None,
        image: str | None = None,
        detach: bool = False,
    ) -> FlowHandle:
        """Start flow ``target`` (``module:flow`` or ``path.py:flow``) with keyword ``inputs`` on the stack's backend.

        The driver runs in a background thread of this process, or with ``detach=True`` in a
        process of its own that outlives this one (the inputs are then JSON); returns the handle.

        Raises:
            KitaruStateError: ``exec_id`` names an execution that exists and did not complete.
            KitaruUsageError: the target cannot be loaded, or the stack's backend cannot run it.
        """
        from kitaru.flow import run_spec, submit

        flow = None
        if not detach:
            from kitaru.runtime import load_flow

            flow = load_flow(target)
        settings = self._client._settings()
        spec = run_spec(
            flow,
            settings,
            target=target,
            inputs=inputs,
            stack=stack or getattr(flow, "stack", None),
            image=image,
            exec_id=exec_id,
        )
        return submit(spec, settings, detach=detach)

    def resume(self, exec_id: str, *, detach: bool = False) -> FlowHandle:
        """Continue an interrupted, suspended (waiting) or cancelled execution from its last committed call.

        The driver runs in a background thread of this process (which waits for it at exit), or
        with ``detach=True`` in a process of its own that outlives this one; returns the execution's
        handle. Resuming is idempotent: an execution that is running again (input resumed it, or
        another client did) or has completed since returns its handle; only a failed one is an
        error (retry it).

        Raises:
            KitaruStateError: the execution failed (use :meth:`retry`).
            KitaruNotFoundError: no such execution.
        """
        from kitaru.flow import FlowHandle

        if self._continued(exec_id):
            return FlowHandle(exec_id, self._client._settings())
        return self._continue("resume", exec_id, detach)

    def resume_all(self, *, detach: bool = False) -> list[FlowHandle]:
        """Resume every interrupted execution, and every suspended one whose input has arrived."""
        return [self.resume(exec_id, detach=detach) for exec_id in self.resumable_ids()]

    def resumable_ids(self) -> list[str]:
        """What :meth:`resume_all` resumes: interrupted executions, and suspended ones whose input has arrived.

        Interrupted executions of a stack on a remote backend (a Ray cluster) are included only when
        the stack says ``auto_resume``: re-submitting them starts jobs on that cluster.
        """
        from kitaru.backends.remote import auto_resumes

        interrupted = self._service.list_executions(status="interrupted", limit=10_000)
        stacks: dict[str, bool] = {}
        ids = [row["exec_id"] for row in interrupted if auto_resumes(self._service, row["stack"], stacks)]
        for row in self._service.list_executions(status="waiting", limit=10_000):
            if row["driver_id"] is None and not self._service.list_waits(row["exec_id"], status="pending"):
                ids.append(row["exec_id"])
        return ids

    def retry(self, exec_id: str, *, detach: bool = False) -> FlowHandle:
        """Run a failed execution again: completed calls are reused, failed ones re-run with the current code.

        ``detach=True`` runs the driver in a process of its own (as for :meth:`resume`).
        """
        return self._continue("retry", exec_id, detach)

    def cancel(self, exec_id: str) -> Execution:
        """Cancel an execution (running Ray tasks are stopped); returns once it is ``cancelled``."""
        from kitaru.contracts.lifecycle import cancel

        cancel(self._service, exec_id)
        self._stop_job(exec_id)
        return self.get(exec_id)

    def driver_logs(self, exec_id: str, *, follow: bool = False) -> Iterator[str]:
        """The output of the execution's driver job on a remote backend (e.g. a Ray job's driver log), line by line.

        ``follow`` streams it until the job ends. Empty for executions driven locally, whose
        driver output is captured in :meth:`logs` (source ``runner``).
        """
        from kitaru.backends.remote import remote_backend, submission_of

        record = self._service.get_execution(exec_id, with_calls=False)
        submission = submission_of(record)
        backend = remote_backend(self._service, record["stack"]) if submission is not None else None
        if backend is None or submission is None:
            return iter(())
        return backend.logs(submission, follow=follow)

    def replay(
        self,
        exec_id: str,
        *,
        at: str,
        flow_overrides: dict[str, Any] | None = None,
        checkpoint_overrides: dict[str, dict[str, Any]] | None = None,
        invocation_overrides: dict[str, dict[str, Any]] | None = None,
        skip: list[str] | None = None,
        wait: bool = False,
        detach: bool = False,
        new_exec_id: str | None = None,
    ) -> ReplaySubmission:
        """Replay an execution as a new, linked one (see :meth:`kitaru.Flow.replay`); ``detach`` as for :meth:`resume`.

        ``new_exec_id`` names the replay (default: a new uuid). Returns the replay's handle, which is
        also 0.21's submission (``.results[0].replay_exec_id``).
        """
        from kitaru.flow import start_replay

        return start_replay(
            exec_id,
            self._client._settings(),
            at=at,
            flow_overrides=flow_overrides,
            checkpoint_overrides=checkpoint_overrides,
            invocation_overrides=invocation_overrides,
            skip=skip,
            wait=wait,
            detach=detach,
            new_exec_id=new_exec_id,
        )

    # --- helpers ------------------------------------------------------------------------------

    def _stop_job(self, exec_id: str) -> None:
        """Stop the remote job of a cancelled execution too (its tasks with it); a job already gone is fine."""
        from kitaru.backends.remote import remote_backend, submission_of
        from kitaru.errors import KitaruBackendError

        record = self._service.get_execution(exec_id, with_calls=False)
        submission = submission_of(record)
        if submission is None:
            return
        try:
            backend = remote_backend(self._service, record["stack"])
            if backend is not None and backend.name == submission.backend:
                backend.cancel(submission)
        except (KitaruBackendError, KitaruNotFoundError):
            pass  # the cluster (or the stack) is gone, and the job with it

    def _continue(self, action: str, exec_id: str, detach: bool) -> FlowHandle:
        """Resume or retry ``exec_id`` on its stack's backend, recording where this client reads."""
        from kitaru.contracts.launch import ExecutionSpec, LaunchAction
        from kitaru.flow import connection, submit

        record = self._service.get_execution(exec_id, with_calls=False)
        settings = self._client._settings()
        spec = ExecutionSpec(action=LaunchAction(action), exec_id=exec_id, **connection(settings, record.get("stack")))
        return submit(spec, settings, detach=detach)

    def _continued(self, exec_id: str) -> bool:
        """Whether ``exec_id`` needs no resume: it completed, or a live driver holds it again."""
        from kitaru.contracts.lifecycle import is_driven

        record = self._service.get_execution(exec_id, with_calls=False)
        return record["status"] == "completed" or is_driven(record)

    def _wait_name(self, exec_id: str, wait: str | None) -> str:
        if wait is not None:
            return wait
        pending = self._service.list_waits(exec_id, status="pending")
        if len(pending) != 1:
            names = [w["name"] for w in pending]
            listed = f" ({names})" if names else ""
            raise KitaruUsageError(
                f"execution {exec_id!r} has {len(pending)} pending waits{listed}; name the one you mean with wait=."
            )
        return pending[0]["name"]

    def _resume_if_suspended(self, execution: dict[str, Any], resume: bool, detach: bool) -> FlowHandle | None:
        suspended = execution["status"] == "waiting" and execution["driver_id"] is None
        if not (suspended and resume):
            return None
        try:
            return self._continue("resume", execution["exec_id"], detach)
        except KitaruStateError:
            return None  # another client resumed it first


def _log_entries(rows: Generator[dict[str, Any], None, None]) -> Iterator[LogEntry]:
    with contextlib.closing(rows):  # closing the entries closes the stream (its connection) at once
        for r in rows:
            yield LogEntry(_time(r["timestamp"]), r["level"], r["message"], r["source"], r["invocation_id"], r["attempt"])
