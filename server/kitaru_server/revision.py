"""The schema revision this code expects, known without importing SQLAlchemy or Alembic."""

from __future__ import annotations

from pathlib import Path

__all__ = ["HEAD_REVISION", "MIGRATIONS"]

MIGRATIONS = Path(__file__).with_name("migrations")
# Revisions are numbered files (NNNN_description.py), each revising the one before, so the
# head is the highest number: no Alembic import is needed to know whether to migrate.
HEAD_REVISION = max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
