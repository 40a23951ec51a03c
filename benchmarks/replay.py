"""``replay``: replaying a finished 4-call flow from its last call, with the third call's output overridden.

The flow chains four tiny checkpoints. The replay reuses calls 1-2 (``replayed``),
takes call 3 from the override (``overridden``) and runs call 4 live; timed from
``Flow.replay(...)`` to the replay's terminal state (``wait=True``).

Baseline: a fresh run of the same 4-call flow in this process. Target: the
original Kitaru took 1.9 s for this replay; here it must take well under that.
"""

from __future__ import annotations

import kitaru
from benchmarks._harness import CaseResult, Options, Row, Target, fresh_home, median, timed

NAME = "replay"


@kitaru.checkpoint
def step(x: int) -> int:
    return x + 1


@kitaru.flow
def four_calls(x: int) -> int:
    for _ in range(4):
        x = step(x)
    return x


def run(options: Options) -> CaseResult:
    repetitions = options.pick(7, 2)
    runs, replays = [], []
    with fresh_home():
        original = four_calls.run(0)
        original.wait()
        for _ in range(repetitions + 1):  # the first round warms up workers and the runtime actor
            run_seconds, _ = timed(lambda: four_calls.run(0).wait())
            replay_seconds, handle = timed(
                lambda: four_calls.replay(
                    original.exec_id, at="step_4", invocation_overrides={"step_3": {"output": 100}}, wait=True
                )
            )
            if handle.get() != 101:
                raise RuntimeError(f"the replay returned {handle.get()}, expected 101")
            runs.append(run_seconds)
            replays.append(replay_seconds)
    baseline = median(runs[1:])
    value = median(replays[1:])
    rows = [Row(NAME, "replay of a 4-call flow at its last call", value, "s", baseline, Target("value", "<=", 1.9, "s"))]
    return CaseResult(
        NAME,
        rows,
        {
            "repetitions": repetitions,
            "baseline": "fresh run of the same flow, s",
            "replay_seconds": replays[1:],
            "run_seconds": runs[1:],
        },
    )
