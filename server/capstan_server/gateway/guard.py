"""The gateway's rules against forged and oversized requests, as one aiohttp middleware.

A web page can make a browser send requests to the gateway (on loopback, or on a name it
controls that resolves to the gateway: DNS rebinding). Browsers always send `Origin` on
cross-site writes and cannot send `application/json` without asking first (CORS preflight), so:

- a write (POST, PUT, PATCH, DELETE) whose `Origin` is not allowed (`--cors-allow-origin`, none
  by default) is refused with 403; requests without `Origin` (curl, scripts, the gRPC clients)
  are not browsers' and pass;
- a request body must be `application/json` (415 otherwise); a write without a body is the
  empty request `{}`, e.g. `POST /api/repos/{id}/sync`;
- with `--allowed-host` given, a `Host` not listed is refused with 403 (against DNS rebinding);
- a path longer than `limits.MAX_PATH_CHARS` is refused with 414.

Every refusal has the gateway's JSON error body. Allowed origins get CORS headers and answers
to preflight requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass

import grpc
from aiohttp import hdrs, web

from capstan_server.gateway.app import error_response
from capstan_server.limits import MAX_PATH_CHARS, echo

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Middleware = Callable[[web.Request, _Handler], Awaitable[web.StreamResponse]]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"
#: Headers a browser may send cross-origin once an origin is allowed.
_ALLOW_HEADERS = "Authorization, Content-Type, X-Auth-Token"
_ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE"
#: How long a browser may cache a preflight answer, in seconds.
_PREFLIGHT_MAX_AGE = "600"


@dataclass(frozen=True)
class GuardOptions:
    """`allow_origins`: origins (`https://ui.example.com`) allowed to write, `*` for any;
    `allowed_hosts`: host names (`capstan.example.com`, `127.0.0.1`) the gateway answers as,
    any when empty."""

    allow_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.allow_origins or origin in self.allow_origins

    def host_allowed(self, host: str) -> bool:
        return not self.allowed_hosts or _host_name(host) in {
            _host_name(h) for h in self.allowed_hosts
        }


def _host_name(host: str) -> str:
    """`Host` without its port, lower-case (`[::1]:8080` -> `[::1]`)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _refuse(http_code: int, code: grpc.StatusCode, message: str) -> web.Response:
    return error_response(http_code, code.name, message)


def guard_middleware(options: GuardOptions) -> _Middleware:
    """The middleware enforcing the module's rules with `options`."""

    @web.middleware
    async def guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
        path = request.rel_url.raw_path  # the query is bounded field by field
        if len(path) > MAX_PATH_CHARS:
            return _refuse(
                414,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request path too long: {len(path)} characters, at most "
                f"{MAX_PATH_CHARS} allowed",
            )
        host = request.headers.get(hdrs.HOST, "")
        if not options.host_allowed(host):
            return _refuse(
                403,
                grpc.StatusCode.PERMISSION_DENIED,
                f"host {echo(host)} is not allowed (capstan-server --allowed-host)",
            )
        origin = request.headers.get(hdrs.ORIGIN)
        if request.method == "OPTIONS" and origin is not None:
            return _preflight(options, origin)
        writes = request.method in WRITE_METHODS
        if origin is not None and writes and not options.origin_allowed(origin):
            return _refuse(
                403,
                grpc.StatusCode.PERMISSION_DENIED,
                f"writes from origin {echo(origin)} are not allowed "
                "(capstan-server --cors-allow-origin)",
            )
        if request.body_exists and request.content_type != JSON:
            return _refuse(
                415,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request body must be {JSON}, not {echo(request.content_type)}",
            )
        if request.body_exists and (request.charset or "utf-8").lower() != "utf-8":
            return _refuse(
                415,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request body must be UTF-8, not {echo(request.charset or '')}",
            )
        response = await handler(request)
        if origin is not None and options.origin_allowed(origin):
            _cors_headers(response.headers, origin)
        return response

    return guard


def _preflight(options: GuardOptions, origin: str) -> web.Response:
    if not options.origin_allowed(origin):
        return _refuse(
            403,
            grpc.StatusCode.PERMISSION_DENIED,
            f"origin {echo(origin)} is not allowed (capstan-server --cors-allow-origin)",
        )
    response = web.Response(status=204)
    _cors_headers(response.headers, origin)
    response.headers["Access-Control-Allow-Methods"] = _ALLOW_METHODS
    response.headers["Access-Control-Allow-Headers"] = _ALLOW_HEADERS
    response.headers["Access-Control-Max-Age"] = _PREFLIGHT_MAX_AGE
    return response


def _cors_headers(headers: MutableMapping[str, str], origin: str) -> None:
    headers["Access-Control-Allow-Origin"] = origin
    headers["Vary"] = "Origin"
