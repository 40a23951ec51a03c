"""Deployments: versioned snapshots of a flow (its code in storage, its stack and defaults), with tags.

Versions of a flow are numbered from 1 in the order they are registered. A tag
(``prod``, ``staging``) names one version of a flow at a time: tagging another
version moves it. The server stores only the snapshot's reference; the code
itself stays in the stack's storage.
"""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from kitaru.errors import KitaruUsageError
from kitaru_server import tables as t
from kitaru_server.errors import NotFoundError

__all__ = ["DeploymentOperations"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")


class DeploymentOperations:
    """Mixed into :class:`~kitaru_server.service.KitaruService` (uses its engines)."""

    _write: Any
    _read: Any

    def create_deployment(
        self,
        flow: str,
        *,
        flow_ref: str,
        snapshot: dict[str, Any],
        stack: str,
        image: str | None = None,
        defaults: dict[str, Any] | None = None,
        parameters: list[dict[str, Any]] | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Register the next version of ``flow``; its ``tags`` move to it.

        Raises:
            KitaruUsageError: a bad flow name or tag.
        """
        _check_name(flow, "flow name")
        for tag in tags or []:
            _check_name(tag, "tag")
        with self._write.begin() as conn:
            latest = conn.execute(select(func.max(t.deployments.c.version)).where(t.deployments.c.flow == flow)).scalar()
            version = (latest or 0) + 1
            conn.execute(
                insert(t.deployments).values(
                    flow=flow,
                    version=version,
                    flow_ref=flow_ref,
                    snapshot=snapshot,
                    stack=stack,
                    image=image,
                    defaults=defaults or {},
                    parameters=parameters or [],
                    tags=[],
                    created_at=time.time(),
                )
            )
            for tag in dict.fromkeys(tags or []):
                _move_tag(conn, flow, version, tag)
        return self.get_deployment(flow, version=version)

    def list_deployments(self, flow: str | None = None) -> list[dict[str, Any]]:
        """Every deployment version (of ``flow``), by flow and then newest first."""
        query = select(t.deployments).order_by(t.deployments.c.flow, t.deployments.c.version.desc())
        if flow is not None:
            query = query.where(t.deployments.c.flow == flow)
        with self._read.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def get_deployment(self, flow: str, *, version: int | None = None, tag: str | None = None) -> dict[str, Any]:
        """One version of ``flow``: by number, by tag, or (neither) the newest.

        Raises:
            NotFoundError: no such flow, version or tag (the message names ``kitaru deployments list``).
        """
        rows = self.list_deployments(flow)
        if not rows:
            raise NotFoundError(f"flow {flow!r} has no deployments; deploy it with `kitaru deploy MODULE:{flow} --stack STACK`.")
        if version is not None:
            found = [row for row in rows if row["version"] == version]
            what = f"version {version}"
        elif tag is not None:
            found = [row for row in rows if tag in row["tags"]]
            what = f"tag {tag!r}"
        else:
            found, what = rows[:1], "version"
        if not found:
            tags = sorted({name for row in rows for name in row["tags"]})
            raise NotFoundError(
                f"flow {flow!r} has no deployment with {what} (versions 1-{rows[0]['version']}, tags {tags}); "
                f"list them with `kitaru deployments list {flow}`."
            )
        return found[0]

    def tag_deployment(self, flow: str, version: int, tag: str) -> dict[str, Any]:
        """Point ``tag`` at ``version`` of ``flow`` (moving it from another version)."""
        _check_name(tag, "tag")
        self.get_deployment(flow, version=version)
        with self._write.begin() as conn:
            _move_tag(conn, flow, version, tag)
        return self.get_deployment(flow, version=version)

    def delete_deployment(self, flow: str, version: int) -> None:
        """Delete one version of ``flow`` (its snapshot stays in storage: executions may still need it)."""
        self.get_deployment(flow, version=version)
        with self._write.begin() as conn:
            conn.execute(delete(t.deployments).where(t.deployments.c.flow == flow, t.deployments.c.version == version))


def _move_tag(conn: Any, flow: str, version: int, tag: str) -> None:
    rows = conn.execute(select(t.deployments.c.version, t.deployments.c.tags).where(t.deployments.c.flow == flow)).all()
    for row_version, tags in rows:
        wanted = [name for name in tags if name != tag] + ([tag] if row_version == version else [])
        if wanted != list(tags):
            conn.execute(
                update(t.deployments)
                .where(t.deployments.c.flow == flow, t.deployments.c.version == row_version)
                .values(tags=wanted)
            )


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise KitaruUsageError(f"{what} {name!r} is not valid; use letters, digits, '_', '.', ':' or '-' (up to 128 characters).")
