"""Quickstart: a small research agent as a durable Kitaru flow (what ``make demo`` runs).

The flow fetches a few documents, analyses them in parallel (one checkpoint call
per document, fanned out with ``.map``) and writes a summary. Every checkpoint's
output is persisted before the flow body sees it, so the execution can be
inspected afterwards, resumed after a crash, and its calls reused by the cache.

Run it with ``make demo`` or ``python examples/quickstart.py``. It runs in
embedded mode: a local Ray instance (or the cluster named by
``KITARU_RAY_ADDRESS``) executes the checkpoints, and the records go to the
SQLite database under ``KITARU_HOME`` (default ``~/.kitaru``, or the project's
``.kitaru/`` directory when there is one). No network access is needed: the
"documents" are a small built-in corpus.
"""

from __future__ import annotations

import collections
import re
import sys

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.config import resolve_settings

CORPUS = {
    "durable-execution": (
        "Durable execution persists the result of every step. When a process crashes, the work "
        "resumes from the last persisted step instead of starting again, so expensive steps never repeat."
    ),
    "ray-tasks": (
        "Ray runs Python functions as tasks across a cluster. Tasks run in parallel on worker "
        "processes, and their results are passed between tasks as object references."
    ),
    "ai-agents": (
        "AI agents call language models and tools in loops. Model calls are slow, costly and not "
        "deterministic, so an agent that crashes halfway should keep the answers it already paid for."
    ),
    "human-in-the-loop": (
        "Some agent steps need a human to approve or correct them. Waiting for a person can take "
        "days, so the agent should persist its state and release its resources while it waits."
    ),
}
STOPWORDS = frozenset(
    "a an and are as across be between by call calls can for from in instead is it its last "
    "of on or so some should that the their them they to when while who with".split()
)


@checkpoint
def fetch_sources(topic: str, limit: int) -> list[dict[str, str]]:
    """Fetch the documents about ``topic`` (here: from the built-in corpus)."""
    print(f"fetching up to {limit} sources about {topic!r}")
    return [{"title": title, "text": text} for title, text in list(CORPUS.items())[:limit]]


@checkpoint
def analyse(document: dict[str, str]) -> dict[str, object]:
    """Analyse one document: its length and its most frequent content words."""
    words = re.findall(r"[a-z]+", document["text"].lower())
    content = [word for word in words if word not in STOPWORDS and len(word) > 2]
    keywords = [word for word, _ in collections.Counter(content).most_common(3)]
    kitaru.log(words=len(words))  # metadata on this checkpoint call
    return {"title": document["title"], "words": len(words), "keywords": keywords}


@checkpoint
def summarise(topic: str, analyses: list[dict[str, object]]) -> dict[str, object]:
    """Combine the analyses into a short report."""
    keywords = collections.Counter(word for item in analyses for word in item["keywords"])
    return {
        "topic": topic,
        "sources": [item["title"] for item in analyses],
        "total_words": sum(item["words"] for item in analyses),
        "top_keywords": [word for word, _ in keywords.most_common(5)],
    }


@flow
def research(topic: str, limit: int = 4) -> dict[str, object]:
    """Fetch sources, analyse them in parallel, summarise."""
    documents = fetch_sources(topic, limit)  # a direct call returns the value, once it is persisted
    analyses = analyse.map(documents)  # one call per document, running in parallel
    # The futures go to the next checkpoint as they are: their values travel inside Ray.
    return summarise(topic, analyses)


def main() -> int:
    settings = resolve_settings()
    print(f"Kitaru {kitaru.__version__} quickstart")
    print(f"  KITARU_HOME: {settings.home}")
    print(f"  database:    {settings.database_url}")
    print(f"  storage:     {settings.storage_url}")
    print(f"  Ray:         {settings.ray_address or 'a new local Ray instance (set KITARU_RAY_ADDRESS to join a cluster)'}")
    print()

    handle = research.run("durable agents", limit=4)
    print(f"started execution {handle.exec_id}")
    report = handle.wait(timeout=300)

    print("\nresult:")
    for key, value in report.items():
        print(f"  {key}: {value}")

    execution = KitaruClient().executions.get(handle.exec_id)
    print(f"\nexecution {execution.exec_id}: {execution.status}")
    print("checkpoint calls:")
    invocation_of = {c.call_id: c.invocation_id for c in execution.checkpoints}
    for call in execution.checkpoints:
        parents = ", ".join(invocation_of.get(p, p) for p in call.parent_call_ids) or "-"
        attempts, metadata = len(call.attempts), call.metadata or "-"
        print(f"  {call.invocation_id:<14} {call.status:<10} attempts={attempts} inputs from: {parents:<40} metadata: {metadata}")

    logs = KitaruClient().executions.logs(handle.exec_id)
    print("captured logs:")
    for entry in logs:
        print(f"  [{entry.source} {entry.invocation_id or 'flow'}] {entry.message}")
    if not logs:
        print("  (none: no checkpoint ran, every output came from the cache)")

    print(
        f"""
Inspect it from any Python process that uses the same KITARU_HOME ({settings.home}):

    from kitaru import KitaruClient
    execution = KitaruClient().executions.get("{handle.exec_id}")
    execution.status, execution.result()
    [(c.invocation_id, c.status) for c in execution.checkpoints]
    KitaruClient().executions.logs("{handle.exec_id}")

Run the demo again: the same calls with the same inputs are served from the cache (status "cached")."""
    )
    return 0 if execution.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
