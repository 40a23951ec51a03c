"""A node's role in a container cluster, read from the platform's own description of it.

Vertex AI sets ``CLUSTER_SPEC`` on every replica of a distributed ``CustomJob``::

    {"cluster": {"workerpool0": ["host:port"], "workerpool1": ["host:port", ...]},
     "task": {"type": "workerpool0", "index": 0}, "environment": "cloud"}

SageMaker writes ``/opt/ml/input/config/resourceconfig.json`` on every host of a training job::

    {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"], ...}

The Ray head is the first replica of worker pool 0 (Vertex's primary replica) or the first host in
sorted order (SageMaker); every other node joins it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path

from kitaru.errors import KitaruUsageError

__all__ = ["DEFAULT_RAY_PORT", "SAGEMAKER_RESOURCECONFIG", "NodeRole", "detect_role", "from_cluster_spec", "from_resourceconfig"]

SAGEMAKER_RESOURCECONFIG = "/opt/ml/input/config/resourceconfig.json"
DEFAULT_RAY_PORT = 6379


@dataclasses.dataclass(frozen=True)
class NodeRole:
    """What this node is in the cluster.

    Attributes:
        platform: ``vertex`` or ``sagemaker``.
        name: This node's name in the platform's description (``workerpool1-0``, ``algo-2``).
        is_head: Whether this node runs the Ray head and the driver.
        head_address: ``host:port`` of the Ray head's GCS.
        node_count: How many nodes the cluster has, the head included.
    """

    platform: str
    name: str
    is_head: bool
    head_address: str
    node_count: int

    @property
    def head_port(self) -> int:
        return int(self.head_address.rpartition(":")[2])


def from_cluster_spec(text: str, *, head_address: str | None = None) -> NodeRole:
    """The role described by Vertex's ``CLUSTER_SPEC`` (the chief's own port becomes the Ray port).

    Raises:
        KitaruUsageError: the text is not a cluster spec with a worker pool 0.
    """
    try:
        spec = json.loads(text)
        pools: Mapping[str, list[str]] = spec["cluster"]
        task = spec["task"]
        chief = pools["workerpool0"][0]
        kind, index = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise KitaruUsageError(
            f"CLUSTER_SPEC is not a Vertex cluster spec with a workerpool0 ({exc!r}); check the job's worker pools."
        ) from None
    if ":" not in chief:
        chief = f"{chief}:{DEFAULT_RAY_PORT}"
    return NodeRole(
        platform="vertex",
        name=f"{kind}-{index}",
        is_head=(kind, index) == ("workerpool0", 0),
        head_address=head_address or chief,
        node_count=sum(len(replicas) for replicas in pools.values()),
    )


def from_resourceconfig(data: Mapping[str, object], *, head_address: str | None = None, port: int = DEFAULT_RAY_PORT) -> NodeRole:
    """The role described by SageMaker's ``resourceconfig.json`` (``port``: the Ray port on the head host).

    Raises:
        KitaruUsageError: the data lacks ``current_host`` or ``hosts``.
    """
    try:
        current = str(data["current_host"])
        hosts = sorted(str(host) for host in data["hosts"])  # type: ignore[union-attr]
        first = hosts[0]
    except (KeyError, IndexError, TypeError) as exc:
        raise KitaruUsageError(
            f"resourceconfig.json has no current_host and hosts ({exc!r}); is this a SageMaker training host?"
        ) from None
    return NodeRole(
        platform="sagemaker",
        name=current,
        is_head=current == first,
        head_address=head_address or f"{first}:{port}",
        node_count=len(hosts),
    )


def detect_role(environ: Mapping[str, str] | None = None, *, resourceconfig: str | os.PathLike[str] | None = None) -> NodeRole:
    """This node's role: from ``CLUSTER_SPEC`` when set, else from SageMaker's ``resourceconfig.json``.

    ``KITARU_RAY_HEAD_ADDRESS`` (``host:port``) overrides the head's address where the platform's host
    names do not resolve; ``KITARU_RAY_PORT`` sets the Ray port on SageMaker (default 6379).

    Raises:
        KitaruUsageError: neither description is present or one is malformed.
    """
    env = os.environ if environ is None else environ
    head = env.get("KITARU_RAY_HEAD_ADDRESS") or None
    if env.get("CLUSTER_SPEC"):
        return from_cluster_spec(env["CLUSTER_SPEC"], head_address=head)
    path = Path(resourceconfig or env.get("KITARU_RESOURCECONFIG") or SAGEMAKER_RESOURCECONFIG)
    if not path.is_file():
        raise KitaruUsageError(
            f"no cluster description: CLUSTER_SPEC is unset and {path} does not exist; "
            "run this on a Vertex AI or SageMaker node, or pass --resourceconfig PATH."
        )
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise KitaruUsageError(f"{path} is not JSON ({exc}); it should be SageMaker's resourceconfig.json.") from None
    port = int(env.get("KITARU_RAY_PORT") or DEFAULT_RAY_PORT)
    return from_resourceconfig(data, head_address=head, port=port)
