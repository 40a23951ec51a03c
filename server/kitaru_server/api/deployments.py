"""Deployments: versioned snapshots of flows, with tags."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from kitaru_server.api._common import ERROR_RESPONSES, JSON, Page, Service, StrictJSONRoute, json_response, require_admin
from kitaru_server.api._schemas import DeploymentCreate

router = APIRouter(prefix="/api/v1", tags=["deployments"], route_class=StrictJSONRoute, responses=ERROR_RESPONSES)
FlowName = Annotated[str, Path(min_length=1, max_length=256, description="The flow's name.")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="The deployment version.")]
Tag = Annotated[str, Path(min_length=1, max_length=128, description="The tag.")]


@router.get("/deployments", summary="Every deployment version, by flow, newest first")
def list_deployments(
    service: Service,
    page: Annotated[Page, Depends()],
    flow: Annotated[str | None, Query(max_length=256, description="Only this flow's versions.")] = None,
) -> JSON:
    return page.slice(service.list_deployments(flow))


@router.post("/deployments/{flow}", summary="Register the next version of a flow")
def create_deployment(service: Service, flow: FlowName, body: DeploymentCreate) -> JSON:
    return json_response(service.create_deployment(flow, **body.model_dump()))


@router.get("/deployments/{flow}/resolve", summary="One version of a flow: by number, by tag, or the newest")
def get_deployment(
    service: Service,
    flow: FlowName,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    tag: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> JSON:
    return json_response(service.get_deployment(flow, version=version, tag=tag))


@router.put("/deployments/{flow}/{version}/tags/{tag}", summary="Point a tag at a version (moving it)")
def tag_deployment(service: Service, flow: FlowName, version: Version, tag: Tag) -> JSON:
    return json_response(service.tag_deployment(flow, version, tag))


@router.delete("/deployments/{flow}/{version}", summary="Delete a version", dependencies=[Depends(require_admin)])
def delete_deployment(service: Service, flow: FlowName, version: Version) -> JSON:
    service.delete_deployment(flow, version)
    return json_response({"deleted": {"flow": flow, "version": version}})
