"""Flows the web UI tests run: in the test process, and in detached drivers the UI starts (resume, replay).

Importable by module name because the UI tests run with this directory as the
working directory and on ``PYTHONPATH`` (detached drivers and their Ray workers
get the driver's directory).
"""

import os
import time

import pydantic

import kitaru
from kitaru import checkpoint, flow


@checkpoint
def plan(topic: str, width: int) -> list[str]:
    print(f"planning {width} sources about {topic}")
    return [f"{topic}-source-{i}" for i in range(width)]


@checkpoint
def fetch(sources: list[str], index: int) -> dict:
    print(f"fetching {sources[index]}")
    return {"source": sources[index], "words": 120 + 7 * index, "quality": round(0.5 + index / 20, 2)}


@checkpoint
def tabulate(*pages: dict):
    import pyarrow as pa

    return pa.table(
        {"source": [p["source"] for p in pages], "words": [p["words"] for p in pages], "quality": [p["quality"] for p in pages]}
    )


@checkpoint(type="llm_call")
def summarize(table, model: str) -> str:
    return kitaru.llm(
        f"Summarize {table.num_rows} sources: {', '.join(table.column('source').to_pylist())}",
        model=model,
        system="Answer in one sentence.",
        max_tokens=40,
    )


@flow
def research(topic: str, width: int = 4, model: str = "fake") -> dict:
    """A fan-out: plan, fetch every source in parallel, tabulate them (an Arrow table), summarize with a model."""
    sources = plan.submit(topic, width)
    pages = [fetch.submit(sources, i) for i in range(width)]
    table = tabulate.submit(*pages)
    summary = summarize(table, model)
    return {"summary": summary, "sources": width}


@checkpoint
def explode(reason: str) -> None:
    raise ValueError(f"cannot continue: {reason}")


@flow
def broken(reason: str) -> None:
    explode(reason)


class Review(pydantic.BaseModel):
    approved: bool
    score: int = pydantic.Field(ge=1, le=5, description="1 (poor) to 5 (great)")
    comment: str = ""
    tags: list[str] = []


@checkpoint
def draft(topic: str) -> str:
    return f"A draft about {topic}."


@checkpoint
def publish(text: str, review: dict) -> str:
    return f"{'published' if review['approved'] else 'shelved'} ({review['score']}/5, {','.join(review['tags'])}): {text}"


@flow
def review(topic: str, timeout: float = 1.0) -> str:
    """Draft, wait for a review (the driver suspends after ``timeout`` s), publish."""
    text = draft(topic)
    answer = kitaru.wait(schema=Review, name="review", question="Publish this draft?", timeout=timeout)
    return publish(text, answer.model_dump())


@checkpoint
def nap(seconds: float, marker: str = "") -> float:
    """Sleep ``seconds``, or until ``marker`` exists."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (marker and os.path.exists(marker)):
        time.sleep(0.05)
    return seconds


@flow
def sleepy(seconds: float, marker: str = "") -> float:
    return nap(seconds, marker)


@checkpoint
def check(marker: str) -> str:
    if not os.path.exists(marker):
        raise RuntimeError(f"{marker} is missing")
    return "ok"


@flow
def fragile(marker: str) -> str:
    """Fails until ``marker`` exists; a retry then completes."""
    return check(marker)
