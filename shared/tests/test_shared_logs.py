"""Log lines: one JSON object per event (production) or one readable line (local)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from sepsis_shared.logs import configure_logging
from sepsis_shared.requestid import _request_id


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """The root handler's output, for one test; logging as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    flags = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    out = io.StringIO()
    yield out
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.logThreads, logging.logProcesses, logging.logMultiprocessing = flags


def _install(stream: io.StringIO, *, json_lines: bool) -> None:
    configure_logging(service="svc", level="INFO", json_lines=json_lines)
    handler = logging.getLogger().handlers[-1]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)


def test_json_lines_carry_the_event_the_request_id_and_extra_fields(
    stream: io.StringIO,
) -> None:
    _install(stream, json_lines=True)
    log = logging.getLogger("test.json")
    token = _request_id.set("req-42")
    try:
        log.info(
            "scored %d patients",
            3,
            extra={"route": "POST /classify", "ms": 1.5, "path": Path("/x"), "n": Decimal("2")},
        )
    finally:
        _request_id.reset(token)
    log.warning("outside a request")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "INFO"
    assert first["service"] == "svc"
    assert first["logger"] == "test.json"
    assert first["message"] == "scored 3 patients"
    assert first["request_id"] == "req-42"
    assert first["route"] == "POST /classify"
    assert first["ms"] == 1.5
    # a value JSON has no type for is written as text
    assert first["path"] == "/x"
    assert first["n"] == "2"
    assert second["request_id"] == "-"
    assert second["level"] == "WARNING"
    # never the bookkeeping of the record itself
    assert not {"args", "msg", "levelno", "created", "process", "thread"} & first.keys()


def test_json_lines_stay_json_whatever_the_extra_values(stream: io.StringIO) -> None:
    _install(stream, json_lines=True)
    odd = {"n": 2**70, "keys": {1: "one", (2, 3): "pair"}, "nan": float("nan")}
    logging.getLogger("test.odd").info("odd", extra=odd)
    payload = json.loads(stream.getvalue())
    assert payload["n"] == 2**70
    assert payload["keys"] == {"1": "one", "(2, 3)": "pair"}
    assert payload["nan"] is None


def test_json_time_is_utc_to_the_millisecond(stream: io.StringIO) -> None:
    _install(stream, json_lines=True)
    log = logging.getLogger("test.time")
    before = datetime.now(UTC)
    for _ in range(3):  # the second is worked out once and reused
        log.info("tick")
    after = datetime.now(UTC)
    for line in stream.getvalue().splitlines():
        ts = json.loads(line)["ts"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", ts), ts
        when = datetime.fromisoformat(ts)
        assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= when <= after


def test_json_lines_hold_the_traceback(stream: io.StringIO) -> None:
    _install(stream, json_lines=True)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("test.exc").exception("failed")
    (line,) = stream.getvalue().splitlines()
    payload = json.loads(line)
    assert payload["message"] == "failed"
    assert "ValueError: boom" in payload["exc_info"]


def test_text_lines_are_readable(stream: io.StringIO) -> None:
    _install(stream, json_lines=False)
    token = _request_id.set("abc")
    try:
        logging.getLogger("test.text").info("hello %s", "there")
        try:
            raise KeyError("missing")
        except KeyError:
            logging.getLogger("test.text").exception("lookup failed")
    finally:
        _request_id.reset(token)
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO svc \[abc\] hello there", lines[0]
    ), lines[0]
    assert lines[1].endswith("ERROR svc [abc] lookup failed")
    assert "KeyError: 'missing'" in stream.getvalue()


def test_records_skip_the_thread_process_and_caller_lookups(stream: io.StringIO) -> None:
    _install(stream, json_lines=True)
    record = logging.getLogger("test.cheap").makeRecord(
        "test.cheap", logging.INFO, "f", 1, "m", (), None
    )
    assert record.process is None
    assert record.thread is None
    assert record.processName is None
