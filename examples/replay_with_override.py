"""Replay a finished execution from a call, with an earlier call's output edited.

    python examples/replay_with_override.py

The original runs research -> write_draft -> publish. The replay starts again at
``write_draft`` with ``research``'s output replaced: ``research`` does not run, the
rest runs live on the edited notes, and the new execution links to the original.
The CLI equivalent: ``kitaru executions replay ID --at write_draft --override 'research={"output": "..."}'``.
"""

from __future__ import annotations

from kitaru import KitaruClient, checkpoint, flow


@checkpoint
def research(topic: str) -> str:
    return f"notes on {topic}"


@checkpoint
def write_draft(notes: str) -> str:
    return f"a draft built on {notes}"


@checkpoint(type="tool_call")
def publish(draft: str) -> str:
    return f"published {draft}"


@flow
def content(topic: str) -> str:
    return publish(write_draft(research(topic)))


def main() -> None:
    original = content.run("Ray")
    print(f"started execution {original.exec_id}")
    print(f"original: {original.wait(timeout=120)}")
    replay = content.replay(
        original.exec_id, at="write_draft", checkpoint_overrides={"research": {"output": "edited notes"}}, wait=True
    )
    print(f"replay:   {replay.get()}")
    for call in KitaruClient().executions.get(replay.exec_id).checkpoints:
        print(f"  {call.invocation_id:<12} {call.status}")


if __name__ == "__main__":
    main()
