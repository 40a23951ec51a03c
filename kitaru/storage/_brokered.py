"""Storage credentials brokered by the server: short-lived, scoped to the stack, renewed before they expire.

A stack whose server brokers its credentials puts ``{"kitaru_broker": STACK}`` beside its public storage
options in a run's settings (never the credentials themselves: settings are recorded). Every process that
opens the storage (client, driver, worker) asks its server for the credentials, and asks again shortly
before they expire.
"""

from __future__ import annotations

import time
from typing import Any

from kitaru.contracts.records import BROKER_OPTION

__all__ = ["BROKER_KEY", "Renewal", "brokered_stack"]

BROKER_KEY = BROKER_OPTION
_MARGIN_SECONDS = 300.0  # renew this long before expiry (or at a quarter of the lifetime left, if shorter)


def brokered_stack(options: dict[str, Any] | None) -> str | None:
    """The stack whose server brokers these storage options' credentials, or ``None``."""
    return (options or {}).get(BROKER_KEY)


class Renewal:
    """Fetches a stack's brokered credentials from the server and says when to fetch them again."""

    def __init__(self, stack: str, service_url: str | None, api_key: str | None) -> None:
        self.stack, self.service_url, self.api_key = stack, service_url, api_key
        self.renew_at = 0.0

    def fetch(self) -> dict[str, Any]:
        """Fresh fsspec options for the stack's storage (``KitaruBackendError`` when the server cannot broker them)."""
        from kitaru._service import connect_service
        from kitaru.config import resolve_settings

        if self.service_url is None:
            settings = resolve_settings()
            self.service_url, self.api_key = settings.service_url, settings.api_key
        answer = connect_service(self.service_url, self.api_key).stack_credentials(self.stack)
        now = time.time()
        lifetime = max(answer["expires_at"] - now, 0.0)
        self.renew_at = answer["expires_at"] - min(_MARGIN_SECONDS, lifetime / 4)
        return dict(answer["storage_options"])

    def due(self) -> bool:
        return time.time() >= self.renew_at
