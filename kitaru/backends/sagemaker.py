"""The ``sagemaker`` backend: a SageMaker training job whose instances form a Ray cluster (boto3).

Every instance runs the cluster launcher ``python -m kitaru.runtime.launch`` as the container's
entrypoint; it reads SageMaker's ``resourceconfig.json``, the first host becomes the Ray head and
runs the driver (its arguments are the ``ContainerArguments``), the others join it. Training job
names are unique for ever in an account and region, so a new resume or retry of an execution
whose job already ended gets the next free name (``...-2``, ``...-3``).
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

__all__ = ["OPTIONS", "SageMakerBackend", "report_from_description"]

_MAX_ARGUMENT, _MAX_ENV_VALUE = 256, 512
_SECRET_ARN = re.compile(r"arn:aws[\w-]*:secretsmanager:(?P<region>[\w-]+):\d{12}:secret:[\w/+=.@-]+")
_SECRET_NAME = re.compile(r"[\w/+=.@-]{1,512}")

OPTIONS = (
    BackendOption("region", "str", "AWS region of the training jobs.", required=True),
    BackendOption("role_arn", "str", "IAM role the training job assumes (storage access).", required=True),
    BackendOption("output_path", "str", "s3:// path for the job's output (default: the stack's s3:// storage)."),
    BackendOption("endpoint_url", "str", "SageMaker API endpoint (default: the region's)."),
    BackendOption("image", "str", "Runtime image in ECR (default: REGISTRY/kitaru-runtime:VERSION from the stack's registry)."),
    BackendOption("instance_type", "str", "Instance type of every host.", default="ml.m5.xlarge"),
    BackendOption("instance_count", "int", "Hosts, the Ray head included.", default=2),
    BackendOption("volume_size_gb", "int", "EBS volume per host, in GB.", default=30),
    BackendOption("max_runtime_seconds", "int", "Seconds before SageMaker stops the job.", default=86400),
    BackendOption(
        "worker_ray_resources", "dict", 'Custom Ray resources each non-head host offers, e.g. {"gpu_node": 1}.', default={}
    ),
    BackendOption(
        "api_key_secret",
        "str",
        "AWS Secrets Manager secret (ARN or name) holding the Kitaru API key, read by the job when it starts (its role "
        "needs secretsmanager:GetSecretValue); without it the key is in the job's environment in plain text.",
    ),
    BackendOption("subnets", "list", "VPC subnets of the hosts.", default=[]),
    BackendOption("security_group_ids", "list", "VPC security groups of the hosts.", default=[]),
    CODE_SNAPSHOT_OPTION,
)

_STATES = {"InProgress": BackendState.RUNNING, "Completed": BackendState.SUCCEEDED, "Failed": BackendState.FAILED,
           "Stopping": BackendState.STOPPED, "Stopped": BackendState.STOPPED}  # fmt: skip
_STARTING = {"Starting", "Pending", "LaunchingMLInstances", "PreparingTrainingStack", "Downloading", "DownloadingTrainingImage"}


class SageMakerBackend:
    """Drivers as SageMaker training jobs (see the module docstring)."""

    name: ClassVar[str] = "sagemaker"

    def __init__(self, options: Mapping[str, Any] | None = None, *, container_registry: str | None = None, **more: Any) -> None:
        """``options`` (or keyword arguments) are the stack's backend options; ``container_registry`` its registry."""
        import boto3  # noqa: F401 - fail here, with the extra to install, when it is missing

        self._options = validate_options(self.name, OPTIONS, {**(options or {}), **more})
        secret = self._options["api_key_secret"]
        if secret is not None and not (_SECRET_ARN.fullmatch(secret) or _SECRET_NAME.fullmatch(secret)):
            raise KitaruUsageError(
                f"sagemaker option api_key_secret={secret!r} is not a Secrets Manager secret ARN "
                "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME) or name."
            )
        self._registry = container_registry
        self._client: Any = None

    def submit(self, spec: ExecutionSpec) -> Submission:
        """Create the training job for ``spec``, or return the one already running it."""
        check_container_spec(self.name, spec)
        self._check_resources(spec)
        image = resolve_image(self.name, spec, option=self._options["image"], registry=self._registry)
        request = self._request(with_code(spec, self._options), image)
        rerun = spec.action in (LaunchAction.RESUME, LaunchAction.RETRY)
        base = request["TrainingJobName"]
        for attempt in range(1, 100):
            name = base if attempt == 1 else job_name(spec.exec_id, f"{spec.action.value}-{attempt}", limit=63)
            existing = self._describe(name)
            if existing is None:
                self._call("create_training_job", **{**request, "TrainingJobName": name})
                return self._submission(spec.exec_id, name)
            if not (rerun and report_from_description(existing).state.is_finished):
                return self._submission(spec.exec_id, name)
        raise KitaruBackendError(
            f"execution {spec.exec_id} has 99 SageMaker training jobs for {spec.action.value}; clean up old ones."
        )

    def status(self, submission: Submission) -> BackendReport:
        """The training job's status (and ``FailureReason``); ``STOPPED`` for a job that does not exist."""
        described = self._describe(str(submission.submission_id))
        if described is None:
            return BackendReport(BackendState.STOPPED, f"training job {submission.submission_id} does not exist")
        return report_from_description(described)

    def cancel(self, submission: Submission) -> None:
        """Stop the training job (idempotent: an ended or missing job is left as it is)."""
        from botocore.exceptions import ClientError

        try:
            self._call("stop_training_job", TrainingJobName=submission.submission_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ValidationException":
                raise self._error(exc, "stop_training_job") from None

    def logs(self, submission: Submission, *, follow: bool = False) -> Iterator[str]:
        """The job's status transitions (the hosts' output is in CloudWatch, linked from the dashboard page)."""
        return status_lines(
            lambda: self.status(submission), f"training job {submission.submission_id}", follow=follow, interval=5.0
        )

    def dashboard_url(self, submission: Submission) -> str | None:
        """The job's page in the AWS console."""
        region = self._options["region"]
        return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{submission.submission_id}"

    # -- the job ------------------------------------------------------------------------------------

    def _request(self, spec: ExecutionSpec, image: str) -> dict[str, Any]:
        options = self._options
        output = options["output_path"] or (spec.storage_url if (spec.storage_url or "").startswith("s3://") else None)
        if not output:
            raise KitaruUsageError(
                "the sagemaker backend needs an s3:// output: set --backend-option output_path=s3://... or s3 storage."
            )
        environment = {**container_environment(spec), **cluster_auth_environment()}
        if options["api_key_secret"]:
            environment.update(self._secret_environment(options["api_key_secret"]))
        elif spec.api_key:
            environment["KITARU_API_KEY"] = spec.api_key
        if options["worker_ray_resources"]:
            environment["KITARU_RAY_WORKER_START_ARGS"] = "--resources " + shlex.quote(
                json.dumps(options["worker_ray_resources"])
            )
        arguments = ["--", *driver_arguments(spec)]
        for argument in arguments:
            if len(argument) > _MAX_ARGUMENT:
                raise KitaruUsageError(
                    f"a driver argument is {len(argument)} characters, over SageMaker's {_MAX_ARGUMENT}; "
                    "pass large inputs by reference."
                )
        for key, value in environment.items():
            if len(value) > _MAX_ENV_VALUE:
                raise KitaruUsageError(
                    f"{key} is {len(value)} characters, over SageMaker's {_MAX_ENV_VALUE} for an environment value."
                )
        request: dict[str, Any] = {
            "TrainingJobName": job_name(spec.exec_id, spec.action.value, limit=63),
            "RoleArn": options["role_arn"],
            "AlgorithmSpecification": {
                "TrainingImage": image,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": CLUSTER_LAUNCHER,
                "ContainerArguments": arguments,
            },
            "OutputDataConfig": {"S3OutputPath": output},
            "ResourceConfig": {
                "InstanceType": options["instance_type"],
                "InstanceCount": options["instance_count"],
                "VolumeSizeInGB": options["volume_size_gb"],
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": options["max_runtime_seconds"]},
            "Environment": environment,
            "Tags": [
                {"Key": "kitaru:exec-id", "Value": spec.exec_id[:256]},
                {"Key": "kitaru:action", "Value": spec.action.value},
            ],
        }
        if options["subnets"]:
            request["VpcConfig"] = {"Subnets": options["subnets"], "SecurityGroupIds": options["security_group_ids"]}
        return request

    def _secret_environment(self, secret: str) -> dict[str, str]:
        from kitaru.runtime.launch import secret_reference

        arn = _SECRET_ARN.fullmatch(secret)
        return secret_reference("aws-secretsmanager", secret, region=arn["region"] if arn else self._options["region"])

    def _check_resources(self, spec: ExecutionSpec) -> None:
        from kitaru.backends._resources import requested_resources

        offered = set(self._options["worker_ray_resources"])
        if self._options["instance_type"].startswith(("ml.p", "ml.g")):
            offered.add("GPU")
        for resource, checkpoint in requested_resources(spec.target).items():
            if resource not in offered:
                raise KitaruUsageError(
                    f"checkpoint {checkpoint} asks for Ray resource {resource!r} that no SageMaker host offers; "
                    "set --backend-option worker_ray_resources={...} or a GPU instance_type."
                )

    def _describe(self, name: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self._call("describe_training_job", TrainingJobName=name)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ValidationException" and "not found" in str(error.get("Message", "")).lower():
                return None
            raise self._error(exc, "describe_training_job") from None

    def _submission(self, exec_id: str, name: str) -> Submission:
        submission = Submission(self.name, exec_id, name, details={"region": self._options["region"]})
        return Submission(self.name, exec_id, name, self.dashboard_url(submission), dict(submission.details))

    # -- the client ---------------------------------------------------------------------------------

    def _call(self, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import (
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            NoRegionError,
            ParamValidationError,
        )

        try:
            return getattr(self._boto(), method)(**kwargs)
        except ClientError as exc:
            if method in ("describe_training_job", "stop_training_job"):
                raise
            raise self._error(exc, method) from None
        except NoCredentialsError:
            raise KitaruUsageError(
                "no AWS credentials: configure a profile (aws configure) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY."
            ) from None
        except ParamValidationError as exc:
            raise KitaruUsageError(f"SageMaker would refuse {method}: {' '.join(str(exc).split())}") from None
        except NoRegionError:
            raise KitaruUsageError("no AWS region: set --backend-option region=REGION.") from None
        except EndpointConnectionError as exc:
            raise KitaruBackendError(
                f"cannot reach SageMaker at {exc.kwargs.get('endpoint_url')}; check the stack's region/endpoint_url."
            ) from None

    def _error(self, exc: Any, method: str) -> KitaruBackendError:
        error = exc.response.get("Error", {})
        return KitaruBackendError(f"SageMaker refused {method}: {error.get('Code')}: {error.get('Message')}")

    def _boto(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)
            self._client = boto3.client(
                "sagemaker", region_name=self._options["region"], endpoint_url=self._options["endpoint_url"], config=config
            )
        return self._client


def report_from_description(described: Mapping[str, Any]) -> BackendReport:
    """The infrastructure's view of a training job from ``DescribeTrainingJob``."""
    status = described.get("TrainingJobStatus", "")
    secondary = described.get("SecondaryStatus", "")
    if status == "InProgress" and secondary in _STARTING:
        return BackendReport(BackendState.PENDING, secondary)
    if secondary == "MaxRuntimeExceeded":
        runtime = described.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        return BackendReport(BackendState.FAILED, f"the job ran past its max_runtime_seconds ({runtime} s)")
    state = _STATES.get(status, BackendState.UNKNOWN)
    return BackendReport(state, described.get("FailureReason") if state is BackendState.FAILED else None)
