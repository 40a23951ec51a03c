"""What a runtime (a driver and its runtime actor) calls: claim, lease, status, finish, suspend, batches, cache."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from kitaru_server.admission import check_may_continue, check_operations, check_result, exec_ids_of, principal_of
from kitaru_server.api._common import ERROR_RESPONSES, JSON, Caller, Service, StrictJSONRoute, json_response
from kitaru_server.api._schemas import Batch, Claim, Finish, Lease, LiveStatus, OpenWait, Suspend

router = APIRouter(prefix="/api/v1", tags=["runtime"], route_class=StrictJSONRoute, responses=ERROR_RESPONSES)
ExecId = Annotated[str, Path(min_length=1, max_length=128, description="The execution's id.")]


@router.post("/batches", summary="Apply a batch of runtime operations in one transaction (idempotent)")
def apply_batch(service: Service, caller: Caller, body: Batch) -> JSON:
    operations = body.service_operations()
    check_operations(operations, _driven_by(service, caller, exec_ids_of(operations)))
    service.apply(operations)
    return json_response({"applied": len(operations)})


@router.post("/executions/{exec_id}/claim", summary="Become the execution's driver (resume, retry)")
def claim(service: Service, caller: Caller, exec_id: ExecId, body: Claim) -> JSON:
    action = "retry" if set(body.from_statuses) == {"failed"} else "resume"
    check_may_continue(caller, service.get_execution(exec_id, with_calls=False), action)
    claimed = service.claim_execution(exec_id, body.driver_id, body.lease_seconds, from_statuses=body.from_statuses)
    service.record_continuation(exec_id, principal_of(caller), action)
    return json_response(claimed)


@router.post("/executions/{exec_id}/lease", summary="Renew the driver's lease")
def renew_lease(service: Service, caller: Caller, exec_id: ExecId, body: Lease) -> JSON:
    _driven_by(service, caller, [exec_id])
    return json_response({"renewed": service.renew_lease(exec_id, body.driver_id, body.lease_seconds)})


@router.post("/executions/{exec_id}/live-status", summary="Switch a driven execution between running and waiting")
def set_live_status(service: Service, caller: Caller, exec_id: ExecId, body: LiveStatus) -> JSON:
    _driven_by(service, caller, [exec_id])
    return json_response({"changed": service.set_live_status(exec_id, body.driver_id, body.status)})


@router.post("/executions/{exec_id}/finish", summary="Record the execution's end")
def finish(service: Service, caller: Caller, exec_id: ExecId, body: Finish) -> JSON:
    result = body.result.model_dump() if body.result is not None else None
    facts = _driven_by(service, caller, [exec_id])
    if exec_id in facts:  # an unknown execution is not finished (the answer says so)
        check_result(result, facts[exec_id]["storage_url"], exec_id)
    return json_response(
        {"finished": service.finish_execution(exec_id, body.driver_id, body.status, result=result, failure=body.failure)}
    )


@router.post("/executions/{exec_id}/suspend", summary="Release the driver of an execution parked on a wait")
def suspend(service: Service, caller: Caller, exec_id: ExecId, body: Suspend) -> JSON:
    _driven_by(service, caller, [exec_id])
    return json_response({"suspended": service.suspend_execution(exec_id, body.driver_id, body.wait)})


@router.post("/executions/{exec_id}/waits", summary="Open a wait (idempotent) and mark the execution waiting")
def open_wait(service: Service, caller: Caller, exec_id: ExecId, body: OpenWait) -> JSON:
    _driven_by(service, caller, [exec_id])
    return json_response(service.open_wait(exec_id, body.driver_id, body.record.data()))


@router.get("/executions/{exec_id}/cancel-requested", summary="Whether a client asked to cancel the execution")
def cancel_requested(service: Service, exec_id: ExecId) -> JSON:
    return json_response({"cancel_requested": service.cancel_requested(exec_id)})


@router.get("/executions/{exec_id}/calls", summary="Every call of the execution by invocation id (used to resume)")
def existing_calls(service: Service, exec_id: ExecId) -> JSON:
    return json_response(service.existing_calls(exec_id))


@router.get("/cache/{cache_key}", summary="The newest completed output with this cache key, or null")
def find_cached_output(service: Service, cache_key: Annotated[str, Path(min_length=1, max_length=64)]) -> JSON:
    return json_response(service.find_cached_output(cache_key))


def _driven_by(service: Service, caller: dict[str, Any], exec_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The executions' facts, once the caller may drive each (its own, or any with the permission to continue)."""
    facts = service.run_facts(exec_ids)
    for fact in facts.values():
        check_may_continue(caller, fact, "drive")
    return facts
