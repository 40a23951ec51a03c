"""The container backends' control planes as local stand-ins, shared by their own tests and the conformance suite.

No Kubernetes cluster or cloud account is reachable here: the Kubernetes API server and the KubeRay
operator, Vertex AI and SageMaker are stand-ins (``kitaru.backends._standins``) speaking the real
wire formats to the real client libraries, and running each replica as a local process. The
"image" of every stand-in is this checkout: ``image_env`` puts the repository (and any further
directories) on the replicas' ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KUBERAY_IMAGE = VERTEX_IMAGE = "registry.example.com/kitaru-runtime:0.1.0"
SAGEMAKER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/kitaru-runtime:0.1.0"
SAGEMAKER_ROLE = "arn:aws:iam::123456789012:role/kitaru"
API_KEY_SECRET = ("ns", "kitaru-api-key")


def image_env(*paths: str | os.PathLike[str], repo: bool = True) -> dict[str, str]:
    """The environment the stand-ins' "image" adds: ``paths`` (and this checkout) importable, Ray auth off."""
    entries = [*map(str, paths), *((str(REPO), str(REPO / "server")) if repo else ())]
    return {"PYTHONPATH": os.pathsep.join(entries), "RAY_AUTH_MODE": "disabled"}


@contextlib.contextmanager
def kuberay(
    workdir: Path, *, ray_address: str, api_key: str = "sekrit", env: Mapping[str, str] | None = None
) -> Iterator[tuple[object, object]]:
    """The stand-in API server and KubeRay operator; entrypoints join ``ray_address``, the API key is in
    Secret ``ns/kitaru-api-key``."""
    from kitaru.backends._standins.kubeapi import KubeApiStandIn
    from kitaru.backends._standins.kuberay_operator import KubeRayOperatorStandIn

    secrets = {API_KEY_SECRET: {"api-key": api_key}}
    with (
        KubeApiStandIn() as api,
        KubeRayOperatorStandIn(
            api.url,
            ray_address=ray_address,
            images={KUBERAY_IMAGE},
            workdir=workdir,
            secrets=secrets,
            env=image_env() if env is None else env,
        ) as operator,
    ):
        yield api, operator


@contextlib.contextmanager
def vertex(workdir: Path, *, env: Mapping[str, str] | None = None, join_ray: str | None = None) -> Iterator[object]:
    """The stand-in Vertex AI API (``join_ray``: only the primary replica's driver, joined to that Ray)."""
    from kitaru.backends._standins.vertex import VertexStandIn

    with VertexStandIn(
        images={VERTEX_IMAGE}, workdir=workdir, env=image_env() if env is None else env, join_ray=join_ray
    ) as standin:
        yield standin


@contextlib.contextmanager
def sagemaker(workdir: Path, *, env: Mapping[str, str] | None = None, join_ray: str | None = None) -> Iterator[object]:
    """The stand-in SageMaker API; on exit, checks every response matched botocore's output shapes."""
    from kitaru.backends._standins.sagemaker import SageMakerStandIn

    with SageMakerStandIn(
        images={SAGEMAKER_IMAGE}, workdir=workdir, env=image_env() if env is None else env, join_ray=join_ray
    ) as standin:
        yield standin
        assert standin.shape_violations == []


def aws_test_credentials(monkeypatch) -> None:
    """Static AWS credentials for boto3 against the stand-ins and moto (no profile of this machine)."""
    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
