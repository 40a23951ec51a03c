"""The RayJob Kitaru submits for one execution (``ray.io/v1``), built from the stack's options.

The Ray cluster's head runs the driver (``HTTPMode``: the operator submits the entrypoint to the
head's Jobs API); its container carries the driver's ``KITARU_*`` environment, with the API key
read from a Kubernetes secret so it never shows in the Ray dashboard.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["LABEL_ACTION", "LABEL_EXEC_ID", "offered_resources", "rayjob_body"]

LABEL_EXEC_ID = "kitaru.ai/exec-id"
LABEL_ACTION = "kitaru.ai/action"
_MANAGED_BY = {"app.kubernetes.io/managed-by": "kitaru"}


def rayjob_body(
    *,
    name: str,
    namespace: str,
    exec_id: str,
    action: str,
    command: Sequence[str],
    image: str,
    environment: Mapping[str, str],
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """The RayJob object (validate it with :func:`kitaru.backends._kuberay.validation.validate` before sending)."""
    spec: dict[str, Any] = {
        "entrypoint": shlex.join(command),
        "jobId": name,
        "submissionMode": options["submission_mode"],
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": options["ttl_seconds_after_finished"],
        "activeDeadlineSeconds": options["active_deadline_seconds"],
        "preRunningDeadlineSeconds": options["pre_running_deadline_seconds"],
    }
    if options["cluster_selector"]:
        spec["clusterSelector"] = {"ray.io/cluster": options["cluster_selector"]}
    else:
        spec["backoffLimit"] = 0  # a failed driver is retried by Kitaru (retry/resume), not by a second cluster
        spec["rayClusterSpec"] = _cluster_spec(image, environment, options)
    labels = {**_MANAGED_BY, LABEL_EXEC_ID: _label_value(exec_id), LABEL_ACTION: action}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": {"kitaru.ai/exec-id": exec_id}},
        "spec": spec,
    }


def offered_resources(options: Mapping[str, Any]) -> set[str]:
    """The Ray resources the RayJob's cluster offers beyond CPU and memory (``GPU`` and custom ones)."""
    offered: set[str] = set()
    for group in options["worker_groups"]:
        offered.update(group.get("resources") or {})
        if int(group.get("gpu") or 0) > 0:
            offered.add("GPU")
    return offered


def _cluster_spec(image: str, environment: Mapping[str, str], options: Mapping[str, Any]) -> dict[str, Any]:
    env = [{"name": key, "value": value} for key, value in sorted(environment.items())]
    if options["api_key_secret"]:
        env.append(
            {
                "name": "KITARU_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": options["api_key_secret"], "key": "api-key", "optional": True}},
            }
        )
    auth: dict[str, Any] = {"mode": "token"}
    if options["ray_auth_secret"]:
        auth["secretName"] = options["ray_auth_secret"]
    head = _pod(image, "ray-head", options["head_cpu"], options["head_memory"], 0, env, options)
    return {
        "rayVersion": options["ray_version"],
        "authOptions": auth,
        "headGroupSpec": {"rayStartParams": {"dashboard-host": "0.0.0.0"}, "template": head},
        "workerGroupSpecs": [_worker_group(group, image, env, options) for group in options["worker_groups"]],
    }


def _worker_group(group: Mapping[str, Any], image: str, env: list[dict[str, Any]], options: Mapping[str, Any]) -> dict[str, Any]:
    replicas = int(group.get("replicas", 1))
    spec: dict[str, Any] = {
        "groupName": str(group.get("name", "workers")),
        "replicas": replicas,
        "minReplicas": replicas,
        "maxReplicas": replicas,
        "rayStartParams": {},
        "template": _pod(
            image,
            "ray-worker",
            str(group.get("cpu", "1")),
            str(group.get("memory", "4Gi")),
            int(group.get("gpu") or 0),
            env,
            options,
        ),
    }
    if group.get("resources"):
        spec["resources"] = {str(key): str(value) for key, value in group["resources"].items()}
    return spec


def _pod(
    image: str, name: str, cpu: str, memory: str, gpu: int, env: list[dict[str, Any]], options: Mapping[str, Any]
) -> dict[str, Any]:
    limits: dict[str, str] = {"cpu": cpu, "memory": memory}
    if gpu:
        limits["nvidia.com/gpu"] = str(gpu)
    container = {"name": name, "image": image, "env": env, "resources": {"requests": dict(limits), "limits": limits}}
    pod: dict[str, Any] = {"containers": [container]}
    if options["service_account"]:
        pod["serviceAccountName"] = options["service_account"]
    return {"metadata": {"labels": dict(_MANAGED_BY)}, "spec": pod}


def _label_value(value: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in value)[:63]
    return cleaned.strip("-_.") or "x"
