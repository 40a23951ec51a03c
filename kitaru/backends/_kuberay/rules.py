"""The KubeRay operator's own checks of RayJob and RayCluster objects, with the operator's messages.

The CRD schema cannot express these; the operator (ray-operator ``controllers/ray/utils/validation.go``,
v1.7) rejects such an object at reconcile time, which a client would only see later as a
``ValidationFailed`` status. Kitaru checks them before sending. Each function returns the first
violation, as the operator does, or ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = ["MAX_RAYCLUSTER_NAME", "MAX_RAYJOB_NAME", "dns1035_errors", "raycluster_error", "rayjob_error"]

MAX_RAYCLUSTER_NAME = 53
MAX_RAYJOB_NAME = MAX_RAYCLUSTER_NAME - 6  # the operator appends a suffix to name the RayJob's cluster
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1035_MESSAGE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, "
    "and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
    "'[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_CLUSTER_SELECTOR_KEY = "ray.io/cluster"
_RESOURCE_PARAMS = ("num-cpus", "num-gpus", "memory", "resources")


def dns1035_errors(name: str) -> list[str]:
    """Kubernetes' ``IsDNS1035Label`` messages for ``name`` (empty when valid)."""
    errors = []
    if len(name) > 63:
        errors.append("must be no more than 63 characters")
    if not _DNS1035.fullmatch(name):
        errors.append(_DNS1035_MESSAGE)
    return errors


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def rayjob_error(body: Mapping[str, Any]) -> str | None:
    """The operator's first objection to a RayJob (metadata, then spec), or ``None``."""
    name = str(body.get("metadata", {}).get("name", ""))
    if len(name) > MAX_RAYJOB_NAME:
        return f"The RayJob metadata is invalid: RayJob name should be no more than {MAX_RAYJOB_NAME} characters"
    if errors := dns1035_errors(name):
        return f"The RayJob metadata is invalid: RayJob name should be a valid DNS1035 label: {_go_list(errors)}"
    return _rayjob_spec_error(body.get("spec") or {}, body.get("metadata", {}).get("annotations") or {})


def _rayjob_spec_error(spec: Mapping[str, Any], annotations: Mapping[str, str]) -> str | None:
    invalid = "The RayJob spec is invalid: "
    shutdown = bool(spec.get("shutdownAfterJobFinishes", False))
    suspend = bool(spec.get("suspend", False))
    ttl = int(spec.get("ttlSecondsAfterFinished", 0))
    mode = spec.get("submissionMode", "K8sJobMode")
    backoff = spec.get("backoffLimit")
    if suspend and not shutdown:
        return invalid + "a RayJob with shutdownAfterJobFinishes set to false is not allowed to be suspended"
    if ttl < 0:
        return invalid + "TTLSecondsAfterFinished must be a non-negative integer"
    if not shutdown and ttl > 0:
        return invalid + "a RayJob with shutdownAfterJobFinishes set to false cannot have TTLSecondsAfterFinished"
    selector = spec.get("clusterSelector") or {}
    cluster = spec.get("rayClusterSpec")
    if suspend and selector:
        return invalid + "the ClusterSelector mode doesn't support the suspend operation"
    if cluster is None and not selector:
        return invalid + "one of RayClusterSpec or ClusterSelector must be set"
    if selector:
        if not selector.get(_CLUSTER_SELECTOR_KEY):
            return "cluster name in ClusterSelector should not be empty"
        if mode == "SidecarMode":
            return "ClusterSelector is not supported in SidecarMode"
        if backoff is not None and backoff > 0:
            return invalid + "BackoffLimit is incompatible with ClusterSelector mode"
    if mode == "InteractiveMode" and backoff is not None and backoff > 0:
        return invalid + "BackoffLimit is incompatible with InteractiveMode"
    if mode == "SidecarMode":
        if spec.get("submitterPodTemplate") is not None:
            return "Currently, SidecarMode doesn't support SubmitterPodTemplate"
        if spec.get("submitterConfig") is not None:
            return "Currently, SidecarMode doesn't support SubmitterConfig"
        restart = ((cluster or {}).get("headGroupSpec", {}).get("template", {}).get("spec", {})).get("restartPolicy", "")
        if restart not in ("", "Never"):
            return "restartPolicy for head Pod should be Never or unset when using SidecarMode"
    if cluster is not None:
        if (cluster.get("authOptions") or {}).get("enableK8sTokenAuth"):
            return invalid + "K8s token auth mode is currently not supported for RayJob"
        if error := raycluster_spec_error(cluster, annotations):
            return invalid + error
    try:
        yaml.safe_load(spec.get("runtimeEnvYAML") or "")
    except yaml.YAMLError as exc:
        return f"failed to unmarshal RuntimeEnvYAML: {exc}"
    for field in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        if spec.get(field) is not None and spec[field] <= 0:
            return invalid + f"{field} must be a positive integer"
    if backoff is not None and backoff < 0:
        return invalid + "backoffLimit must be a positive integer"
    return None


def raycluster_error(body: Mapping[str, Any]) -> str | None:
    """The operator's first objection to a RayCluster (metadata, then spec), or ``None``."""
    name = str(body.get("metadata", {}).get("name", ""))
    if len(name) > MAX_RAYCLUSTER_NAME:
        return f"RayCluster name should be no more than {MAX_RAYCLUSTER_NAME} characters"
    if errors := dns1035_errors(name):
        return f"RayCluster name should be a valid DNS1035 label: {_go_list(errors)}"
    return raycluster_spec_error(body.get("spec") or {}, body.get("metadata", {}).get("annotations") or {})


def raycluster_spec_error(spec: Mapping[str, Any], annotations: Mapping[str, str]) -> str | None:
    """The operator's first objection to a RayCluster spec (the subset Kitaru's objects can break), or ``None``."""
    head = spec.get("headGroupSpec") or {}
    if not head.get("template", {}).get("spec", {}).get("containers"):
        return "headGroupSpec should have at least one container"
    if error := _group_error("Head", head):
        return error
    autoscaling = bool(spec.get("enableInTreeAutoscaling"))
    for group in spec.get("workerGroupSpecs") or []:
        name = group.get("groupName")
        if not group.get("template", {}).get("spec", {}).get("containers"):
            return "workerGroupSpec should have at least one container"
        low, high = group.get("minReplicas"), group.get("maxReplicas")
        if not autoscaling and (low is None or high is None):
            return f"worker group {name} must set both minReplicas and maxReplicas when autoscaling is disabled"
        if low is not None and low < 0:
            return f"worker group {name} has negative minReplicas {low}"
        if high is not None and high < 0:
            return f"worker group {name} has negative maxReplicas {high}"
        if low is not None and high is not None and low > high:
            return f"worker group {name} has minReplicas {low} greater than maxReplicas {high}"
        if error := _group_error(name, group):
            return error
    auth = spec.get("authOptions") or {}
    if auth.get("mode") == "token":
        version = str(spec.get("rayVersion") or "")
        if not version:
            return "authOptions.mode is 'token' but RayVersion was not specified. Ray version 2.52.0 or later is required"
        parsed = _version(version)
        if parsed is None:
            return f"authOptions.mode is 'token' but RayVersion format is invalid: {version}"
        if parsed < (2, 52, 0):
            return f"authOptions.mode is 'token' but minimum Ray version is 2.52.0, got {version}"
    return None


def _group_error(name: str, group: Mapping[str, Any]) -> str | None:
    params = group.get("rayStartParams") or {}
    if any(params.get(key) for key in _RESOURCE_PARAMS) and group.get("resources"):
        return f"resource fields should not be set in both rayStartParams and Resources for {name} group; please use only one"
    if "labels" in params:
        return f"rayStartParams['labels'] is not supported for {name} group; please use the top-level Labels field instead"
    return None


def _version(text: str) -> tuple[int, ...] | None:
    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    return None if match is None else tuple(int(part or 0) for part in match.groups())
