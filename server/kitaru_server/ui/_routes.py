"""The UI's routes: pages, the fragments the pages refresh themselves with, actions, static files and the login page.

Pages: ``/`` (to ``/executions``), ``/executions`` (filters, paging, live
refresh), ``/executions/{exec_id}`` (the page notebooks link to), ``/stacks``
and ``/login``. Every route but the login page requires a key (the API's
check, which also reads the login cookie). None of them is in the OpenAPI
schema: they are the UI's, not the API's.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, RedirectResponse, Response

from kitaru.errors import KitaruError, KitaruNotFoundError
from kitaru_server.admission import check_may_continue
from kitaru_server.api._common import JSON, Service, UnicodeJSONRoute, json_response
from kitaru_server.api._guards import csrf_token
from kitaru_server.ui import _actions, _pages
from kitaru_server.ui._auth import COOKIE_SECONDS, KEY_COOKIE, caller_token, safe_next, ui_caller
from kitaru_server.ui._render import STATIC, html_page, render

__all__ = ["router"]

ExecId = Annotated[str, Path(min_length=1, max_length=128)]
Invocation = Annotated[str, Path(min_length=1, max_length=256)]
_STATIC_TYPES = {"kitaru.css": "text/css", "kitaru.js": "text/javascript", "favicon.svg": "image/svg+xml"}

UiCaller = Annotated[dict[str, Any], Depends(ui_caller)]
public = APIRouter(include_in_schema=False)
pages = APIRouter(include_in_schema=False, dependencies=[Depends(ui_caller)], route_class=UnicodeJSONRoute)


# --- sign in ----------------------------------------------------------------------------------------


@public.get("/login")
def login_page(request: Request, next: str | None = Query(None, max_length=2048)) -> Response:
    """The only page without a key: a form that stores the key in the login cookie."""
    if not request.app.state.auth:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login(request, safe_next(next), None)


@public.post("/login")
async def login(request: Request) -> Response:
    """Check the key and keep it in an HttpOnly cookie; a refused key shows the form again with the reason (401)."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=8)
    token = (form.get("api_key") or [""])[0].strip()
    target = safe_next((form.get("next") or [None])[0])
    if not request.app.state.auth:
        return RedirectResponse(target, status_code=303)
    if not token:
        return _login(request, target, "Enter an API key.", status_code=422)
    if await run_in_threadpool(request.app.state.service.verify_api_key, token) is None:
        return _login(
            request,
            target,
            "The server refused this key (unknown, rotated or revoked); ask an admin for a valid one.",
            status_code=401,
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        KEY_COOKIE,
        token,
        max_age=COOKIE_SECONDS,
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
    )
    return response


def _login(request: Request, target: str, error: str | None, status_code: int = 200) -> Response:
    css = (STATIC / "kitaru.css").read_text()  # inline: the stylesheet itself needs a key
    return html_page("login.html", status_code=status_code, next=target, error=error, css=css, version=_version())


@pages.post("/logout")
def logout() -> Response:
    """Forget the key (the cookie); back to the login page."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(KEY_COOKIE, path="/")
    return response


# --- pages ------------------------------------------------------------------------------------------


@pages.get("/")
def home() -> Response:
    return RedirectResponse("/executions", status_code=303)


@pages.get("/executions")
def executions_page(
    request: Request,
    service: Service,
    flow: Annotated[str | None, Query(max_length=256)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Response:
    """Executions, newest first: filter by flow and status, page through them; the list refreshes itself."""
    if status and status not in _pages.EXECUTION_STATUSES:
        return _error(request, 422, f"unknown status {status!r}; choose one of {', '.join(_pages.EXECUTION_STATUSES)}.")
    context = _pages.executions_context(service, flow=flow, status=status, offset=offset)
    return html_page("executions.html", **_base(request, "executions"), **context)


@pages.get("/executions/{exec_id}")
def execution_page(request: Request, service: Service, exec_id: ExecId) -> Response:
    """One execution: header, actions, waits, DAG and timeline of its calls, the selected call, live logs and events."""
    try:
        context = _pages.execution_context(service, exec_id)
    except KitaruError as exc:
        return _error(request, 404 if isinstance(exc, KitaruNotFoundError) else 409, str(exc))
    return html_page("execution.html", **_base(request, "executions"), **context)


@pages.get("/deployments")
def deployments_page(request: Request, service: Service) -> Response:
    """Every deployed flow version, with its tags."""
    return html_page("deployments.html", **_base(request, "deployments"), deployments=service.list_deployments())


@pages.get("/stacks")
def stacks_page(request: Request, service: Service) -> Response:
    """The stacks stored on this server, after the built-in ``default``."""
    return html_page("stacks.html", **_base(request, "stacks"), **_pages.stacks_context(service))


@pages.get("/ui/static/{name}")
def static(name: Annotated[str, Path(max_length=64)]) -> Response:
    """The stylesheet, the script and the icon (the only files the pages load)."""
    if name not in _STATIC_TYPES:
        raise KitaruNotFoundError(f"there is no UI file {name!r}.")
    return FileResponse(STATIC / name, media_type=_STATIC_TYPES[name], headers={"Cache-Control": "private, max-age=86400"})


# --- fragments: what the pages refresh ---------------------------------------------------------------


@pages.get("/ui/fragments/executions")
def executions_fragment(
    service: Service,
    flow: Annotated[str | None, Query(max_length=256)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> JSON:
    context = _pages.executions_context(
        service, flow=flow, status=status if status in _pages.EXECUTION_STATUSES else None, offset=offset
    )
    return json_response({"rows": render("_execution_rows.html", **context), "counts": render("_status_counts.html", **context)})


@pages.get("/ui/fragments/executions/{exec_id}")
def execution_fragment(service: Service, exec_id: ExecId) -> JSON:
    context = _pages.execution_context(service, exec_id)
    regions = {
        name: render(f"_exec_{name}.html", **context) for name in ("header", "actions", "graph", "timeline", "calls", "result")
    }
    return json_response(
        {
            "status": context["e"]["status"],
            "active": context["active"],
            "regions": regions,
            "waits_key": context["waits_key"],
            "waits": render("_exec_waits.html", **context),
            "calls": {c["invocation_id"]: f"{c['status']}:{len(c['attempts'])}" for c in context["calls"]},
        }
    )


@pages.get("/ui/fragments/executions/{exec_id}/calls/{invocation_id}")
def call_fragment(service: Service, exec_id: ExecId, invocation_id: Invocation) -> JSON:
    context = _pages.call_context(service, exec_id, invocation_id)
    if context is None:
        raise KitaruNotFoundError(f"execution {exec_id!r} has no call {invocation_id!r}.")
    return json_response({"html": render("_call_panel.html", **context), "status": context["c"]["status"]})


# --- actions -----------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ReplayBody(_Body):
    at: str = Field(min_length=1, max_length=256, description="The invocation id from which calls run live.")
    override_output: bool = Field(False, description="Use `output` as the output of `at` instead of running it.")
    output: Any = None
    flow_overrides: dict[str, Any] | None = None


class InputBody(_Body):
    value: Any = None


@pages.post("/ui/actions/executions/{exec_id}/cancel")
def cancel(service: Service, exec_id: ExecId) -> JSON:
    return json_response(_actions.cancel(service, exec_id))


@pages.post("/ui/actions/executions/{exec_id}/resume")
def resume(request: Request, service: Service, caller: UiCaller, exec_id: ExecId) -> JSON:
    _check_may_continue(service, caller, exec_id, "resume")
    started = _actions.continue_execution(service, _launcher(request), exec_id, "resume", **_driver_access(request))
    return json_response(started, status_code=202)


@pages.post("/ui/actions/executions/{exec_id}/retry")
def retry(request: Request, service: Service, caller: UiCaller, exec_id: ExecId) -> JSON:
    _check_may_continue(service, caller, exec_id, "retry")
    started = _actions.continue_execution(service, _launcher(request), exec_id, "retry", **_driver_access(request))
    return json_response(started, status_code=202)


@pages.post("/ui/actions/executions/{exec_id}/replay")
def replay(request: Request, service: Service, caller: UiCaller, exec_id: ExecId, body: ReplayBody) -> JSON:
    _check_may_continue(service, caller, exec_id, "replay")
    output = body.output if body.override_output else ...
    started = _actions.replay(
        service,
        _launcher(request),
        exec_id,
        at=body.at,
        output=output,
        flow_overrides=body.flow_overrides,
        **_driver_access(request),
    )
    return json_response(started, status_code=202)


@pages.post("/ui/actions/executions/{exec_id}/waits/{name}/input")
def give_input(request: Request, service: Service, caller: UiCaller, exec_id: ExecId, name: Invocation, body: InputBody) -> JSON:
    record = service.get_execution(exec_id, with_calls=False)
    if record["status"] == "waiting" and not record.get("driver_id"):  # input to a suspended execution resumes it
        check_may_continue(caller, record, "resume")
    return json_response(_actions.answer_wait(service, _launcher(request), exec_id, name, body.value, **_driver_access(request)))


# --- helpers -----------------------------------------------------------------------------------------


def _launcher(request: Request) -> Any:
    return getattr(request.app.state, "launcher", None)


def _driver_access(request: Request) -> dict[str, Any]:
    """How a driver reaches this server when it does not share its database: this URL and the caller's key."""
    return {"server_url": str(request.base_url), "api_key": caller_token(request) if request.app.state.auth else None}


def _check_may_continue(service: Any, caller: dict[str, Any], exec_id: str, action: str) -> None:
    check_may_continue(caller, service.get_execution(exec_id, with_calls=False), action)


def _base(request: Request, nav: str) -> dict[str, Any]:
    cookie = request.cookies.get(KEY_COOKIE)
    return {
        "nav": nav,
        "auth": bool(request.app.state.auth),
        "version": _version(),
        "csrf": csrf_token(cookie) if cookie else "",
    }


def _error(request: Request, status_code: int, message: str) -> Response:
    return html_page("error.html", status_code=status_code, message=message, code=status_code, **_base(request, ""))


def _version() -> str:
    from kitaru_server import __version__

    return __version__


router = APIRouter(include_in_schema=False)
router.include_router(public)
router.include_router(pages)
