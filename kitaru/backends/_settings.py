"""The settings a driver started for an execution spec runs with: the spec's server and key win."""

from __future__ import annotations

import dataclasses

from kitaru.config import Settings, resolve_settings
from kitaru.contracts.launch import ExecutionSpec
from kitaru.errors import KitaruUsageError

__all__ = ["refuse_image", "settings_for"]


def settings_for(spec: ExecutionSpec) -> Settings:
    """This process's settings, recording where ``spec`` says: its server (with its key), else the embedded database."""
    return dataclasses.replace(resolve_settings(), server_url=spec.server_url, api_key=spec.api_key)


def refuse_image(backend: str, spec: ExecutionSpec) -> None:
    """A spec with an image cannot run on a backend without containers: say so before anything starts."""
    if spec.image:
        raise KitaruUsageError(
            f"backend {backend!r} runs flows on this machine and cannot use image {spec.image!r}; "
            "run on a stack with a container backend, or drop image=."
        )
