"""API keys: the caller's own key, and (admin keys) create, list, rotate, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from kitaru_server.api._common import ERROR_RESPONSES, JSON, Caller, Page, Service, StrictJSONRoute, json_response, require_admin
from kitaru_server.api._schemas import KeyCreate

router = APIRouter(prefix="/api/v1", tags=["auth"], route_class=StrictJSONRoute, responses=ERROR_RESPONSES)
admin_router = APIRouter(
    prefix="/api/v1", tags=["auth"], route_class=StrictJSONRoute, responses=ERROR_RESPONSES, dependencies=[Depends(require_admin)]
)
KeyId = Annotated[str, Path(min_length=1, max_length=32, description="The key's id.")]


@router.get("/auth/whoami", summary="The caller's key (its public record)")
def whoami(caller: Caller) -> JSON:
    return json_response(caller)


@admin_router.get("/keys", summary="API keys (public records; never the keys themselves)")
def list_keys(service: Service, page: Annotated[Page, Depends()], include_revoked: Annotated[bool, Query()] = False) -> JSON:
    return page.slice(service.list_api_keys(include_revoked=include_revoked))


@admin_router.post("/keys", status_code=201, summary="Create a key; the response holds the plain key, shown this once")
def create_key(service: Service, body: KeyCreate) -> JSON:
    return json_response(
        service.create_api_key(body.name, kind=body.kind, admin=body.admin, continue_others=body.continue_others), status_code=201
    )


@admin_router.get("/keys/{key_id}", summary="One key's public record")
def get_key(service: Service, key_id: KeyId) -> JSON:
    return json_response(service.get_api_key(key_id))


@admin_router.post(
    "/keys/{key_id}/rotate", summary="Replace a key's secret; the response holds the new plain key, shown this once"
)
def rotate_key(service: Service, key_id: KeyId) -> JSON:
    return json_response(service.rotate_api_key(key_id))


@admin_router.delete("/keys/{key_id}", summary="Revoke a key (it stops working at once)")
def revoke_key(service: Service, key_id: KeyId) -> JSON:
    return json_response(service.revoke_api_key(key_id))
