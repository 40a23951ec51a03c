"""Live rows of an execution (events, log entries) as they are recorded, until it ends.

Remote mode reads the server's server-sent event streams
(``/api/v1/executions/{id}/events/stream`` and ``.../logs/stream``), reconnecting
after a dropped connection from the last row it saw; embedded mode tails the
database. Both stop once the execution is terminal and every row was yielded
(a suspended execution is not terminal: the stream waits for it to resume).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from kitaru.errors import KitaruBackendError

__all__ = ["TERMINAL", "follow_rows", "parse_sse"]

TERMINAL = ("completed", "failed", "cancelled")
POLL_SECONDS = 0.5  # the slowest embedded poll; a busy stream polls faster
_FIRST_POLL = 0.05
_PAGE = 1000
_RECONNECTS = 5  # consecutive failed reconnections before the stream gives up


def follow_rows(
    client: Any,
    exec_id: str,
    kind: str,
    *,
    since: int,
    follow: bool,
    params: dict[str, Any] | None = None,
) -> Generator[dict[str, Any], None, None]:
    """Rows of ``kind`` (``"events"`` or ``"logs"``) with an id greater than ``since``.

    Args:
        client: The :class:`~kitaru.client.KitaruClient` (its service URL picks remote or embedded).
        exec_id: The execution.
        kind: ``"events"`` or ``"logs"``.
        since: Only rows with a greater id (a cursor: the last id seen).
        follow: Keep yielding new rows until the execution is terminal; ``False`` stops at the rows recorded now.
        params: Filters of the log rows (``invocation_id``, ``source``).
    """
    from kitaru._service import is_remote

    params = {k: v for k, v in (params or {}).items() if v is not None}
    service = client.service
    service.get_execution(exec_id, with_calls=False)  # an unknown id fails before the first row
    fetch = _fetcher(service, exec_id, kind, params)
    if not follow:
        yield from _rows_now(fetch, since)
    elif is_remote(client.service_url):
        yield from _server_sent(client.service_url, client.api_key, exec_id, kind, params, since)
    else:
        yield from _tail(fetch, lambda: service.get_execution(exec_id, with_calls=False)["status"] in TERMINAL, since)


def _fetcher(service: Any, exec_id: str, kind: str, params: dict[str, Any]) -> Callable[[int], list[dict[str, Any]]]:
    if kind == "events":
        return lambda after: service.get_events(exec_id, after_id=after, limit=_PAGE)
    return lambda after: service.get_logs(exec_id, after_id=after, limit=_PAGE, **params)


def _rows_now(fetch: Callable[[int], list[dict[str, Any]]], after_id: int) -> Iterator[dict[str, Any]]:
    while True:
        rows = fetch(after_id)
        yield from rows
        if len(rows) < _PAGE:
            return
        after_id = rows[-1]["id"]


def _tail(fetch: Callable[[int], list[dict[str, Any]]], finished: Callable[[], bool], after_id: int) -> Iterator[dict[str, Any]]:
    """Poll the database: faster while rows arrive, up to :data:`POLL_SECONDS` when it is quiet."""
    delay = _FIRST_POLL
    while True:
        done = finished()  # checked before the fetch, so rows committed before the end are still yielded
        rows = fetch(after_id)
        for row in rows:
            after_id = row["id"]
            yield row
        if len(rows) == _PAGE:
            continue
        if done:
            return
        delay = _FIRST_POLL if rows else min(delay * 1.5, POLL_SECONDS)
        time.sleep(delay)


def _server_sent(
    url: str, api_key: str | None, exec_id: str, kind: str, params: dict[str, Any], after_id: int
) -> Iterator[dict[str, Any]]:
    """The server's event stream; a dropped connection is resumed after the last row yielded."""
    import httpx

    from kitaru.client._transport import Transport, segment

    transport = Transport(url, api_key)
    path = f"/executions/{segment(exec_id)}/{kind}/stream"
    failures = 0
    try:
        while True:
            try:
                with transport._client.stream(
                    "GET", path, params={**params, "after_id": after_id}, headers={"Accept": "text/event-stream"}
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        transport._decode(response)  # raises the server's error as Kitaru's own
                    for event, data in parse_sse(response.iter_lines()):
                        failures = 0
                        if event == "end":
                            return
                        row = json.loads(data)
                        after_id = row["id"]
                        yield row
            except httpx.TransportError as exc:
                failures += 1
                if failures > _RECONNECTS:
                    message = (
                        f"the {kind} stream of execution {exec_id!r} from {transport.url} kept failing "
                        f"({type(exc).__name__}: {exc}); check the server and try again."
                    )
                    raise KitaruBackendError(message, url=transport.url) from None
                time.sleep(min(0.2 * 2**failures, 5.0))
            # a stream closed without its end event (a restarted server): reconnect from the last row
    finally:
        transport.close()


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    """``(event, data)`` for each message of a ``text/event-stream`` (comments and ids skipped; events default to ``message``)."""
    event, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)
