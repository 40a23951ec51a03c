"""Replay planning: which calls of a replay reuse the original's outputs, which are overridden, which run live.

The plan is built and validated from the original execution before anything
runs; the driver then asks it about every call (and wait) in the order the
flow body makes them, which is how divergence is detected.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kitaru.errors import KitaruDivergenceError, KitaruUsageError

OVERRIDE_KINDS = ("output", "input", "model", "code")
_KIND_NEEDS_TYPE = {"model": "llm_call", "code": "tool_call"}


@dataclasses.dataclass(frozen=True)
class Step:
    """One call or wait of the original execution, in sequence."""

    kind: str  # "call" or "wait"
    invocation_id: str
    name: str
    seq: int
    record: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Decision:
    """What the replay does with one call: ``reuse``, ``override`` or ``live``."""

    action: str
    original: Step | None = None
    output: Any = None
    inputs: dict[str, Any] | None = None
    model: str | None = None
    code: str | None = None


class ReplayPlan:
    """The validated plan of one replay."""

    def __init__(
        self,
        original: dict[str, Any],
        waits: list[dict[str, Any]],
        *,
        at: str,
        checkpoint_overrides: dict[str, dict[str, Any]] | None = None,
        invocation_overrides: dict[str, dict[str, Any]] | None = None,
        skip: list[str] | None = None,
    ) -> None:
        self.original_exec_id = original["exec_id"]
        calls = [Step("call", c["invocation_id"], c["name"], c["seq"], c) for c in original["checkpoints"]]
        opened = [Step("wait", w["name"], w["name"], w["seq"], w) for w in waits]
        self.steps = sorted(calls + opened, key=lambda step: step.seq)
        self._by_id = {step.invocation_id: step for step in self.steps}
        self.at = self._resolve(at, "at")
        self._at_index = self.steps.index(self.at)
        self._overrides = self._merge_overrides(checkpoint_overrides or {}, invocation_overrides or {})
        self._skip = {self._resolve(selector, "skip").invocation_id for selector in (skip or [])}

    # --- validation -------------------------------------------------------------------------

    def _resolve(self, selector: str, what: str) -> Step:
        """An invocation id, or a name meaning its first invocation."""
        by_id = self._by_id.get(selector)
        by_name = next((step for step in self.steps if step.name == selector), None)
        if by_id is not None and by_name is not None and by_id is not by_name:
            raise KitaruUsageError(
                f"{what}={selector!r} is ambiguous: it is the invocation id of a {by_id.name!r} call and the name of checkpoint "
                f"{by_name.name!r} (first invocation {by_name.invocation_id!r}); pass the invocation id you mean."
            )
        step = by_id or by_name
        if step is None:
            raise KitaruUsageError(
                f"{what}={selector!r} matches no call of execution {self.original_exec_id!r}; "
                f"use an invocation id or a checkpoint name, one of {[s.invocation_id for s in self.steps]}."
            )
        return step

    def _merge_overrides(
        self, by_name: dict[str, dict[str, Any]], by_invocation: dict[str, dict[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        merged: dict[str, dict[str, Any]] = {}
        for name, override in by_name.items():
            steps = [step for step in self.steps if step.kind == "call" and step.name == name]
            if not steps:
                raise KitaruUsageError(
                    f"checkpoint_overrides selects {name!r}, which is not the name of any checkpoint called by execution "
                    f"{self.original_exec_id!r}; names: {sorted({s.name for s in self.steps if s.kind == 'call'})}."
                )
            for step in steps:
                merged[step.invocation_id] = self._checked(step, override)
        for invocation_id, override in by_invocation.items():
            step = self._by_id.get(invocation_id)
            if step is None or step.kind != "call":
                raise KitaruUsageError(
                    f"invocation_overrides selects {invocation_id!r}, which is not an invocation id of execution "
                    f"{self.original_exec_id!r}; ids: {[s.invocation_id for s in self.steps if s.kind == 'call']}."
                )
            merged[invocation_id] = self._checked(step, override)  # invocation overrides win
        return merged

    @staticmethod
    def _checked(step: Step, override: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(override, dict) or len(override) != 1 or next(iter(override)) not in OVERRIDE_KINDS:
            raise KitaruUsageError(
                f"the override for {step.invocation_id!r} must be one of {{'output': value}}, {{'input': {{arg: value}}}}, "
                f"{{'model': 'provider/model'}} or {{'code': 'module:function'}}; got {override!r}."
            )
        kind = next(iter(override))
        needed = _KIND_NEEDS_TYPE.get(kind)
        if needed is not None and step.record.get("checkpoint_type") != needed:
            raise KitaruUsageError(
                f"a {kind!r} override only applies to {needed} checkpoints, and {step.invocation_id!r} is of type "
                f"{step.record.get('checkpoint_type')!r}; use an 'output' or 'input' override instead."
            )
        if kind == "input" and not isinstance(override["input"], dict):
            raise KitaruUsageError(f"the 'input' override for {step.invocation_id!r} takes a dict of argument names to values.")
        if kind == "code" and ":" not in str(override["code"]):
            raise KitaruUsageError(
                f"the 'code' override for {step.invocation_id!r} takes 'module:function', not {override['code']!r}."
            )
        return override

    # --- decisions during the replay ----------------------------------------------------------

    def decide(self, seq: int, kind: str, invocation_id: str, name: str) -> Decision:
        """What to do with the ``seq``-th call or wait of the replayed flow body.

        Raises:
            KitaruDivergenceError: before ``at``, the code calls something other than the original did.
        """
        if seq < self._at_index:
            expected = self.steps[seq]
            if (expected.kind, expected.invocation_id) != (kind, invocation_id):
                raise KitaruDivergenceError(
                    f"replay diverged at position {seq + 1}: the original execution {self.original_exec_id!r} called "
                    f"{expected.kind} {expected.invocation_id!r} there, but the code now calls {kind} {invocation_id!r}. "
                    f"Replay from an earlier point (at=) or run the flow afresh.",
                    invocation_id=invocation_id,
                    origin="divergence",
                )
        original = self._by_id.get(invocation_id)
        if original is not None and original.kind != kind:
            original = None
        override = self._overrides.get(invocation_id) if kind == "call" else None
        if override is not None:
            ((override_kind, value),) = override.items()
            if override_kind == "output":
                return Decision("override", original, output=value)
            return Decision("live", original, **{"inputs" if override_kind == "input" else override_kind: value})
        reusable = original is not None and _reusable(original)
        if reusable and (seq < self._at_index or invocation_id in self._skip):
            return Decision("reuse", original)
        return Decision("live", original)


def _reusable(step: Step) -> bool:
    if step.kind == "wait":
        return step.record.get("status") == "answered"
    return (
        step.record.get("status") in ("completed", "cached", "replayed", "overridden") and step.record.get("output") is not None
    )
