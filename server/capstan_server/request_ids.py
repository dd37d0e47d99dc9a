"""The request id of the call being served: taken from the caller's `x-request-id` (HTTP header
or gRPC metadata) when it is a sane token, else generated; carried in a context variable so that
every log line, audit line and error answer made while serving the call can name it.

The RPC interceptor binds it for each call (`bind`), the REST gateway forwards it to gRPC and
returns it in its `X-Request-Id` answer header; `logs.py` adds it to every log line.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

#: The HTTP header and (lower-case) gRPC metadata key.
HEADER = "X-Request-Id"
METADATA_KEY = "x-request-id"

_current: ContextVar[str] = ContextVar("capstan_request_id", default="")
#: What a caller's id may look like: it ends up in logs, so no spaces, quotes or newlines.
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def current() -> str:
    """The id of the call being served ("" outside one)."""
    return _current.get()


def generate() -> str:
    return uuid.uuid4().hex


def accept(incoming: str | None) -> str:
    """The caller's id if it is acceptable, else a new one."""
    if incoming and _ACCEPTED.match(incoming):
        return incoming
    return generate()


def bind(request_id: str) -> None:
    """Make `request_id` the current id for the rest of the current task (an RPC, an HTTP
    request: each runs in a task of its own, so the id never reaches another call)."""
    _current.set(request_id)


@contextlib.contextmanager
def bound(request_id: str) -> Iterator[str]:
    """Make `request_id` the current id for the block (and the tasks it starts)."""
    token = _current.set(request_id)
    try:
        yield request_id
    finally:
        _current.reset(token)
