"""``ImageSettings``: the container image a remote backend runs an execution in (Kitaru 0.21's shape).

Local runs ignore it; it is recorded on the execution (``settings["image"]``) for the
backends that build or pull images.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kitaru.errors import KitaruUsageError

__all__ = ["ImageSettings", "image_spec"]


@dataclasses.dataclass(frozen=True)
class ImageSettings:
    """What the image of an execution holds or is built from."""

    base_image: str | None = None
    requirements: list[str] | None = None
    dockerfile: str | None = None
    build_context_root: str | None = None
    environment: dict[str, str] | None = None
    secret_environment_from: list[str] | None = None
    apt_packages: list[str] | None = None
    replicate_local_python_environment: bool | None = None
    image_tag: str | None = None
    target_repository: str | None = None
    user: str | None = None
    platform: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings that were given (``None`` fields left out)."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}


def image_spec(image: ImageSettings | dict[str, Any] | str | None) -> dict[str, Any] | None:
    """An image as recorded on an execution: ``ImageSettings`` fields as a dict (a name is ``base_image``)."""
    if image is None:
        return None
    if isinstance(image, str):
        return {"base_image": image}
    if isinstance(image, ImageSettings):
        return image.to_dict()
    if isinstance(image, dict):
        try:
            return ImageSettings(**image).to_dict()
        except TypeError as exc:
            raise KitaruUsageError(f"image settings {sorted(image)} are not all ImageSettings fields: {exc}.") from None
    raise KitaruUsageError(f"image= takes ImageSettings, a dict of its fields or an image name, not {type(image).__name__}.")
