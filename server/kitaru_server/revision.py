"""The schema revision this code expects, known without importing SQLAlchemy or Alembic."""

from __future__ import annotations

from pathlib import Path

__all__ = ["HEAD_REVISION", "head_revision"]


def head_revision(migrations: Path) -> str:
    """The newest revision in ``migrations``: files are numbered (NNNN_description.py), each revising the one before."""
    return max(path.name.split("_", 1)[0] for path in (migrations / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


HEAD_REVISION = head_revision(Path(__file__).with_name("migrations"))
