"""``KitaruClient().artifacts``: stored outputs and saved values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitaru.client._models import ArtifactRef
from kitaru.errors import KitaruUsageError

if TYPE_CHECKING:
    from kitaru.client import KitaruClient


class Artifacts:
    """Find artifacts and load them."""

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    def list(
        self,
        exec_id: str | None = None,
        *,
        name: str | None = None,
        kind: str | None = None,
        producing_call: str | None = None,
        limit: int | None = 200,
    ) -> list[ArtifactRef]:
        """Artifacts, newest first: of one execution (its id positional, as in 0.21) or of all.

        Args:
            name: A ``save()`` name or an invocation id.
            kind: ``output``, ``saved``, ...
            producing_call: The invocation id of the call that produced them.
            limit: At most this many (``None``: no limit).
        """
        if limit is not None and limit < 1:
            raise KitaruUsageError(f"limit must be 1 or more, not {limit}.")
        fetch = limit if limit is not None and producing_call is None else 1_000_000  # filtered here: the limit applies after
        rows = self._client.service.list_artifacts(exec_id=exec_id, name=name, kind=kind, limit=fetch)
        if producing_call is not None:
            rows = [row for row in rows if row["invocation_id"] == producing_call][:limit]
        return [self._ref(row) for row in rows]

    def get(self, artifact_id: str) -> ArtifactRef:
        """One artifact by id; ``.load()`` it."""
        return self._ref(self._client.service.get_artifact(artifact_id))

    def find(self, exec_id: str, name: str) -> ArtifactRef:
        """The artifact ``name`` (a ``save()`` name or an invocation id) of an execution."""
        return self._ref(self._client.service.find_artifact(exec_id, name))

    def _ref(self, row: dict[str, Any]) -> ArtifactRef:
        settings = self._client.service.get_execution(row["exec_id"], with_calls=False)["settings"]
        return ArtifactRef.from_record(row, settings)
