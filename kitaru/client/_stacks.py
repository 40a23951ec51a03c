"""``KitaruClient().stacks``: the team's stacks, stored on the server, and the one this project uses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitaru._stacks import DEFAULT_STACK, Stack, default_stack
from kitaru.errors import KitaruUsageError

if TYPE_CHECKING:
    from kitaru.client import KitaruClient

__all__ = ["Stack", "Stacks"]


class Stacks:
    """List, create, delete and choose stacks (``kitaru stack ...``). The ``default`` stack always exists."""

    def __init__(self, client: KitaruClient) -> None:
        self._client = client

    def list(self) -> list[Stack]:
        """Every stack: the built-in ``default`` first, then the stored ones by name."""
        return [default_stack(self._settings()), *(Stack.from_record(row) for row in self._client.service.list_stacks())]

    def get(self, name: str) -> Stack:
        """One stack. Raises :class:`~kitaru.KitaruNotFoundError` naming ``kitaru stack list``."""
        if name == DEFAULT_STACK:
            return default_stack(self._settings())
        return Stack.from_record(self._client.service.get_stack(name))

    def create(
        self,
        name: str,
        *,
        backend: str = "local",
        storage_url: str | None = None,
        storage_options: dict[str, Any] | None = None,
        container_registry: str | None = None,
        backend_options: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> Stack:
        """Store a stack.

        Args:
            name: Its name (``default`` is reserved).
            backend: The compute backend: ``local``, ``ray`` (a Ray cluster through its Jobs API), ``kuberay``,
                ``vertex`` or ``sagemaker``.
            storage_url: An fsspec URL (``file://``, ``s3://``, ``gs://``, ``abfs://``); a plain path becomes a
                ``file://`` URL of its absolute path.
            storage_options: fsspec options for the storage (endpoint, region...).
            container_registry: Where remote backends push and pull images.
            backend_options: Options for the backend, checked against the ones it declares (``kitaru stack create --help``).
            replace: Overwrite an existing stack of that name.
        """
        backend_options = _checked_options(backend, backend_options or {})
        row = self._client.service.create_stack(
            name,
            backend=backend,
            storage_url=normalize_storage_url(storage_url),
            storage_options=storage_options,
            container_registry=container_registry,
            backend_options=backend_options,
            replace=replace,
        )
        return Stack.from_record(row)

    def delete(self, name: str) -> None:
        """Delete a stored stack (the built-in ``default`` cannot be deleted)."""
        self._client.service.delete_stack(name)

    def current(self) -> Stack:
        """The active stack: ``KITARU_STACK``, ``configure(stack=)``, the project or user config, else ``default``."""
        return self.get(self._settings().stack or DEFAULT_STACK)

    def use(self, name: str, *, user: bool = False) -> Path:
        """Make ``name`` the active stack; returns the config file that records it.

        It is written to the project's ``.kitaru/config.yaml`` (``kitaru init``), or to the user
        config file when there is no project or ``user=True``.
        """
        from kitaru.config import find_project_dir, write_project_config, write_user_config

        self.get(name)  # an unknown stack fails here, naming `kitaru stack list`
        project = None if user else find_project_dir()
        if project is not None:
            return write_project_config(project, stack=name)
        return write_user_config(stack=name)

    def _settings(self) -> Any:
        from kitaru.config import resolve_settings

        return resolve_settings()


def normalize_storage_url(url: str | None) -> str | None:
    """A URL as given (it has a scheme); a plain path as the ``file://`` URL of its absolute path."""
    if url is None or "://" in url:
        return url
    if not url:
        raise KitaruUsageError("the storage URL is empty; give an fsspec URL such as s3://bucket/prefix or a directory path.")
    return Path(os.path.expanduser(url)).resolve().as_uri()


BROKER_CONFIG = "credentials"


def _checked_options(backend: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options a user gave, checked by the backend where it declares them (defaults are not stored: they may change)."""
    from kitaru.backends import backend_options, validate_backend_options

    try:
        declared = backend_options(backend)
    except KitaruUsageError:  # not a backend of this installation: the server says which are
        return options
    if not declared:
        return options
    # ``credentials`` configures the server's storage broker on a stack of any backend; the backend never reads it.
    checked = validate_backend_options(backend, {key: value for key, value in options.items() if key != BROKER_CONFIG})
    return {key: checked.get(key, options[key]) for key in options}
