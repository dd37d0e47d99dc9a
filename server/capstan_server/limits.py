"""Request limits: every bound the server puts on what a caller sends, in one place.

The gateway (body size, JSON depth, path length) and the gRPC services (every request, whoever
sends it) read their limits from here, and the OpenAPI document states them, so a client learns
them from the spec. `LimitsInterceptor` checks each gRPC request message against `check_request`
before any servicer sees it: string lengths by field kind, integer bounds, the depth and size of
JSON values. Error messages echo what the caller sent only cut short (`clip`), so an error's
trailers stay far below gRPC's metadata limit whatever the input was.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from google.api import field_behavior_pb2
from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from capstan_server.errors import InvalidArgument
from capstan_server.handlers import messages_of, result_of, rewrap

# -- sizes ----------------------------------------------------------------------------------

#: One gRPC message, either way, on the server and (by default) in the client library: release
#: objects with many resources or large values outgrow gRPC's default of 4 MiB. The client's
#: `capstan.client.DEFAULT_MAX_MESSAGE_BYTES` is the same number (a test checks); both are
#: configurable (`capstan-server --max-message-bytes`, `capstan --max-message-bytes`).
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: A REST request body (values files can be large; aiohttp's default of 1 MiB is too small).
MAX_BODY_BYTES = 16 * 1024 * 1024
#: A REST request path (aiohttp itself refuses lines over 8 KiB with a plain-text answer).
MAX_PATH_CHARS = 2048
#: What aiohttp's HTTP parser accepts before the gateway sees a request (a longer request line
#: or header gets aiohttp's own plain-text 400): room for paths the gateway refuses in JSON.
MAX_REQUEST_LINE_BYTES = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024
#: Nesting of a JSON body or a values object. Protobuf's own limit is 100 message levels, and
#: each JSON level of a Struct takes two (Struct, Value), so anything deeper could not be sent on.
MAX_JSON_DEPTH = 32
#: Values: the YAML text of a request, and the encoded size of its `values_json`.
MAX_VALUES_BYTES = 8 * 1024 * 1024
#: Nodes (mappings, lists, scalars) of one expanded YAML text.
MAX_YAML_NODES = 1_000_000
#: What YAML aliases may add to a text once expanded, in bytes of JSON: aliases that save
#: typing stay far below; 350 bytes of nested aliases (9^6 of them) would add megabytes.
MAX_YAML_ALIAS_BYTES = 1024 * 1024
#: Nesting of any YAML the server reads (charts' CRD schemas nest deeply); user values are held
#: to MAX_JSON_DEPTH, since they travel as a protobuf Struct.
MAX_YAML_DEPTH = 200
#: A kubeconfig given to CreateCluster, and PEM CA certificates (a whole system bundle fits).
MAX_KUBECONFIG_BYTES = 1024 * 1024
MAX_PEM_BYTES = 1024 * 1024
#: Items of a repeated field of a request (e.g. the chart names of an OCI repository).
MAX_REPEATED_ITEMS = 1000
#: Characters of a caller's value echoed in an error message or detail. gRPC refuses trailers
#: over 16 KiB (8 KiB by default on some clients); an error carries at most a few echoes.
MAX_ECHO_CHARS = 200
#: A whole error message, and the encoded size of all its details.
MAX_ERROR_MESSAGE_CHARS = 2000
MAX_ERROR_DETAILS_BYTES = 4096


#: String lengths by what a field holds. Names and ids: releases (53), namespaces and clusters
#: (63), repositories, UUIDs, all within a DNS subdomain's 253.
MAX_NAME_CHARS = 253
#: Chart versions and version constraints (`^8.11`, `>=1.2 <2 || 3.x`): bounded, so that the
#: constraint parser's work is bounded too (`charts.semver`).
MAX_VERSION_CHARS = 256
#: Chart references `<repo>/<chart>`.
MAX_CHART_REF_CHARS = 512
#: Free text: descriptions, search terms, keywords.
MAX_DESCRIPTION_CHARS = 4096
#: Repository URLs.
MAX_URL_CHARS = 2048
#: Repository user names and passwords (tokens can be long).
MAX_CREDENTIAL_CHARS = 8192

#: The longest string of every string field of every request message, by field name. A string
#: field missing here fails `check_covered` (a test runs it over every request), so a new field
#: must be given a bound before it ships.
FIELD_MAX_CHARS: dict[str, int] = {
    "id": MAX_NAME_CHARS,
    "name": MAX_NAME_CHARS,
    "cluster": MAX_NAME_CHARS,
    "namespace": MAX_NAME_CHARS,
    "release_name": MAX_NAME_CHARS,
    "repo": MAX_NAME_CHARS,
    "type": MAX_NAME_CHARS,
    "version": MAX_VERSION_CHARS,
    "chart_name": MAX_CHART_REF_CHARS,
    "description": MAX_DESCRIPTION_CHARS,
    "search": MAX_DESCRIPTION_CHARS,
    "keyword": MAX_DESCRIPTION_CHARS,
    "url": MAX_URL_CHARS,
    "username": MAX_CREDENTIAL_CHARS,
    "password": MAX_CREDENTIAL_CHARS,
    "kubeconfig": MAX_KUBECONFIG_BYTES,
    "values": MAX_VALUES_BYTES,
    "ca_pem": MAX_PEM_BYTES,
    # Repeated: each item, and at most MAX_REPEATED_ITEMS of them.
    "charts": MAX_NAME_CHARS,
}

#: The longest timeout a request may ask for (one day), in seconds.
MAX_TIMEOUT_SECONDS = 86_400
#: The most revisions a release may keep (`history_max`).
MAX_HISTORY = 10_000
#: Page sizes of every list call.
MAX_PAGE_LIMIT = 1000
_INT32_MAX = 2**31 - 1

#: Inclusive (minimum, maximum) of every integer field of a request, by field name. Zero means
#: "the default" for all of them; negative numbers are never meaningful.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "limit": (0, MAX_PAGE_LIMIT),
    "offset": (0, _INT32_MAX),
    "timeout": (0, MAX_TIMEOUT_SECONDS),
    "history_max": (0, MAX_HISTORY),
    "max": (0, _INT32_MAX),
    "revision": (0, _INT32_MAX),
    # A threshold, not a wait: any age is meaningful.
    "stuck_after_seconds": (0, _INT32_MAX),
}


# -- echoes ---------------------------------------------------------------------------------


def clip(value: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`value` cut to `limit` characters, saying how much was left out."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}... ({len(value)} characters)"


def echo(value: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`value` quoted for an error message (repr), cut short first."""
    return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value)} chars)"


def clip_details(value: Any) -> Any:
    """A JSON-able error detail with every string in it clipped."""
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, dict):
        return {clip(str(k)): clip_details(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clip_details(v) for v in value]
    return value


# -- checks ---------------------------------------------------------------------------------


def json_depth(value: Any) -> int:
    """Nesting depth of a JSON value (a scalar is 0, `{}` and `[]` are 1); iterative."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


def check_json_depth(value: Any, what: str) -> None:
    depth = json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise InvalidArgument(
            f"{what} is nested too deeply: {depth} levels, at most {MAX_JSON_DEPTH} allowed",
            details=[{"field": what, "reason": "too deep", "max_depth": MAX_JSON_DEPTH}],
        )


def check_string(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(
            f"{field} is too long: {len(value)} characters, at most {limit} allowed "
            f"(starts {echo(value, 40)})",
            details=[{"field": field, "reason": "too long", "max_chars": limit}],
        )
    # No field means anything with a NUL in it (not names, URLs, YAML, PEM or free text), and
    # it would end a helm argument or an HTTP header short (Python refuses both outright).
    if "\x00" in value:
        raise InvalidArgument(
            f"{field} holds a NUL character",
            details=[{"field": field, "reason": "NUL character"}],
        )


def check_int(field: str, value: int) -> None:
    low, high = INT_BOUNDS[field]
    if not low <= value <= high:
        raise InvalidArgument(
            f"{field} must be between {low} and {high}, got {value}",
            details=[{"field": field, "reason": "out of range", "minimum": low, "maximum": high}],
        )


@functools.cache
def required_fields(descriptor: Descriptor) -> tuple[str, ...]:
    """The fields of a message marked `(google.api.field_behavior) = REQUIRED` in the protos."""
    return tuple(
        field.name
        for field in descriptor.fields
        if field_behavior_pb2.REQUIRED
        in field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    )


def check_request(message: Message) -> None:
    """Refuse (InvalidArgument) a request message that breaks a limit of this module, or that
    leaves a REQUIRED field unset (empty, or an enum's `_UNSPECIFIED`)."""
    for name in required_fields(message.DESCRIPTOR):
        if not getattr(message, name):
            raise InvalidArgument(
                f"{name} is required", details=[{"field": name, "reason": "required"}]
            )
    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING and field.is_repeated:
            if len(value) > MAX_REPEATED_ITEMS:
                raise InvalidArgument(
                    f"{field.name} has {len(value)} items, at most {MAX_REPEATED_ITEMS} allowed",
                    details=[{"field": field.name, "reason": "too many items"}],
                )
            for item in value:
                check_string(field.name, item, FIELD_MAX_CHARS[field.name])
        elif field.type == FieldDescriptor.TYPE_STRING:
            check_string(field.name, value, FIELD_MAX_CHARS[field.name])
        elif field.name in INT_BOUNDS:
            check_int(field.name, value)
        elif isinstance(value, struct_pb2.Struct):
            _check_struct(field.name, value)


def _check_struct(field: str, struct: struct_pb2.Struct) -> None:
    size = struct.ByteSize()
    if size > MAX_VALUES_BYTES:
        raise InvalidArgument(
            f"{field} is too large: {size} bytes, at most {MAX_VALUES_BYTES} allowed",
            details=[{"field": field, "reason": "too large", "max_bytes": MAX_VALUES_BYTES}],
        )
    check_json_depth(json_format.MessageToDict(struct), field)


_INT_CPP_TYPES = (FieldDescriptor.CPPTYPE_INT32, FieldDescriptor.CPPTYPE_INT64)


def check_covered(requests: list[Descriptor]) -> None:
    """Raise ValueError naming a request field that has no limit in this module."""
    for descriptor in requests:
        for field in descriptor.fields:
            if field.type == FieldDescriptor.TYPE_STRING and field.name not in FIELD_MAX_CHARS:
                raise ValueError(f"{descriptor.full_name}.{field.name} has no FIELD_MAX_CHARS")
            if field.cpp_type in _INT_CPP_TYPES and field.name not in INT_BOUNDS:
                raise ValueError(f"{descriptor.full_name}.{field.name} has no INT_BOUNDS")


# -- the gRPC interceptor -------------------------------------------------------------------

if TYPE_CHECKING:
    from capstan_server.handlers import Continuation
    _Context = grpc.aio.ServicerContext[Any, Any]

#: Services whose requests are checked (health and reflection are grpc's own).
_CHECKED_PREFIX = "/capstan."


class _Undecodable:
    """A request whose bytes protobuf refused (e.g. nested past its 100 levels)."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    # grpc answers a deserializer's exception with UNKNOWN; the caller sent a bad request.
    if deserializer is None:
        return None
    parse = deserializer

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return _Undecodable(exc)

    return deserialize


def _check(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgument(
            f"the request cannot be decoded (nested too deeply?): {clip(str(request.error))}"
        )
    check_request(request)


class LimitsInterceptor(grpc.aio.ServerInterceptor):
    """Checks each Capstan request with `check_request` before the servicer runs.

    It sits inside `interceptors.RpcInterceptor`, which turns the InvalidArgument it raises
    into the call's status, so gRPC and REST callers get the same answer. A request protobuf
    cannot decode is INVALID_ARGUMENT too.
    """

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or not handler_call_details.method.startswith(_CHECKED_PREFIX):
            return handler
        return rewrap(handler, unary=_checked_unary, stream=_checked_stream,
                      request_deserializer=_tolerant(handler.request_deserializer))


def _checked_unary(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Awaitable[Any]]:
    async def unary(request: Any, context: _Context) -> Any:
        _check(request)
        return await result_of(behavior, request, context)

    return unary


def _checked_stream(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    async def stream(request: Any, context: _Context) -> Any:
        _check(request)
        async for message in messages_of(behavior(request, context)):
            yield message

    return stream
