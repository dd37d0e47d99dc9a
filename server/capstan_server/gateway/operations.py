"""What operators use next to the REST API on the gateway's port: `GET /metrics` (Prometheus),
`GET /livez` (the process answers), `GET /readyz` (it can serve: see `Operations.readiness`);
and the request id of every HTTP call (`X-Request-Id` in, or a new one; forwarded to gRPC as
`x-request-id` metadata and returned as the `X-Request-Id` answer header).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from capstan_server import metrics, request_ids

_REQUEST_ID = web.RequestKey("capstan_request_id", str)


@dataclass(frozen=True)
class Operations:
    """The server's side of the operator endpoints."""

    #: The metrics exposition (`metrics.exposition`).
    metrics: Callable[[], bytes]
    #: `{"ready": bool, "checks": {...}}`: registry reachable and release caches synced.
    readiness: Callable[[], Awaitable[dict[str, Any]]]

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/metrics", self._metrics, allow_head=False)
        app.router.add_get("/livez", _livez, allow_head=False)
        app.router.add_get("/readyz", self._readyz, allow_head=False)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics(), headers={"Content-Type": metrics.CONTENT_TYPE})

    async def _readyz(self, _request: web.Request) -> web.Response:
        state = await self.readiness()
        return web.json_response(state, status=200 if state.get("ready") else 503,
                                 dumps=lambda d: json.dumps(d, sort_keys=True))


async def _livez(_request: web.Request) -> web.Response:
    # Answering at all is the point: the event loop runs.
    return web.json_response({"status": "alive"})


def request_id(request: web.Request) -> str:
    """The request id of an HTTP call (set by `request_id_middleware`)."""
    return str(request.get(_REQUEST_ID, ""))


@web.middleware
async def request_id_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Give the call its request id, for its log lines and the gRPC call it makes."""
    rid = request_ids.accept(request.headers.get(request_ids.HEADER))
    request[_REQUEST_ID] = rid
    with request_ids.bound(rid):
        return await handler(request)


async def _answer_header(request: web.Request, response: web.StreamResponse) -> None:
    rid = request_id(request)
    if rid:
        response.headers[request_ids.HEADER] = rid


def install_request_ids(app: web.Application) -> None:
    """Request ids on every call of `app`; call before adding other middlewares."""
    app.middlewares.append(request_id_middleware)
    # On prepare, so streamed answers (WatchRelease) and error answers carry it too.
    app.on_response_prepare.append(_answer_header)
