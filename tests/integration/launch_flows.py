"""Flows that the cluster-launcher and container-backend tests run on a two-node Ray cluster.

The checkpoint asks for the ``launch_worker`` resource that only the worker node offers, so a
completed run proves the worker joined the head's cluster.
"""

from __future__ import annotations

from kitaru import checkpoint, flow


@checkpoint(ray_options={"resources": {"launch_worker": 1}})
def where() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


@flow
def two_nodes(tag: str = "") -> dict:
    import ray

    return {"tag": tag, "driver_node": ray.get_runtime_context().get_node_id(), "checkpoint_node": where()}
