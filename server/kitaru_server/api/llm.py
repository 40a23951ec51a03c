"""Model aliases and secrets (secret values go in; only runtimes read them back)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from kitaru_server.api._common import (
    ERROR_RESPONSES,
    JSON,
    Page,
    Service,
    StrictJSONRoute,
    json_response,
    require_admin,
    require_runtime,
)
from kitaru_server.api._schemas import ModelRegistration, SecretValues

router = APIRouter(prefix="/api/v1", tags=["models and secrets"], route_class=StrictJSONRoute, responses=ERROR_RESPONSES)
Alias = Annotated[str, Path(min_length=1, max_length=128, description="The model alias.")]
SecretName = Annotated[str, Path(min_length=1, max_length=128, description="The secret's name.")]


@router.get("/models", summary="Every model alias, by name")
def list_models(service: Service, page: Annotated[Page, Depends()]) -> JSON:
    return page.slice(service.list_models())


@router.get("/default-model", summary="The default model alias, or null")
def default_model(service: Service) -> JSON:
    return json_response(service.default_model())


@router.get("/models/{alias}", summary="One model alias, or null when it is not registered")
def get_model(service: Service, alias: Alias) -> JSON:
    return json_response(service.get_model(alias))


@router.put("/models/{alias}", summary="Register (or replace) a model alias", dependencies=[Depends(require_admin)])
def register_model(service: Service, alias: Alias, body: ModelRegistration) -> JSON:
    return json_response(
        service.register_model(alias, body.model, secret=body.secret, base_url=body.base_url, default=body.default)
    )


@router.delete("/models/{alias}", summary="Remove a model alias", dependencies=[Depends(require_admin)])
def delete_model(service: Service, alias: Alias) -> JSON:
    service.delete_model(alias)
    return json_response({"deleted": alias})


@router.get("/secrets", summary="Every secret's name and keys (never values)")
def list_secrets(service: Service, page: Annotated[Page, Depends()]) -> JSON:
    return page.slice(service.list_secrets())


@router.get("/secrets/{name}", summary="A secret's name and keys (never values)")
def get_secret(service: Service, name: SecretName) -> JSON:
    return json_response(service.get_secret(name))


@router.put("/secrets/{name}", summary="Create a secret or update some of its keys", dependencies=[Depends(require_admin)])
def set_secret(service: Service, name: SecretName, body: SecretValues) -> JSON:
    return json_response(service.set_secret(name, body.values))


@router.delete("/secrets/{name}", summary="Delete a secret", dependencies=[Depends(require_admin)])
def delete_secret(service: Service, name: SecretName) -> JSON:
    service.delete_secret(name)
    return json_response({"deleted": name})


@router.get(
    "/secrets/{name}/values",
    summary="A secret's values, for a runtime (service-account or admin key)",
    dependencies=[Depends(require_runtime)],
)
def secret_values(service: Service, name: SecretName) -> JSON:
    return json_response(service.secret_values(name))
