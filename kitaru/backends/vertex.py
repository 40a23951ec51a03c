"""The ``vertex`` backend: a Vertex AI ``CustomJob`` whose worker pools form a Ray cluster.

Worker pool 0 is the Ray head (one replica, it runs the driver), worker pool 1 the workers; every
replica runs the cluster launcher ``python -m kitaru.runtime.launch``, which reads Vertex's
``CLUSTER_SPEC``. Calls go through the ``google-cloud-aiplatform`` GAPIC client
(``aiplatform_v1.JobServiceClient``, REST transport). Job ids are assigned by Vertex, so a
resubmission of the same execution first looks its job up by label. ("Ray on Vertex AI", the
managed persistent-resource clusters, supports Ray 2.47 at most; a CustomJob runs any Ray.)
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from kitaru.backends._container import (
    CLUSTER_LAUNCHER,
    CODE_SNAPSHOT_OPTION,
    check_container_spec,
    cluster_auth_environment,
    container_environment,
    job_name,
    resolve_image,
    status_lines,
    with_code,
)
from kitaru.backends._options import BackendOption, validate_options
from kitaru.contracts.launch import BackendReport, BackendState, ExecutionSpec, LaunchAction, Submission, driver_arguments
from kitaru.errors import KitaruBackendError, KitaruUsageError

__all__ = ["OPTIONS", "VertexBackend", "report_from_job"]

_LABEL_KEY = "kitaru-job"
_SECRET_VERSION = re.compile(r"projects/[\w.:-]+/secrets/[\w-]+/versions/(\d+|latest)")

OPTIONS = (
    BackendOption("project", "str", "Google Cloud project of the jobs.", required=True),
    BackendOption("region", "str", "Vertex AI region, e.g. us-central1.", required=True),
    BackendOption("api_endpoint", "str", "API endpoint (default: REGION-aiplatform.googleapis.com)."),
    BackendOption("anonymous", "bool", "Send no credentials (only for a local endpoint).", default=False),
    BackendOption("image", "str", "Runtime image (default: REGISTRY/kitaru-runtime:VERSION from the stack's registry)."),
    BackendOption("machine_type", "str", "Machine type of every replica.", default="n1-standard-4"),
    BackendOption("worker_count", "int", "Ray worker replicas beside the head (worker pool 1).", default=1),
    BackendOption("accelerator_type", "str", "Accelerator of the workers, e.g. NVIDIA_TESLA_T4."),
    BackendOption("accelerator_count", "int", "Accelerators per worker.", default=0),
    BackendOption(
        "worker_ray_resources", "dict", 'Custom Ray resources each worker node offers, e.g. {"gpu_node": 1}.', default={}
    ),
    BackendOption("service_account", "str", "Service account the replicas run as (storage access)."),
    BackendOption("network", "str", "VPC network the replicas join (projects/N/global/networks/NAME)."),
    BackendOption(
        "api_key_secret",
        "str",
        "Secret Manager secret version holding the Kitaru API key (projects/P/secrets/S/versions/V), read by the job "
        "when it starts (its service account needs roles/secretmanager.secretAccessor); without it the key is in the "
        "job's environment in plain text.",
    ),
    BackendOption("timeout_seconds", "int", "Seconds before Vertex stops the job.", default=86400),
    CODE_SNAPSHOT_OPTION,
)

_STATES = {
    "JOB_STATE_QUEUED": BackendState.PENDING,
    "JOB_STATE_PENDING": BackendState.PENDING,
    "JOB_STATE_RUNNING": BackendState.RUNNING,
    "JOB_STATE_UPDATING": BackendState.RUNNING,
    "JOB_STATE_PAUSED": BackendState.PENDING,
    "JOB_STATE_SUCCEEDED": BackendState.SUCCEEDED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": BackendState.FAILED,
    "JOB_STATE_FAILED": BackendState.FAILED,
    "JOB_STATE_EXPIRED": BackendState.FAILED,
    "JOB_STATE_CANCELLING": BackendState.STOPPED,
    "JOB_STATE_CANCELLED": BackendState.STOPPED,
}


class VertexBackend:
    """Drivers as Vertex AI CustomJobs (see the module docstring)."""

    name: ClassVar[str] = "vertex"

    def __init__(self, options: Mapping[str, Any] | None = None, *, container_registry: str | None = None, **more: Any) -> None:
        """``options`` (or keyword arguments) are the stack's backend options; ``container_registry`` its registry."""
        from google.cloud import aiplatform_v1  # noqa: F401 - fail here, with the extra to install, when it is missing

        self._options = validate_options(self.name, OPTIONS, {**(options or {}), **more})
        secret = self._options["api_key_secret"]
        if secret is not None and not _SECRET_VERSION.fullmatch(secret):
            raise KitaruUsageError(
                f"vertex option api_key_secret={secret!r} is not a secret version: projects/P/secrets/S/versions/V "
                "(V a number or latest)."
            )
        self._registry = container_registry
        self._client: Any = None

    @property
    def _parent(self) -> str:
        return f"projects/{self._options['project']}/locations/{self._options['region']}"

    def submit(self, spec: ExecutionSpec) -> Submission:
        """Create the CustomJob for ``spec``, or return the one already created for it (found by label)."""
        check_container_spec(self.name, spec)
        self._check_resources(spec)
        key = job_name(spec.exec_id, spec.action.value, limit=63)
        existing = self._find(key)
        rerun = spec.action in (LaunchAction.RESUME, LaunchAction.RETRY)
        if existing is not None and not (rerun and report_from_job(existing).state.is_finished):
            return self._submission(spec.exec_id, existing.name)
        image = resolve_image(self.name, spec, option=self._options["image"], registry=self._registry)
        job = self._custom_job(with_code(spec, self._options), key, image)
        created = self._call("create_custom_job", parent=self._parent, custom_job=job)
        return self._submission(spec.exec_id, created.name)

    def status(self, submission: Submission) -> BackendReport:
        """The CustomJob's ``state`` (and its error, when it failed); ``STOPPED`` for a job that no longer exists."""
        from google.api_core import exceptions

        try:
            job = self._call("get_custom_job", name=submission.submission_id)
        except exceptions.NotFound:
            return BackendReport(BackendState.STOPPED, f"CustomJob {submission.submission_id} no longer exists")
        return report_from_job(job)

    def cancel(self, submission: Submission) -> None:
        """Cancel the CustomJob (idempotent: a finished or missing job is left as it is)."""
        from google.api_core import exceptions

        try:
            self._call("cancel_custom_job", name=submission.submission_id)
        except (exceptions.NotFound, exceptions.FailedPrecondition):
            pass
        except exceptions.BadRequest:  # Vertex answers 400 FAILED_PRECONDITION for a job that already ended
            if not self.status(submission).state.is_finished:
                raise

    def logs(self, submission: Submission, *, follow: bool = False) -> Iterator[str]:
        """The job's state transitions (the replicas' output is in Cloud Logging, linked from the dashboard page)."""
        return status_lines(lambda: self.status(submission), f"CustomJob {submission.submission_id}", follow=follow, interval=5.0)

    def dashboard_url(self, submission: Submission) -> str | None:
        """The job's page in the Google Cloud console."""
        if not submission.submission_id:
            return None
        job_id = submission.submission_id.rsplit("/", 1)[-1]
        return f"https://console.cloud.google.com/vertex-ai/locations/{self._options['region']}/training/{job_id}?project={self._options['project']}"

    # -- the job ------------------------------------------------------------------------------------

    def _custom_job(self, spec: ExecutionSpec, key: str, image: str) -> Any:
        from google.cloud import aiplatform_v1 as v1
        from google.protobuf import duration_pb2

        options = self._options
        env = {**container_environment(spec), **cluster_auth_environment()}
        if options["api_key_secret"]:
            from kitaru.runtime.launch import secret_reference

            env.update(secret_reference("gcp-secretmanager", options["api_key_secret"]))
        elif spec.api_key:
            env["KITARU_API_KEY"] = spec.api_key

        def pool(count: int, args: list[str], extra_env: Mapping[str, str], accelerators: bool) -> Any:
            machine = v1.MachineSpec(machine_type=options["machine_type"])
            if accelerators and options["accelerator_type"] and options["accelerator_count"]:
                machine.accelerator_type = options["accelerator_type"]
                machine.accelerator_count = options["accelerator_count"]
            variables = [v1.EnvVar(name=k, value=v) for k, v in sorted({**env, **extra_env}.items())]
            container = v1.ContainerSpec(image_uri=image, command=CLUSTER_LAUNCHER, args=args, env=variables)
            return v1.WorkerPoolSpec(machine_spec=machine, replica_count=count, container_spec=container)

        worker_env = {}
        if options["worker_ray_resources"]:
            worker_env["KITARU_RAY_START_ARGS"] = "--resources " + shlex.quote(json.dumps(options["worker_ray_resources"]))
        pools = [pool(1, ["--", *driver_arguments(spec)], {}, False)]
        if options["worker_count"] > 0:
            pools.append(pool(options["worker_count"], [], worker_env, True))
        job_spec = v1.CustomJobSpec(
            worker_pool_specs=pools, scheduling=v1.Scheduling(timeout=duration_pb2.Duration(seconds=options["timeout_seconds"]))
        )
        if options["service_account"]:
            job_spec.service_account = options["service_account"]
        if options["network"]:
            job_spec.network = options["network"]
        labels = {_LABEL_KEY: key, "kitaru-action": spec.action.value}
        return v1.CustomJob(display_name=key, job_spec=job_spec, labels=labels)

    def _find(self, key: str) -> Any:
        pager = self._call("list_custom_jobs", request={"parent": self._parent, "filter": f'labels.{_LABEL_KEY}="{key}"'})
        jobs = sorted(pager, key=lambda job: job.create_time, reverse=True)
        return jobs[0] if jobs else None

    def _check_resources(self, spec: ExecutionSpec) -> None:
        from kitaru.backends._resources import requested_resources

        offered = set(self._options["worker_ray_resources"])
        if self._options["accelerator_type"] and self._options["accelerator_count"]:
            offered.add("GPU")
        for resource, checkpoint in requested_resources(spec.target).items():
            if resource not in offered:
                raise KitaruUsageError(
                    f"checkpoint {checkpoint} asks for Ray resource {resource!r} that no Vertex worker offers; "
                    "set --backend-option worker_ray_resources={...} or an accelerator."
                )

    def _submission(self, exec_id: str, name: str) -> Submission:
        details = {"project": self._options["project"], "region": self._options["region"]}
        submission = Submission(self.name, exec_id, name, details=details)
        return Submission(self.name, exec_id, name, self.dashboard_url(submission), details)

    # -- the client ---------------------------------------------------------------------------------

    def _call(self, method: str, **kwargs: Any) -> Any:
        from google.api_core import exceptions

        client = self._job_client()
        try:
            return getattr(client, method)(**kwargs, timeout=30)
        except (exceptions.NotFound, exceptions.FailedPrecondition, exceptions.BadRequest):
            raise
        except exceptions.GoogleAPICallError as exc:
            raise KitaruBackendError(f"Vertex AI refused {method}: {exc.code} {exc.message}") from None
        except exceptions.RetryError as exc:
            raise KitaruBackendError(
                f"cannot reach Vertex AI at {self._endpoint()} ({exc.cause}); check the stack's region/api_endpoint."
            ) from None
        except Exception as exc:
            if type(exc).__module__.startswith(("requests", "urllib3")):
                raise KitaruBackendError(
                    f"cannot reach Vertex AI at {self._endpoint()} ({type(exc).__name__}); check the stack's region/api_endpoint."
                ) from None
            raise

    def _endpoint(self) -> str:
        return self._options["api_endpoint"] or f"{self._options['region']}-aiplatform.googleapis.com"

    def _job_client(self) -> Any:
        if self._client is None:
            from google.api_core.client_options import ClientOptions
            from google.cloud import aiplatform_v1

            self._client = aiplatform_v1.JobServiceClient(
                client_options=ClientOptions(api_endpoint=self._endpoint()), transport="rest", credentials=self._credentials()
            )
        return self._client

    def _credentials(self) -> Any:
        if self._options["anonymous"]:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except DefaultCredentialsError:
            raise KitaruUsageError(
                "no Google Cloud credentials: run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS."
            ) from None
        return credentials


def report_from_job(job: Any) -> BackendReport:
    """The infrastructure's view of a CustomJob (its ``state``, and ``error.message`` when it failed)."""
    state_name = job.state.name if hasattr(job.state, "name") else str(job.state)
    state = _STATES.get(state_name, BackendState.UNKNOWN)
    message = None
    if state_name == "JOB_STATE_EXPIRED":
        message = "the job ran past its timeout_seconds"
    elif job.error and job.error.message:
        message = job.error.message
    return BackendReport(state, message)
