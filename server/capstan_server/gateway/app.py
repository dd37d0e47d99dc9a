"""The REST gateway: an aiohttp application that forwards each routed request to the gRPC server.

Unary calls are served in-process by the server's own handlers behind its own interceptors
(`in_process.py`); streams go over a loopback `grpc.aio` channel to the server's gRPC port.
Either way REST and gRPC take exactly one path (interceptors, logging, error mapping). Errors
come back as the JSON body `{code, status, message, details}` with the HTTP status of
`errors.http_status`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio
from aiohttp import web
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2

from capstan.client.messages import whole_numbers
from capstan_server import request_ids
from capstan_server.errors import http_status
from capstan_server.gateway.in_process import InProcessCalls, UnaryCall
from capstan_server.gateway.json_body import dumps, json_response
from capstan_server.gateway.kubeserver import (
    CAPSTAN,
    KUBESERVER,
    KubeserverAnswers,
    adapt_request,
    kubeserver_errors,
)
from capstan_server.gateway.operations import Operations, install_request_ids, request_id
from capstan_server.gateway.routes import Route
from capstan_server.gateway.row_memo import RowMemo
from capstan_server.gateway.transcode import (
    TranscodeError,
    build_request,
    message_class,
    response_json,
)
from capstan_server.interceptors import FORWARDED_FOR
from capstan_server.limits import MAX_BODY_BYTES, MAX_ERROR_MESSAGE_CHARS, clip

log = logging.getLogger("capstan.gateway")

#: HTTP headers passed through to the gRPC call as metadata (HTTP name -> metadata key).
FORWARDED_HEADERS = {"Authorization": "authorization", "X-Auth-Token": "x-auth-token"}
NDJSON = "application/x-ndjson"
_DETAILS_KEY = "grpc-status-details-bin"
#: Bodies larger than this are parsed on a worker thread, so the event loop keeps serving.
_THREAD_PARSE_BYTES = 256 * 1024

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Extra metadata for the gRPC call of one HTTP request (the auth set-up's `forward`).
Forward = Callable[[web.Request], Sequence[tuple[str, str]]]


def error_body(http_code: int, status: str, message: str, details: Sequence[Any] = ()) -> Any:
    """The JSON body of every error answer."""
    return {"code": http_code, "status": status, "message": message, "details": list(details)}


def error_response(
    http_code: int, status: str, message: str, details: Sequence[Any] = ()
) -> web.Response:
    """The gateway's own error answers (the server's come with their request id already)."""
    rid = request_ids.current()
    tagged = [*details, *([{"request_id": rid}] if rid else [])]
    body = error_body(http_code, status, message, tagged)
    return json_response(body, status=http_code)


def rpc_error_body(error: grpc.aio.AioRpcError) -> Any:
    """The error body for a failed gRPC call, with its rich details decoded."""
    code = error.code()
    return error_body(http_status(code), code.name, error.details() or "", _rich_details(error))


def _rpc_error_response(error: grpc.aio.AioRpcError) -> web.Response:
    body = rpc_error_body(error)
    response = json_response(body, status=body["code"])
    if error.code() is grpc.StatusCode.UNAUTHENTICATED:
        response.headers["WWW-Authenticate"] = 'Bearer realm="capstan"'
    retry = [d["retry_after_seconds"] for d in body["details"]
             if isinstance(d, dict) and "retry_after_seconds" in d]
    if retry:
        # A refusal for load (429) says when to come back, as HTTP clients expect it.
        response.headers["Retry-After"] = str(int(retry[0]))
    return response


def _rich_details(error: grpc.aio.AioRpcError) -> list[Any]:
    for key, value in error.trailing_metadata() or ():
        if key == _DETAILS_KEY and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            return [_detail_json(detail) for detail in status.details]
    return []


def _detail_json(detail: Any) -> Any:
    struct = struct_pb2.Struct()
    if detail.Unpack(struct):
        return whole_numbers(json_format.MessageToDict(struct))
    try:
        return json_format.MessageToDict(detail, preserving_proto_field_name=True)
    except (TypeError, KeyError, json_format.Error):
        return {"@type": detail.type_url}


class Gateway:
    """Builds the aiohttp application for a route table, a loopback channel and, when the
    server runs in this process, its in-process calls (`local`)."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        routes: Sequence[Route],
        *,
        is_ready: Callable[[], bool],
        local: InProcessCalls | None = None,
        openapi: dict[str, Any],
        operations: Operations | None = None,
        middlewares: Sequence[Any] = (),
        forward: Forward | None = None,
        dialect: str = CAPSTAN,
    ) -> None:
        self._middlewares = list(middlewares)
        self._channel = channel
        self._local = local
        self._forward = forward
        #: `--rest-dialect`: kubeserver's answers and error bodies when KUBESERVER.
        self._dialect = dialect
        self._answers = KubeserverAnswers(channel) if dialect == KUBESERVER else None
        #: Rows' JSON by their bytes, for Capstan's own answers (kubeserver's reshape them).
        self._rows = RowMemo()
        self._routes = list(routes)
        self._is_ready = is_ready
        self._openapi = openapi
        self._operations = operations

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        install_request_ids(app)
        # The given middlewares (the guard) wrap the error mapping, so that they see, and can
        # add headers to, every answer, errors included; kubeserver's error bodies wrap them all.
        if self._answers is not None:
            app.middlewares.append(kubeserver_errors)
        app.middlewares.extend([*self._middlewares, _json_errors])
        app.router.add_get("/healthz", self._healthz, allow_head=False)
        if self._operations is not None:
            self._operations.add_to(app)
        app.router.add_get("/openapi.json", self._openapi_json, allow_head=False)
        for route in self._routes:
            app.router.add_route(route.http_method, route.router_path, self._handler(route))
        return app

    async def _healthz(self, _request: web.Request) -> web.Response:
        if self._is_ready():
            return web.json_response({"status": "SERVING"})
        return web.json_response({"status": "NOT_SERVING"}, status=503)

    async def _openapi_json(self, _request: web.Request) -> web.Response:
        return web.json_response(self._openapi)

    def _handler(self, route: Route) -> _Handler:
        response_type = message_class(route.method.output_type)
        serialize: Callable[[Message], bytes] = _serialize
        if route.server_streaming:
            stream_call = self._channel.unary_stream(
                route.grpc_path,
                request_serializer=serialize,
                response_deserializer=response_type.FromString,
            )

            async def stream(request: web.Request) -> web.StreamResponse:
                message = await _request_message(route, request, self._dialect)
                call = stream_call(message, metadata=self._metadata(request))
                return await _forward_stream(route, request, call)

            return stream

        # Capstan's answers are read from the wire (row_memo); kubeserver's reshape them.
        deserialize = _raw if self._answers is None else response_type.FromString
        unary_call: UnaryCall
        if self._local is not None and self._local.serves(route.grpc_path):
            unary_call = self._local.unary_unary(route.grpc_path, deserialize)
        else:
            unary_call = self._channel.unary_unary(
                route.grpc_path, request_serializer=serialize, response_deserializer=deserialize)

        async def unary(request: web.Request) -> web.StreamResponse:
            message = await _request_message(route, request, self._dialect)
            metadata = self._metadata(request)
            try:
                answer: Any = await unary_call(message, metadata=metadata)
            except grpc.aio.AioRpcError as exc:
                return _rpc_error_response(exc)
            if self._answers is None:
                return json_response(self._rows.response_json(route, response_type, answer))
            data = await self._answers.answer(route, response_json(route, answer), metadata)
            return json_response(data)

        return unary

    def _metadata(self, request: web.Request) -> tuple[tuple[str, str], ...]:
        extra = tuple(self._forward(request)) if self._forward is not None else ()
        return _metadata(request) + extra


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _raw(wire: bytes) -> bytes:
    return wire


async def _request_message(route: Route, request: web.Request, dialect: str) -> Message:
    # A body-less route may still get one (climc's DELETE); `adapt_request` reads it as query.
    body = await request.read() if route.body or request.body_exists else b""
    args = (route, request.match_info, list(request.query.items()), body, dialect == KUBESERVER)
    try:
        if len(body) > _THREAD_PARSE_BYTES:
            return await asyncio.to_thread(_build, *args)
        return _build(*args)
    except TranscodeError as exc:
        raise _BadRequest(str(exc)) from None


def _build(
    route: Route,
    path_params: Mapping[str, str],
    query: list[tuple[str, str]],
    body: bytes,
    lenient: bool,
) -> Message:
    """kubeserver's request forms made the documented ones, then the request message."""
    query, body = adapt_request(route, query, body, lenient=lenient)
    return build_request(route, path_params, query, body)


class _Unsendable(Exception):
    """A credential header gRPC metadata cannot carry (answered 401 UNAUTHENTICATED)."""


def _metadata(request: web.Request) -> tuple[tuple[str, str], ...]:
    metadata = []
    for header, key in FORWARDED_HEADERS.items():
        value = request.headers.get(header)
        if value is None:
            continue
        # gRPC metadata holds printable ASCII only; anything else is no credential we issued.
        if not all(" " <= ch <= "~" for ch in value):
            raise _Unsendable(f"malformed credential: the {header} header is not printable ASCII")
        metadata.append((key, value))
    if request.remote:
        metadata.append((FORWARDED_FOR, request.remote))
    metadata.append((request_ids.METADATA_KEY, request_id(request)))
    return tuple(metadata)


async def _forward_stream(
    route: Route, request: web.Request, call: grpc.aio.UnaryStreamCall[Any, Any]
) -> web.StreamResponse:
    """Newline-delimited JSON, one message per line.

    The first message is awaited before answering, so that an error at the start (an unknown
    release, say) still gets its proper HTTP status; an error later in the stream can only be
    reported in-band, as a last line `{"error": {...}}`.
    """
    try:
        first = await call.read()
    except grpc.aio.AioRpcError as exc:
        return _rpc_error_response(exc)
    response = web.StreamResponse(headers={"Content-Type": NDJSON})
    await response.prepare(request)
    message: Any = first
    try:
        while message is not grpc.aio.EOF:
            await response.write(dumps(response_json(route, message)) + b"\n")
            message = await call.read()
        await response.write_eof()
    except grpc.aio.AioRpcError as exc:
        await response.write(dumps({"error": rpc_error_body(exc)}) + b"\n")
        await response.write_eof()
    except ConnectionResetError:
        # The HTTP client went away; ending the gRPC call (below) is all there is to do.
        pass
    finally:
        call.cancel()
    return response


#: gRPC code names for the gateway's own HTTP errors (no route, wrong method, body too large).
_HTTP_ERROR_CODES = {
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


class _BadRequest(Exception):
    """A request the gateway refuses before calling gRPC (answered 400 INVALID_ARGUMENT)."""


@web.middleware
async def _json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Give the gateway's own refusals (bad JSON, no such route, ...) the common error body."""
    try:
        return await handler(request)
    except _BadRequest as exc:
        message = clip(str(exc), MAX_ERROR_MESSAGE_CHARS)
        return error_response(400, grpc.StatusCode.INVALID_ARGUMENT.name, message)
    except _Unsendable as exc:
        response = error_response(401, grpc.StatusCode.UNAUTHENTICATED.name, str(exc))
        response.headers["WWW-Authenticate"] = 'Bearer realm="capstan"'
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        status = _HTTP_ERROR_CODES.get(exc.status) or (
            grpc.StatusCode.INVALID_ARGUMENT if exc.status < 500 else grpc.StatusCode.INTERNAL
        )
        message = f"{exc.reason}: {request.method} {request.path}"
        response = error_response(exc.status, status.name, message)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unexpected error in the gateway for %s %s", request.method, request.path)
        message = "internal error in the REST gateway"
        return error_response(500, grpc.StatusCode.INTERNAL.name, message)

