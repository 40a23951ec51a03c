"""The ``kuberay`` backend: one KubeRay ``RayJob`` (``ray.io/v1``) per driver, through the Kubernetes API.

The RayJob's cluster runs ``python -m kitaru.runtime ...`` on its head (``HTTPMode`` by default),
is torn down when the job finishes (``shutdownAfterJobFinishes``), and is bounded by
``activeDeadlineSeconds`` and ``preRunningDeadlineSeconds``; ``cluster_selector`` runs the job on a
shared RayCluster instead (``deploy/kuberay/``). Every body is checked against the CRD schema and
the operator's rules before it is sent, and sent with ``fieldValidation=Strict``. Cancelling
deletes the RayJob (the operator's finalizer stops the Ray job); a finished RayJob is deleted once
its ``ttlSecondsAfterFinished`` has passed, the next time its status is read. A RayJob whose head
cannot pull its image is reported failed with the pull error and deleted, rather than left to
wait for its deadline.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from kitaru.backends._container import (
    CODE_SNAPSHOT_OPTION,
    check_container_spec,
    container_environment,
    driver_command,
    job_name,
    resolve_image,
    status_lines,
    with_code,
)
from kitaru.backends._options import BackendOption
from kitaru.contracts.launch import BackendReport, BackendState, ExecutionSpec, LaunchAction, Submission
from kitaru.errors import KitaruBackendError, KitaruUsageError

__all__ = ["OPTIONS", "KubeRayBackend", "report_from_status"]

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"
_IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
_TIMEOUT = (5, 30)

OPTIONS = (
    BackendOption("namespace", "str", "Kubernetes namespace of the RayJobs.", default="default"),
    BackendOption(
        "api_server", "str", "API server URL without credentials (e.g. `kubectl proxy`); default: in-cluster or kubeconfig."
    ),
    BackendOption("kubeconfig", "str", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)."),
    BackendOption("context", "str", "kubeconfig context (default: the current one)."),
    BackendOption("image", "str", "Runtime image (default: REGISTRY/kitaru-runtime:VERSION from the stack's registry)."),
    BackendOption(
        "submission_mode",
        "str",
        "How the operator submits the driver.",
        default="HTTPMode",
        choices=("HTTPMode", "K8sJobMode", "SidecarMode"),
    ),
    BackendOption("cluster_selector", "str", "Run on this shared RayCluster (ray.io/cluster) instead of one per job."),
    BackendOption("ttl_seconds_after_finished", "int", "Seconds a finished RayJob (and its cluster) is kept.", default=300),
    BackendOption("active_deadline_seconds", "int", "Seconds a RayJob may run in all before it is failed.", default=86400),
    BackendOption("pre_running_deadline_seconds", "int", "Seconds the cluster may take to start the driver.", default=600),
    BackendOption("ray_version", "str", "Ray version of the image (token auth needs 2.52 or later).", default="2.60.0"),
    BackendOption("head_cpu", "str", "CPU of the head pod (runs the driver).", default="1"),
    BackendOption("head_memory", "str", "Memory of the head pod.", default="4Gi"),
    BackendOption(
        "worker_groups",
        "list",
        "Worker groups: [{name, replicas, cpu, memory, gpu, resources: {NAME: N}}].",
        default=[{"name": "workers", "replicas": 1, "cpu": "1", "memory": "4Gi"}],
    ),
    BackendOption("service_account", "str", "Service account of the Ray pods (for storage access)."),
    BackendOption(
        "api_key_secret", "str", "Secret whose key `api-key` holds the Kitaru API key of drivers.", default="kitaru-api-key"
    ),
    BackendOption("ray_auth_secret", "str", "Secret holding the Ray auth token (default: the operator creates one)."),
    BackendOption(
        "dashboard_url_template", "str", "Ray dashboard page, e.g. https://ray.example.com/{namespace}/{cluster}/#/jobs/{job_id}."
    ),
    CODE_SNAPSHOT_OPTION,
)


class KubeRayBackend:
    """Drivers as KubeRay RayJobs (see the module docstring)."""

    name: ClassVar[str] = "kuberay"

    def __init__(self, options: Mapping[str, Any] | None = None, *, container_registry: str | None = None, **more: Any) -> None:
        """``options`` (or keyword arguments) are the stack's backend options; ``container_registry`` its registry."""
        import kubernetes  # noqa: F401 - fail here, with the extra to install, when it is missing

        from kitaru.backends._options import validate_options

        self._options = validate_options(self.name, OPTIONS, {**(options or {}), **more})
        self._registry = container_registry
        self._api_client: Any = None

    # -- the protocol -------------------------------------------------------------------------------

    def submit(self, spec: ExecutionSpec) -> Submission:
        """Create the RayJob for ``spec`` (the same execution and action give the same RayJob)."""
        check_container_spec(self.name, spec)
        from kitaru.backends._kuberay.body import offered_resources, rayjob_body
        from kitaru.backends._kuberay.rules import MAX_RAYJOB_NAME
        from kitaru.backends._kuberay.validation import validate

        options = self._options
        name = job_name(spec.exec_id, spec.action.value, limit=MAX_RAYJOB_NAME)
        if not options["cluster_selector"]:
            self._check_resources(spec, offered_resources(options))
        image = resolve_image(self.name, spec, option=options["image"], registry=self._registry)
        spec = with_code(spec, options)
        body = rayjob_body(
            name=name,
            namespace=options["namespace"],
            exec_id=spec.exec_id,
            action=spec.action.value,
            command=driver_command(spec),
            image=image,
            environment=container_environment(spec),
            options=options,
        )
        validate(body)
        self._create(body, rerun=spec.action in (LaunchAction.RESUME, LaunchAction.RETRY))
        submission = Submission(self.name, spec.exec_id, name, details={"namespace": options["namespace"], "rayjob": name})
        return Submission(self.name, spec.exec_id, name, self.dashboard_url(submission), dict(submission.details))

    def status(self, submission: Submission) -> BackendReport:
        """The RayJob's state: ``jobDeploymentStatus``, ``jobStatus`` and the operator's ``reason``/``message``
        (``STOPPED`` once the RayJob is gone: cancelled, or deleted after its TTL; its driver no longer runs)."""
        job = self._get(self._name(submission))
        if job is None:
            return BackendReport(BackendState.STOPPED, f"RayJob {self._name(submission)} no longer exists")
        report = report_from_status(job.get("status") or {}, job.get("spec") or {})
        if report.state is BackendState.FAILED and report.message and report.message.startswith("image pull failed"):
            self._delete(self._name(submission))  # the operator would wait for preRunningDeadlineSeconds
        elif report.state.is_finished and _ttl_passed(job):
            self._delete(self._name(submission))
        return report

    def cancel(self, submission: Submission) -> None:
        """Delete the RayJob; the operator's finalizer stops the Ray job first (idempotent)."""
        self._delete(self._name(submission))

    def logs(self, submission: Submission, *, follow: bool = False) -> Iterator[str]:
        """The RayJob's status transitions (the driver's own output is in Kitaru's logs and the Ray dashboard)."""
        return status_lines(lambda: self.status(submission), f"RayJob {self._name(submission)}", follow=follow, interval=2.0)

    def dashboard_url(self, submission: Submission) -> str | None:
        """The stack's ``dashboard_url_template`` filled in (the CR's own ``dashboardURL`` is in-cluster only)."""
        template = self._options["dashboard_url_template"]
        if not template or not submission.submission_id:
            return None
        cluster = self._options["cluster_selector"] or submission.submission_id
        return template.format(
            namespace=self._options["namespace"], name=submission.submission_id, cluster=cluster, job_id=submission.submission_id
        )

    # -- Kubernetes ---------------------------------------------------------------------------------

    def _check_resources(self, spec: ExecutionSpec, offered: set[str]) -> None:
        from kitaru.backends._resources import requested_resources

        for resource, checkpoint in requested_resources(spec.target).items():
            if resource not in offered:
                raise KitaruUsageError(
                    f"checkpoint {checkpoint} asks for Ray resource {resource!r} that no worker group offers; "
                    'add it to --backend-option worker_groups=[{...,"resources": {...}}].'
                )

    def _create(self, body: dict[str, Any], *, rerun: bool) -> None:
        from kubernetes.client.exceptions import ApiException

        name = body["metadata"]["name"]
        try:
            self._call("create_namespaced_custom_object", body=body, field_validation="Strict")
            return
        except ApiException as exc:
            if exc.status != 409:
                raise self._error(exc, f"creating RayJob {name}") from None
        existing = self._get(name) or {}
        finished = report_from_status(existing.get("status") or {}, existing.get("spec") or {}).state.is_finished
        if rerun and finished:  # a new resume of the same execution: replace the finished RayJob
            self._delete(name)
            deadline = time.monotonic() + 60
            while self._get(name) is not None and time.monotonic() < deadline:
                time.sleep(0.2)
            self._call("create_namespaced_custom_object", body=body, field_validation="Strict")

    def _get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._call("get_namespaced_custom_object", name=name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._error(exc, f"reading RayJob {name}") from None

    def _delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._call("delete_namespaced_custom_object", name=name)
        except ApiException as exc:
            if exc.status != 404:
                raise self._error(exc, f"deleting RayJob {name}") from None

    def _call(self, method: str, **kwargs: Any) -> Any:
        from urllib3.exceptions import HTTPError

        api = self._custom_objects()
        try:
            return getattr(api, method)(GROUP, VERSION, self._options["namespace"], PLURAL, _request_timeout=_TIMEOUT, **kwargs)
        except HTTPError as exc:
            host = api.api_client.configuration.host
            raise KitaruBackendError(
                f"cannot reach the Kubernetes API server at {host} ({type(exc).__name__}); "
                "check the stack's api_server/kubeconfig."
            ) from None

    def _custom_objects(self) -> Any:
        from kubernetes import client

        if self._api_client is None:
            self._api_client = _api_client(self._options)
        return client.CustomObjectsApi(self._api_client)

    def _error(self, exc: Any, doing: str) -> KitaruBackendError:
        import json

        try:
            message = json.loads(exc.body).get("message") or exc.reason
        except (TypeError, ValueError):
            message = exc.reason
        advice = "; check the service account's Role (deploy/helm)" if exc.status in (401, 403) else ""
        return KitaruBackendError(f"the Kubernetes API refused {doing}: {exc.status} {message}{advice}.")

    def _name(self, submission: Submission) -> str:
        return str(submission.submission_id)


def _api_client(options: Mapping[str, Any]) -> Any:
    from kubernetes import client, config

    configuration = client.Configuration()
    if options["api_server"]:
        configuration.host = options["api_server"]
    else:
        try:
            if os.environ.get("KUBERNETES_SERVICE_HOST") and not options["kubeconfig"]:
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(
                    config_file=options["kubeconfig"], context=options["context"], client_configuration=configuration
                )
        except config.ConfigException as exc:
            raise KitaruUsageError(
                f"no Kubernetes credentials ({exc}); set --backend-option kubeconfig=PATH, context=NAME or api_server=URL."
            ) from None
    configuration.retries = 0  # an unreachable API server fails the command at once, with its address
    return client.ApiClient(configuration)


def report_from_status(status: Mapping[str, Any], spec: Mapping[str, Any]) -> BackendReport:
    """The infrastructure's view of a RayJob from its ``status`` (``spec`` for the deadlines in messages)."""
    deployment = status.get("jobDeploymentStatus") or ""
    job = status.get("jobStatus") or ""
    reason = status.get("reason") or ""
    message = status.get("message") or ""
    if deployment == "Initializing":
        pulled = _image_pull_failure(status)
        return (
            BackendReport(BackendState.FAILED, f"image pull failed: {pulled}") if pulled else BackendReport(BackendState.PENDING)
        )
    if deployment == "Running":
        return BackendReport(BackendState.RUNNING)
    if deployment == "Complete":
        if job == "SUCCEEDED":
            return BackendReport(BackendState.SUCCEEDED)
        if job == "STOPPED":
            return BackendReport(BackendState.STOPPED, message or "the Ray job was stopped")
        return BackendReport(BackendState.FAILED, f"the driver failed: {message or job}")
    if deployment in ("Failed", "ValidationFailed"):
        return BackendReport(BackendState.FAILED, _failure(reason or deployment, message, spec))
    return BackendReport(BackendState.PENDING, deployment or None)


def _failure(reason: str, message: str, spec: Mapping[str, Any]) -> str:
    if reason == "DeadlineExceeded":
        return f"the RayJob ran past its activeDeadlineSeconds ({spec.get('activeDeadlineSeconds')} s): {message}"
    if reason == "PreRunningDeadlineExceeded":
        deadline = spec.get("preRunningDeadlineSeconds")
        return f"the cluster did not start the driver within preRunningDeadlineSeconds ({deadline} s): {message}"
    if reason == "SubmissionFailed":
        return f"the operator could not submit the driver: {message}"
    if reason == "ValidationFailed":
        return f"the operator rejected the RayJob: {message}"
    return f"{reason}: {message}" if message else reason


def _image_pull_failure(status: Mapping[str, Any]) -> str | None:
    # KubeRay copies the head container's waiting reason (ErrImagePull, ImagePullBackOff...) into the
    # HeadPodReady condition of the cluster status the RayJob embeds (utils.FindHeadPodReadyCondition).
    for condition in (status.get("rayClusterStatus") or {}).get("conditions") or []:
        if condition.get("status") == "False" and condition.get("reason") in _IMAGE_PULL_REASONS:
            return f"{condition.get('reason')}: {condition.get('message', '')}".strip()
    return None


def _ttl_passed(job: Mapping[str, Any]) -> bool:
    end = (job.get("status") or {}).get("endTime")
    if not end:
        return False
    ended = dt.datetime.fromisoformat(str(end).replace("Z", "+00:00"))
    ttl = int((job.get("spec") or {}).get("ttlSecondsAfterFinished") or 0)
    return dt.datetime.now(dt.UTC) >= ended + dt.timedelta(seconds=ttl)
