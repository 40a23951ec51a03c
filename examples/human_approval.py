"""A flow that waits for a person: draft, ask for approval, publish.

    python examples/human_approval.py

The flow waits (``kitaru.wait``) with a pydantic schema; this script answers the
wait from the client after a moment, as a reviewer would from the CLI
(``kitaru executions input ID --value '{"approved": true}'``), the web UI or MCP.
On a terminal the run also prompts inline; KITARU_NO_PROMPT=1 turns that off.
"""

from __future__ import annotations

import pydantic

import kitaru
from kitaru import KitaruClient, checkpoint, flow
from kitaru.testing import wait_for


class Review(pydantic.BaseModel):
    approved: bool
    comment: str = ""


@checkpoint
def write_draft(topic: str) -> str:
    return f"Durable execution keeps {topic} from repeating finished work."


@checkpoint(type="tool_call")
def publish(text: str) -> str:
    return f"published: {text}"


@flow
def approval(topic: str) -> str:
    draft = write_draft(topic)
    review = kitaru.wait(schema=Review, name="review", question=f"Publish this? {draft}", timeout=300)
    return publish(draft) if review.approved else f"rejected ({review.comment})"


def main() -> None:
    handle = approval.run("agents")
    print(f"started execution {handle.exec_id}")
    client = KitaruClient()
    [pending] = wait_for(lambda: client.executions.pending_waits(handle.exec_id), timeout=120)
    print(f"waiting for {pending.name!r}: {pending.question}")
    try:
        client.executions.input(handle.exec_id, wait="review", value={"approved": "yes"})
    except kitaru.KitaruWaitValidationError as error:
        print(f"refused: {error}")
    client.executions.input(handle.exec_id, wait="review", value={"approved": True})
    print(f"result: {handle.wait(timeout=120)}")


if __name__ == "__main__":
    main()
