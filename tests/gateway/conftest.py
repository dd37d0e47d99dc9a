"""Fixtures for the REST gateway tests: a plain-HTTP client (urllib, nothing Capstan-specific)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from capstan_server.threaded import ServerHandle


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, parsed JSON body (None when empty), headers."""

    status: int
    body: Any
    content_type: str
    text: str


class Rest:
    """Plain HTTP against one server: `rest.post("/api/releases", {...})`."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url
        self.headers = headers or {}

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if body is not None:
            data = json.dumps(body).encode()
        request = urllib.request.Request(
            self.base_url + path,
            method=method,
            data=data,
            headers={"Content-Type": "application/json", **self.headers, **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return _answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return _answer(error.code, error.headers, error.read())

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.call("POST", path, body, **kwargs)

    def put(self, path: str, body: Any = None, **kwargs: Any) -> Answer:
        return self.call("PUT", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Answer:
        return self.call("DELETE", path, **kwargs)


def _answer(status: int, headers: Any, raw: bytes) -> Answer:
    text = raw.decode()
    content_type = headers.get("Content-Type", "")
    body = json.loads(text) if text and content_type.startswith("application/json") else None
    return Answer(status, body, content_type, text)


@pytest.fixture
def rest(capstan_server: ServerHandle) -> Rest:
    """Plain HTTP to the `capstan_server` fixture's REST gateway."""
    return Rest(capstan_server.http_url)


@pytest.fixture
def rest_to() -> Callable[[ServerHandle], Rest]:
    """Plain HTTP to any server: ``rest_to(handle)``."""
    return lambda handle: Rest(handle.http_url)

