"""``chain``: the fixed cost of one sequential checkpoint call.

A flow calls a tiny checkpoint N times in sequence (``x = inc(x)``; N = 100).
The flow body times its own loop, so starting and finishing the execution are
not counted; each call returns only once its output is stored and its record
committed (durable before visible).

Baseline: the same chain of bare Ray tasks, ``x = ray.get(inc.remote(x))``,
with the checkpoint's default ``num_cpus``. Target (SPEC §10): per call at most
2.0x the bare round trip (stretch 1.5x). The same chain with ``runtime="inline"`` checkpoints
(run in the driver, still durable) must cost at most 1 ms per call.
Reported: medians over a few repetitions, each a fresh execution. The JSON also
holds the end-to-end time per call and, as diagnostics, a bare chain whose every
outcome also passes through an async actor (Kitaru's two Ray hops without its
storage write and database commit), a bare chain whose every task is submitted
2 ms after the previous returned (Ray returns an idle worker's lease at once, so
a task that is not queued behind another pays for a new one, as every call of a
durable chain does), and the start-up of a runtime actor.
"""

from __future__ import annotations

import time
from typing import Any

import ray

import kitaru
from benchmarks._harness import CaseResult, Options, Row, Target, fresh_home, median, timed
from kitaru.runtime._ray import DEFAULT_CHECKPOINT_NUM_CPUS

NAME = "chain"


@kitaru.checkpoint
def inc(x: int) -> int:
    return x + 1


@kitaru.checkpoint(runtime="inline")
def inc_inline(x: int) -> int:
    return x + 1


@ray.remote(num_cpus=DEFAULT_CHECKPOINT_NUM_CPUS, max_retries=0)
def bare_inc(x: int) -> int:
    return x + 1


@ray.remote(num_cpus=0)
class Relay:
    """An async actor standing in for Kitaru's runtime actor, minus storage and database."""

    async def relay(self, outcome: int) -> int:
        return outcome


@kitaru.flow
def chain_flow(length: int, inline: bool) -> list[float]:
    """Run the chain; returns ``[seconds spent in the loop, final x]``."""
    step = inc_inline if inline else inc
    x = 0
    start = time.perf_counter()
    for _ in range(length):
        x = step(x)
    return [time.perf_counter() - start, x]


def _kitaru_per_call(length: int, *, inline: bool) -> tuple[float, float]:
    """``(loop seconds per call, end-to-end seconds per call)`` of one execution."""
    end_to_end, (loop, x) = timed(lambda: chain_flow.run(length, inline).wait())
    if x != length:
        raise RuntimeError(f"the chain returned {x}, expected {length}")
    return loop / length, end_to_end / length


def _bare_per_call(length: int) -> float:
    start = time.perf_counter()
    x = 0
    for _ in range(length):
        x = ray.get(bare_inc.remote(x))
    return (time.perf_counter() - start) / length


def _bare_with_actor_hop_per_call(length: int, relay: Any) -> float:
    """The floor of Kitaru's design: the task's outcome goes through an actor before the driver reads the value."""
    start = time.perf_counter()
    x = 0
    for _ in range(length):
        value_ref = bare_inc.remote(x)
        ray.get(relay.relay.remote(value_ref))
        x = ray.get(value_ref)
    return (time.perf_counter() - start) / length


def _bare_after_pause_per_call(length: int, pause: float = 0.002) -> float:
    """A bare chain whose next task starts ``pause`` seconds after the previous returned (the pause not counted).

    Ray hands a worker's lease back as soon as no task of its kind is queued, so a
    task submitted a moment later waits for a new lease. Kitaru's next call always
    comes a moment later (after the commit): this is the bare round trip it pays.
    """
    total = 0.0
    x = 0
    for _ in range(length):
        start = time.perf_counter()
        x = ray.get(bare_inc.remote(x))
        total += time.perf_counter() - start
        time.sleep(pause)
    return total / length


def _actor_start_ms() -> float:
    """What a runtime actor per execution would add to every run: creating one and its first call."""
    from kitaru.runtime._actor import RuntimeActor

    start = time.perf_counter()
    actor = ray.remote(RuntimeActor).options(num_cpus=0).remote()
    ray.get(actor.pid.remote())
    elapsed = time.perf_counter() - start
    ray.kill(actor)
    return 1000 * elapsed


def run(options: Options) -> CaseResult:
    length = options.pick(100, 30)
    repetitions = options.pick(5, 2)
    keys = (
        "isolated",
        "isolated_end_to_end",
        "inline",
        "inline_end_to_end",
        "bare",
        "bare_with_actor_hop",
        "bare_after_pause",
    )
    samples: dict[str, list[float]] = {key: [] for key in keys}
    relay = Relay.remote()
    with fresh_home():
        _kitaru_per_call(length, inline=False)  # warm-up: workers, the runtime actor, the database
        _kitaru_per_call(length, inline=True)
        _bare_per_call(length)
        _bare_with_actor_hop_per_call(length, relay)
        for _ in range(repetitions):
            for inline, key in ((False, "isolated"), (True, "inline")):
                loop, end_to_end = _kitaru_per_call(length, inline=inline)
                samples[key].append(loop)
                samples[f"{key}_end_to_end"].append(end_to_end)
            samples["bare"].append(_bare_per_call(length))
            samples["bare_with_actor_hop"].append(_bare_with_actor_hop_per_call(length, relay))
            samples["bare_after_pause"].append(_bare_after_pause_per_call(length))
    ray.kill(relay)
    actor_start = [_actor_start_ms() for _ in range(repetitions)]
    ms = {key: [1000 * s for s in values] for key, values in samples.items()}
    bare = median(ms["bare"])
    rows = [
        Row(
            NAME,
            f"isolated checkpoint, per call ({length}-call chain)",
            median(ms["isolated"]),
            "ms",
            bare,
            Target("ratio", "<=", 2.0),
        ),
        Row(
            NAME,
            f"inline checkpoint, per call ({length}-call chain)",
            median(ms["inline"]),
            "ms",
            bare,
            Target("value", "<=", 1.0, "ms"),
        ),
    ]
    details = {
        "length": length,
        "repetitions": repetitions,
        "baseline": "ray.get(bare_inc.remote(x)) chain, ms per call",
        "median_ms_per_call": {key: median(values) for key, values in ms.items()},
        "runtime_actor_start_ms": actor_start,  # why one detached actor per node serves every driver
        "samples_ms_per_call": ms,
    }
    return CaseResult(NAME, rows, details)
