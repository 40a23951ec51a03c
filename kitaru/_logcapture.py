"""Capture of stdout, stderr and ``logging`` records of a flow body or a checkpoint attempt.

``sys.stdout``/``sys.stderr`` are wrapped once per process by a router that
tees writes to the sink of the current context (a context variable, so only
the thread running the flow body or the attempt is captured); a handler on the
root logger does the same for log records.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

_sink: contextvars.ContextVar[LogSink | None] = contextvars.ContextVar("kitaru_log_sink", default=None)
_install_lock = threading.Lock()


class LogSink:
    """Collects log entries for one source (``runner`` or ``step``)."""

    def __init__(
        self, exec_id: str, source: str, *, invocation_id: str | None = None, attempt: int | None = None, level: str = "INFO"
    ) -> None:
        self.exec_id = exec_id
        self.source = source
        self.invocation_id = invocation_id
        self.attempt = attempt
        self.level = logging.getLevelName(level) if isinstance(logging.getLevelName(level), int) else logging.INFO
        self._entries: list[dict[str, Any]] = []
        self._partial: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, level: str, message: str) -> None:
        entry = {
            "exec_id": self.exec_id,
            "timestamp": time.time(),
            "level": level,
            "message": message,
            "source": self.source,
            "invocation_id": self.invocation_id,
            "attempt": self.attempt,
        }
        with self._lock:
            self._entries.append(entry)

    def write_stream(self, stream: str, text: str) -> None:
        level = "INFO" if stream == "stdout" else "WARNING"
        if logging.getLevelName(level) < self.level:
            return
        buffered = self._partial.get(stream, "") + text
        *lines, rest = buffered.split("\n")
        self._partial[stream] = rest
        for line in lines:
            self.add(level, line)

    def drain(self) -> list[dict[str, Any]]:
        """Take the entries collected so far (flushing any partial line when ``final``)."""
        with self._lock:
            entries, self._entries = self._entries, []
        return entries

    def close(self) -> list[dict[str, Any]]:
        for stream, rest in list(self._partial.items()):
            if rest:
                self.add("INFO" if stream == "stdout" else "WARNING", rest)
        self._partial.clear()
        return self.drain()


class _StreamRouter:
    """Stands in for ``sys.stdout``/``sys.stderr``: writes through, and tees to the current sink."""

    def __init__(self, wrapped: TextIO, name: str) -> None:
        self._wrapped = wrapped
        self._name = name

    def write(self, text: str) -> int:
        sink = _sink.get()
        if sink is not None:
            sink.write_stream(self._name, text)
        return self._wrapped.write(text)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._wrapped, attr)


# Transport chatter (Kitaru's own HTTP calls in remote mode, Ray's internals) is not the user's log.
_IGNORED_LOGGERS = ("httpx", "httpx2", "httpcore", "ray", "urllib3", "asyncio")


class _SinkHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        sink = _sink.get()
        if sink is None or record.levelno < sink.level:
            return
        if record.levelno < logging.WARNING and record.name.split(".", 1)[0] in _IGNORED_LOGGERS:
            return
        try:
            sink.add(record.levelname, self.format(record))
        except Exception:  # noqa: BLE001 - logging must never break user code
            self.handleError(record)


_handler = _SinkHandler()
_handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _StreamRouter):
            sys.stdout = _StreamRouter(sys.stdout, "stdout")  # type: ignore[assignment]
        if not isinstance(sys.stderr, _StreamRouter):
            sys.stderr = _StreamRouter(sys.stderr, "stderr")  # type: ignore[assignment]
        root = logging.getLogger()
        if _handler not in root.handlers:
            if not root.handlers:
                # Keep the behaviour of Python's last-resort handler for users without logging config.
                fallback = logging.StreamHandler()
                fallback.setLevel(logging.WARNING)
                root.addHandler(fallback)
            root.addHandler(_handler)


class _RootLevel:
    """Lowers the root logger to the captured level while any capture is active, then restores it.

    Other handlers of the root logger are raised to the old level meanwhile, so
    what they print does not change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._saved: tuple[int, list[tuple[logging.Handler, int]]] | None = None

    def enter(self, level: int) -> None:
        with self._lock:
            self._active += 1
            root = logging.getLogger()
            if root.level <= level:
                return
            if self._saved is None:
                self._saved = (root.level, [(h, h.level) for h in root.handlers if h is not _handler])
            for handler, handler_level in self._saved[1]:
                handler.setLevel(max(handler_level, self._saved[0]))
            root.setLevel(level)

    def exit(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active or self._saved is None:
                return
            level, handlers = self._saved
            self._saved = None
            logging.getLogger().setLevel(level)
            for handler, handler_level in handlers:
                handler.setLevel(handler_level)


_root_level = _RootLevel()


@contextlib.contextmanager
def capture(sink: LogSink) -> Iterator[LogSink]:
    """Route this context's output and log records to ``sink``."""
    _install()
    _root_level.enter(sink.level)
    token = _sink.set(sink)
    try:
        yield sink
    finally:
        _sink.reset(token)
        _root_level.exit()
