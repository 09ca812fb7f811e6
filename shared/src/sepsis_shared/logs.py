"""Logging: one JSON line per event in production, plain text locally.

Configured once by each service's `create_app`. Records carry the request id. Callers log
sizes, hashes, timings and codes, never notes, vitals, prompts or patient ids.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from sepsis_shared.requestid import current_request_id

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


class RequestIdFilter(logging.Filter):
    """Stamp the current request id on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


class _Clock:
    """Record times as text, the part down to the second worked out once per second."""

    def __init__(self, *, utc: bool) -> None:
        self.utc = utc
        self.second = -1
        self.prefix = ""
        self.suffix = "+00:00" if utc else ""

    def __call__(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self.second:
            if self.utc:
                self.prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            else:
                self.prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self.second = second
        return f"{self.prefix}.{int(record.msecs):03d}{self.suffix}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any `extra=` fields kept (a value JSON has no type for
    is written as its `str`)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.clock = _Clock(utc=True)

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.clock(record),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in payload:
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return _ENCODER.encode(payload).decode()


class TextFormatter(logging.Formatter):
    """One readable line per event: local time, level, service, request id, message (and the
    traceback, if any)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self.clock = _Clock(utc=False)

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{self.clock(record)} {record.levelname} {self.service} "
            f"[{getattr(record, 'request_id', '-')}] {record.getMessage()}"
        )
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


_ENCODER: Final = msgspec.json.Encoder(enc_hook=str)


def configure_logging(*, service: str, level: str = "INFO", json_lines: bool = True) -> None:
    """Install one handler on the root logger (idempotent: replaces an earlier one)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_sepsis_handler", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._sepsis_handler = True  # type: ignore[attr-defined]  # marker to find our handler again
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter(service) if json_lines else TextFormatter(service))
    root.addHandler(handler)
    # No line says which thread or process wrote it, nor from which source line: each record
    # would otherwise look them up (a system call for the process id), on every request.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None  # the documented opt-out
    root.setLevel(level.upper())
    # uvicorn's access log would print paths with query strings; ours is enough.
    logging.getLogger("uvicorn.access").disabled = True
