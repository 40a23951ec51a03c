"""Flows the MCP tests run by target (``mcp_flows:review``) in detached driver processes.

Importable because the test starts the MCP server with this directory as its
working directory and on ``PYTHONPATH`` (Ray workers get the driver's directory).
"""

from ui_flows import fragile  # the same failing-until-fixed flow the UI tests run

import kitaru
from kitaru import checkpoint, flow


@checkpoint
def draft(topic: str) -> str:
    print(f"drafting {topic}")
    return f"draft about {topic}"


@checkpoint
def publish(text: str, approved: bool) -> str:
    return f"{'published' if approved else 'rejected'}: {text}"


@flow
def review(topic: str, timeout: float = 60.0) -> str:
    """Draft, wait for a yes/no, publish: ``timeout`` seconds of polling before the driver suspends."""
    text = draft(topic)
    approved = kitaru.wait(schema=bool, name="approve", question="Publish the draft?", timeout=timeout)
    return publish(text, approved)


__all__ = ["fragile", "review"]
