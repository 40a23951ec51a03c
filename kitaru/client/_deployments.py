"""``KitaruClient().deployments``: versioned snapshots of flows, and invoking them (SPEC §8)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
import json
import uuid
from typing import TYPE_CHECKING, Any

from kitaru.errors import KitaruNotFoundError, KitaruUsageError

if TYPE_CHECKING:
    from kitaru.client import KitaruClient
    from kitaru.flow import Flow, FlowHandle

__all__ = ["Deployment", "Deployments"]


@dataclasses.dataclass(frozen=True)
class Deployment:
    """One registered version of a flow."""

    flow: str
    version: int
    flow_ref: str
    stack: str
    image: str | None
    defaults: dict[str, Any]
    parameters: list[dict[str, Any]]
    tags: list[str]
    snapshot: dict[str, Any] = dataclasses.field(repr=False)
    created_at: dt.datetime | None = None

    @classmethod
    def from_record(cls, row: dict[str, Any]) -> Deployment:
        fields = {f.name for f in dataclasses.fields(cls)} - {"created_at"}
        created = row.get("created_at")
        return cls(
            **{key: row[key] for key in fields},
            created_at=None if created is None else dt.datetime.fromtimestamp(created, tz=dt.UTC),
        )


class Deployments:
    """Deploy flows as versioned snapshots, tag versions, and invoke them (``kitaru deploy|invoke|deployments``)."""

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    def deploy(
        self,
        flow: Flow,
        *,
        stack: str | None = None,
        tags: list[str] | None = None,
        image: str | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> Deployment:
        """Register the next version of ``flow``: a snapshot of its code in the stack's storage, its stack and defaults.

        Raises:
            KitaruUsageError: the flow has no source file, or ``defaults`` do not bind to its signature.
        """
        from kitaru._stacks import apply_stack
        from kitaru.config import resolve_settings
        from kitaru.runtime import pack_flow
        from kitaru.storage import open_storage

        service = self._client.service
        settings = resolve_settings()
        stack_name = stack or flow.stack or settings.stack or "default"
        settings = apply_stack(settings, service, stack_name)
        defaults = dict(defaults or {})
        _bind(flow.name, _parameters(flow), defaults, partial=True)
        data, flow_ref = pack_flow(flow)
        storage = open_storage(
            settings.storage_url, settings.storage_options, service_url=settings.service_url, api_key=settings.api_key
        )
        stored = storage.put(data)
        snapshot = {
            "uri": stored.uri,
            "digest": stored.digest,
            "digest_algorithm": stored.algorithm,
            "size": stored.size,
            "serializer": "zip",
            "type_path": "kitaru:code_snapshot",
        }
        row = service.create_deployment(
            flow.name,
            flow_ref=flow_ref,
            snapshot=snapshot,
            stack=stack_name,
            image=image or flow.image,
            defaults=defaults,
            parameters=_parameters(flow),
            tags=list(tags or []),
        )
        return Deployment.from_record(row)

    def list(self, flow: str | None = None) -> list[Deployment]:
        """Every deployment version (of ``flow``), by flow, newest first."""
        return [Deployment.from_record(row) for row in self._client.service.list_deployments(flow)]

    def get(self, flow: str, *, version: int | None = None, tag: str | None = None) -> Deployment:
        """One version: by number, by tag, or the newest. Raises :class:`KitaruNotFoundError` naming what exists."""
        return Deployment.from_record(self._client.service.get_deployment(flow, version=version, tag=tag))

    def tag(self, flow: str, version: int, tag: str) -> Deployment:
        """Point ``tag`` at ``version`` (moving it from the version it named)."""
        return Deployment.from_record(self._client.service.tag_deployment(flow, version, tag))

    def delete(self, flow: str, version: int) -> None:
        """Delete one version (executions that ran it keep their records)."""
        self._client.service.delete_deployment(flow, version)

    def invoke(
        self,
        flow: str,
        *,
        version: int | None = None,
        tag: str | None = None,
        inputs: dict[str, Any] | None = None,
        exec_id: str | None = None,
    ) -> FlowHandle:
        """Run a deployed version on its stack; returns once its driver has recorded the execution.

        The driver runs the snapshot's code, never the caller's. ``inputs`` are merged over the
        deployment's defaults and must bind to the flow's signature.

        Raises:
            KitaruNotFoundError: no such flow, version or tag (nothing is submitted).
            KitaruUsageError: the inputs do not bind to the flow's signature, or are not JSON values.
        """
        from kitaru.contracts.launch import ExecutionSpec, LaunchAction
        from kitaru.flow import connection, submit

        deployment = self.get(flow, version=version, tag=tag)
        arguments = {**deployment.defaults, **(inputs or {})}
        _bind(flow, deployment.parameters, arguments, partial=False)
        try:
            json.dumps(arguments, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise KitaruUsageError(f"the inputs of flow {flow!r} must be JSON values ({exc}).") from None
        settings = self._client._settings()
        spec = ExecutionSpec(
            action=LaunchAction.INVOKE,
            exec_id=exec_id or str(uuid.uuid4()),
            inputs=arguments,
            deployment={"flow": deployment.flow, "version": deployment.version},
            image=self._image(deployment),
            **connection(settings, deployment.stack),
        )
        return submit(spec, settings, detach=True)

    def _image(self, deployment: Deployment) -> str | None:
        """The image the version was deployed with, for a stack whose backend runs containers (others run on their own
        machines and record it only)."""
        from kitaru.backends import CONTAINER_BACKENDS

        if not deployment.image or deployment.stack in (None, "default"):
            return None
        try:
            backend = self._client.service.get_stack(deployment.stack)["backend"]
        except KitaruNotFoundError:
            return None
        return deployment.image if backend in CONTAINER_BACKENDS else None


def _parameters(flow: Flow) -> list[dict[str, Any]]:
    """The flow's signature as data: each parameter's name, kind and whether it has a default."""
    return [
        {"name": p.name, "kind": p.kind.name, "default": p.default is not p.empty}
        for p in inspect.signature(flow.func).parameters.values()
    ]


def _bind(flow: str, parameters: list[dict[str, Any]], arguments: dict[str, Any], *, partial: bool) -> None:
    signature = inspect.Signature(
        [
            inspect.Parameter(
                p["name"], getattr(inspect.Parameter, p["kind"]), default=None if p["default"] else inspect.Parameter.empty
            )
            for p in parameters
        ]
    )
    try:
        (signature.bind_partial if partial else signature.bind)(**arguments)
    except TypeError as exc:
        names = [p["name"] for p in parameters]
        raise KitaruUsageError(f"the inputs {sorted(arguments)} do not fit flow {flow!r}({', '.join(names)}): {exc}.") from None
