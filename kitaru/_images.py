"""A flow's container image: the Dockerfile and requirements ``kitaru build`` writes, and its tag.

The image holds dependencies only (base image, apt packages, pip requirements with ``kitaru``
itself, environment); the flow's code travels as a snapshot with each run or deployment, so the
image is rebuilt only when its dependencies change: the tag is a digest of what goes into it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kitaru.errors import KitaruUsageError

__all__ = ["BuildPlan", "ImageSpec", "image_spec", "plan_build", "write_build"]

DEFAULT_BASE = "python:3.11-slim"
_STORAGE_EXTRAS = {"s3": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "az": "azure", "abfss": "azure"}


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """What goes into a flow's image (Kitaru 0.21's ``image`` settings of a flow).

    Attributes:
        base_image: The image to start from (default ``python:3.11-slim``).
        requirements: pip requirements; ``kitaru`` is added unless listed.
        apt_packages: Debian packages.
        environment: Non-secret environment variables.
    """

    base_image: str = DEFAULT_BASE
    requirements: tuple[str, ...] = ()
    apt_packages: tuple[str, ...] = ()
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    """The files of an image and the commands that build and push it."""

    dockerfile: str
    requirements: str
    tag: str

    def commands(self, directory: Path) -> list[str]:
        """``docker build`` and ``docker push`` of this image from ``directory``."""
        return [f"docker build -t {self.tag} -f {directory / 'Dockerfile'} {directory}", f"docker push {self.tag}"]


def image_spec(value: Any, **overrides: Any) -> ImageSpec:
    """An :class:`ImageSpec` from a flow's ``image`` setting (a mapping or an object with those fields) and CLI overrides.

    Raises:
        KitaruUsageError: ``value`` is an image reference (nothing to build) or has unknown fields.
    """
    if isinstance(value, str):
        raise KitaruUsageError(f"the flow uses the prebuilt image {value!r}; there is nothing to build.")
    fields = {field.name for field in dataclasses.fields(ImageSpec)}
    data: dict[str, Any] = {}
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - fields)
        if unknown:
            raise KitaruUsageError(f"image settings {unknown} are not supported; use {sorted(fields)}.")
        data.update(value)
    elif value is not None:
        data.update({name: getattr(value, name) for name in fields if getattr(value, name, None) is not None})
    for name, extra in overrides.items():
        if not extra:
            continue
        if name == "environment":
            data[name] = {**dict(data.get(name) or {}), **extra}
        elif name == "base_image":
            data[name] = extra
        else:
            data[name] = (*tuple(data.get(name) or ()), *extra)
    return ImageSpec(
        base_image=str(data.get("base_image") or DEFAULT_BASE),
        requirements=tuple(str(r) for r in data.get("requirements") or ()),
        apt_packages=tuple(str(p) for p in data.get("apt_packages") or ()),
        environment={str(k): str(v) for k, v in dict(data.get("environment") or {}).items()},
    )


def plan_build(spec: ImageSpec, *, flow: str, registry: str | None, storage_url: str | None = None) -> BuildPlan:
    """The Dockerfile, requirements and tag of ``flow``'s image (``registry`` defaults to a local name)."""
    from kitaru import __version__

    requirements = list(spec.requirements)
    if not any(re.match(r"kitaru(\[|[<>=!~ ]|$)", r) for r in requirements):
        extras = sorted(_storage_extras(storage_url))
        requirements.insert(0, f"kitaru{'[' + ','.join(extras) + ']' if extras else ''}=={__version__}")
    requirements_text = "".join(f"{line}\n" for line in requirements)
    lines = [f"FROM {spec.base_image}", "ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 RAY_USAGE_STATS_ENABLED=0"]
    if spec.apt_packages:
        packages = " ".join(sorted(spec.apt_packages))
        lines.append(
            f"RUN apt-get update && apt-get install -y --no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*"
        )
    lines += ["COPY requirements.txt /tmp/requirements.txt", "RUN pip install -r /tmp/requirements.txt"]
    for key, value in sorted(spec.environment.items()):
        lines.append(f"ENV {key}={_quote(value)}")
    lines.append('CMD ["python", "-m", "kitaru.runtime.launch"]')
    dockerfile = (
        "# Written by `kitaru build`: dependencies only; the flow's code travels as a snapshot.\n" + "\n".join(lines) + "\n"
    )
    digest = hashlib.sha256((dockerfile + requirements_text).encode()).hexdigest()[:12]
    name = re.sub(r"[^a-z0-9._-]+", "-", flow.lower()).strip("-.") or "flow"
    repository = f"{registry.rstrip('/')}/kitaru-{name}" if registry else f"kitaru-{name}"
    return BuildPlan(dockerfile=dockerfile, requirements=requirements_text, tag=f"{repository}:{digest}")


def write_build(plan: BuildPlan, directory: Path) -> list[Path]:
    """Write the plan's ``Dockerfile`` and ``requirements.txt`` into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("Dockerfile", plan.dockerfile), ("requirements.txt", plan.requirements)):
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def _storage_extras(storage_url: str | None) -> set[str]:
    scheme = (storage_url or "").partition("://")[0].lower()
    return {_STORAGE_EXTRAS[scheme]} if scheme in _STORAGE_EXTRAS else set()


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
