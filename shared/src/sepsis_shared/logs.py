"""Logging: one JSON line per event in production, plain text locally.

Configured once by each service's `create_app`. Records carry the request id. Callers log
sizes, hashes, timings and codes, never notes, vitals, prompts or patient ids.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from sepsis_shared.requestid import current_request_id

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


class RequestIdFilter(logging.Filter):
    """Stamp the current request id on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with any `extra=` fields kept."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
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
        return json.dumps(payload, default=str)


def configure_logging(*, service: str, level: str = "INFO", json_lines: bool = True) -> None:
    """Install one handler on the root logger (idempotent: replaces an earlier one)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_sepsis_handler", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._sepsis_handler = True  # type: ignore[attr-defined]  # marker to find our handler again
    handler.addFilter(RequestIdFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {service} [%(request_id)s] %(message)s")
        )
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's access log would print paths with query strings; ours is enough.
    logging.getLogger("uvicorn.access").disabled = True
