"""Stacks: named bundles of compute backend, storage and container registry, shared by the team."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from kitaru_server.api._common import ERROR_RESPONSES, JSON, Page, Service, StrictJSONRoute, json_response, require_admin
from kitaru_server.api._schemas import StackDefinition

router = APIRouter(prefix="/api/v1", tags=["stacks"], route_class=StrictJSONRoute, responses=ERROR_RESPONSES)
StackName = Annotated[str, Path(min_length=1, max_length=128, description="The stack's name.")]


@router.get("/stacks", summary="Every stored stack, by name (the built-in 'default' is not stored)")
def list_stacks(service: Service, page: Annotated[Page, Depends()]) -> JSON:
    return page.slice(service.list_stacks())


@router.get("/stacks/{name}", summary="One stored stack")
def get_stack(service: Service, name: StackName) -> JSON:
    return json_response(service.get_stack(name))


@router.put(
    "/stacks/{name}", summary="Store a stack (409 if it exists, unless replace=true)", dependencies=[Depends(require_admin)]
)
def create_stack(
    service: Service,
    name: StackName,
    body: StackDefinition,
    replace: Annotated[bool, Query(description="Replace an existing stack of this name.")] = False,
) -> JSON:
    return json_response(service.create_stack(name, replace=replace, **body.data()))


@router.delete("/stacks/{name}", summary="Delete a stored stack", dependencies=[Depends(require_admin)])
def delete_stack(service: Service, name: StackName) -> JSON:
    service.delete_stack(name)
    return json_response({"deleted": name})
