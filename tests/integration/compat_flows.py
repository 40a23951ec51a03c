"""Flows written as Kitaru 0.21's documentation writes them (imported by tests/test_compat_021.py)."""

import kitaru
from kitaru import checkpoint, flow


@checkpoint
def research(topic: str) -> str:
    notes = f"Research notes about {topic}."
    kitaru.save("research_context", {"topic": topic, "notes": notes}, type="context")
    kitaru.events.publish("agent.thought", {"topic": topic}, message="researched")
    return notes


@checkpoint
def write_report(summary: str) -> str:
    return f"Report: {summary}"


@flow
def report_flow(topic: str) -> str:
    summary = research(topic)
    return write_report(summary)


@flow
def handle_flow(topic: str) -> str:
    """The 0.21 artifacts guide: ``.load()`` a checkpoint's handle, pass the handle on."""
    summary = research(topic)
    summary_text = summary.load()
    approved = kitaru.wait(name="approve_summary", question=f"Approve this summary?\n\n{summary_text}", schema=bool, timeout=0.2)
    report = write_report(summary)
    return report.load() if approved else "rejected"


@checkpoint
def flaky(value: int) -> int:
    raise ValueError(f"bad value {value}")


@flow
def failing_flow(value: int) -> int:
    return flaky(value)


@flow
def chat_flow() -> str:
    return kitaru.llm(
        [
            {"role": "user", "content": "Draft a release note headline."},
            {"role": "assistant", "content": "Kitaru adds durable replay controls."},
            {"role": "user", "content": "Now make it shorter."},
        ],
        model="fast",
        name="headline_refine",
        system="Be brief.",
    )
