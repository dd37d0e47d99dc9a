"""Logging set-up for the server: one format switch (`json` or `text`) for every logger.

Structured fields travel on a record as `extra={"fields": {...}}`; the JSON formatter puts them
at the top level of the line, the text formatter appends them as `key=value` pairs, so a log
line reads the same to a person and to a log pipeline.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from capstan_server import request_ids

LogFormat = Literal["json", "text"]


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    out = dict(fields) if isinstance(fields, dict) else {}
    # Every line logged while serving a call names its request id (request_ids.py).
    request_id = getattr(record, "request_id", "")
    if request_id:
        out.setdefault("request_id", request_id)
    return out


class RequestIdFilter(logging.Filter):
    """Stamps each record with the request id current where it was logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_ids.current()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger message key=value ...`, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in _fields(record).items())
        if not pairs:
            return text
        # The traceback (if any) stays last so that the fields remain on the first line.
        head, sep, tail = text.partition("\n")
        return f"{head} {pairs}{sep}{tail}"


def _text_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or " " in text or '"' in text) else text


def configure_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Send every log record to stderr in the chosen format (replaces earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
