"""What ``replay`` returns: the replay's :class:`~kitaru.FlowHandle` that is also 0.21's ``ReplaySubmission``.

Kitaru 0.21 scripts read ``submission.results[0].replay_exec_id``; this version's
callers use the handle (``exec_id``, ``status``, ``wait()``). Both work on one object.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from kitaru.flow import FlowHandle

__all__ = ["ReplayResultRow", "ReplaySubmission", "ReplaySummary"]


@dataclasses.dataclass(frozen=True)
class ReplayResultRow:
    """One submitted replay: the execution it replays and the new execution's id."""

    original_exec_ref: str
    original_exec_id: str
    replay_exec_id: str
    status: Literal["submitted", "completed", "failed"]
    compare_url: str | None = None
    handle: Any = dataclasses.field(default=None, repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class ReplaySummary:
    """How many replays were submitted, completed, failed and skipped."""

    submitted: int
    completed: int
    failed: int
    skipped: int


class ReplaySubmission(FlowHandle[Any]):
    """The handle of a replay, with 0.21's ``results``, ``failures``, ``skipped`` and ``summary``."""

    def __init__(self, handle: FlowHandle[Any], *, original_exec_id: str) -> None:
        super().__init__(handle.exec_id, handle._settings, driver=handle._driver, submission=handle.submission)
        self.original_exec_id = original_exec_id
        self.failures: list[Any] = []
        self.skipped: list[Any] = []

    @property
    def results(self) -> list[ReplayResultRow]:
        """One row (this version replays one execution per call), with the replay's status now."""
        status = self.status
        row_status = status if status in ("completed", "failed") else "submitted"
        return [ReplayResultRow(self.original_exec_id, self.original_exec_id, self.exec_id, row_status, handle=self)]

    @property
    def summary(self) -> ReplaySummary:
        status = self.results[0].status
        return ReplaySummary(submitted=1, completed=int(status == "completed"), failed=int(status == "failed"), skipped=0)

    def __repr__(self) -> str:
        return f"<ReplaySubmission {self.exec_id} of {self.original_exec_id}>"
