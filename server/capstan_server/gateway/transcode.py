"""HTTP request <-> protobuf message, following google.api.http's mapping rules.

A request message is filled from, in order of increasing precedence: query parameters, the
JSON body (the whole message for `body: "*"`, one field otherwise) and path variables. Query
parameters are accepted with `body: "*"` too (google.api.http would not), so that a `PUT` can
still be narrowed with `?cluster=`. JSON names are the proto field names (snake_case); the
camelCase JSON names are accepted as well because `json_format` accepts them.

Responses are rendered by `capstan.client.messages.to_dict`, the one JSON encoding the CLI and
the client library use too (its docstring has the rules: defaults present, unset messages null,
integral Struct numbers as integers, JSON-text fields inlined).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from capstan.client.messages import to_dict
from capstan_server.gateway.routes import Route
from capstan_server.limits import MAX_JSON_DEPTH, json_depth

#: Well-known types whose JSON form is a string, so they may come from a query parameter.
_STRING_JSON_TYPES = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
    }
)

_INT_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_SFIXED64,
    }
)
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
_TOO_DEEP = f"the JSON body is nested too deeply: at most {MAX_JSON_DEPTH} levels are allowed"


class TranscodeError(ValueError):
    """The HTTP request cannot be turned into the RPC's request message (answered with 400)."""


def message_class(descriptor: Descriptor) -> type[Message]:
    """The generated class of a message type."""
    cls: type[Message] = message_factory.GetMessageClass(descriptor)
    return cls


def build_request(
    route: Route,
    path_params: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    body: bytes,
) -> Message:
    """The request message for `route` from the parts of an HTTP request."""
    descriptor = route.method.input_type
    request = message_class(descriptor)()

    from_query: dict[str, Any] = {}
    for key, value in query:
        _assign(descriptor, from_query, key, value, source="query parameter")
    unbindable = route.bound_fields & from_query.keys()
    if unbindable:
        raise TranscodeError(f"{sorted(unbindable)[0]!r} is given by the path, not the query")
    _parse(from_query, request)

    if route.body and body.strip():
        _parse(_body_json(route, descriptor, body), request)

    from_path: dict[str, Any] = {}
    for variable in route.variables:
        _assign(
            descriptor,
            from_path,
            variable.field_path,
            path_params[variable.match_name],
            source="path variable",
        )
    _parse(from_path, request)
    return request


def _body_json(route: Route, descriptor: Descriptor, body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TranscodeError(f"malformed JSON body: {exc}") from None
    except RecursionError:
        raise TranscodeError(_TOO_DEEP) from None
    if json_depth(data) > MAX_JSON_DEPTH:
        raise TranscodeError(_TOO_DEEP)
    if route.body != "*":
        data = {route.body: data}
    if not isinstance(data, dict):
        raise TranscodeError(f"the JSON body must be an object, not {type(data).__name__}")
    unknown = _unknown_field(descriptor, data, "")
    if unknown:
        raise TranscodeError(unknown)
    nulls = sorted(key for key, value in data.items() if value is None)
    if nulls:
        # Proto3 JSON would read null as "the default"; the OpenAPI document does not allow
        # it, so neither does the gateway (a JSON null inside values_json is a value, kept).
        raise TranscodeError(f"field {nulls[0]!r} must not be null; leave it out instead")
    for field in route.bound_fields & data.keys():
        # The path decides; a body repeating it is fine, a body contradicting it is ignored.
        del data[field]
    return data


#: Strings longer than this are set directly rather than through json_format, whose check for
#: unpaired surrogates is a regular expression that takes ~0.6 s on 5 MB of values.
_DIRECT_STRING_CHARS = 4096


def _parse(data: dict[str, Any], request: Message) -> None:
    if not data:
        return
    direct: dict[str, str] = {}
    descriptor = cast(Descriptor, request.DESCRIPTOR)
    for key, value in list(data.items()):
        field = _field(descriptor, key)
        if (
            field is not None
            and field.type == FieldDescriptor.TYPE_STRING
            and not field.is_repeated
            and isinstance(value, str)
            and len(value) > _DIRECT_STRING_CHARS
        ):
            direct[field.name] = data.pop(key)
    try:
        json_format.ParseDict(data, request)
    except json_format.ParseError as exc:
        # json_format's messages say which field failed; drop its trailing hint about camelCase.
        raise TranscodeError(str(exc).split("\n", 1)[0]) from None
    for name, text in direct.items():
        try:
            text.encode("utf-8")  # what json_format's check is for, in C
        except UnicodeEncodeError:
            raise TranscodeError(f"field {name!r} holds an unpaired surrogate") from None
        setattr(request, name, text)


def _unknown_field(descriptor: Descriptor, data: Mapping[str, Any], prefix: str) -> str:
    """A message naming the first key of `data` that `descriptor` has no field for, or ""."""
    for key, value in data.items():
        field = _field(descriptor, key)
        path = f"{prefix}{key}"
        if field is None:
            known = ", ".join(f.name for f in descriptor.fields)
            where = f" in {prefix.rstrip('.')!r}" if prefix else ""
            return f"unknown field {path!r}{where} of {descriptor.name}; known fields: {known}"
        sub = field.message_type
        if sub is None or _is_well_known(sub) or sub.GetOptions().map_entry:
            continue
        items = value if field.is_repeated and isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                found = _unknown_field(sub, item, f"{path}.")
                if found:
                    return found
    return ""


def _is_well_known(message: Descriptor) -> bool:
    return message.full_name.startswith("google.protobuf.")


def _field(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    field = descriptor.fields_by_name.get(name)
    if field is None:
        field = next((f for f in descriptor.fields if f.json_name == name), None)
    return field


def _assign(
    descriptor: Descriptor, data: dict[str, Any], field_path: str, raw: str, *, source: str
) -> None:
    """Set `field_path` (dotted) in the JSON dict `data` from the text `raw`."""
    names = field_path.split(".")
    target = data
    for depth, name in enumerate(names):
        field = _field(descriptor, name)
        if field is None:
            raise TranscodeError(f"unknown {source} {field_path!r} for {descriptor.name}")
        last = depth == len(names) - 1
        sub = field.message_type
        if not last:
            if sub is None or field.is_repeated or sub.full_name.startswith("google.protobuf."):
                raise TranscodeError(f"{source} {field_path!r}: {name!r} is not a message")
            target = target.setdefault(field.name, {})
            descriptor = sub
            continue
        value = _scalar(field, raw, f"{source} {field_path!r}")
        if field.is_repeated:
            target.setdefault(field.name, []).append(value)
        else:
            target[field.name] = value


def _scalar(field: FieldDescriptor, raw: str, what: str) -> Any:
    """The JSON value for `raw` text given for `field` (bools true/false/1/0, ints, ...)."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_BOOL:
        try:
            return _BOOLS[raw.strip().lower()]
        except KeyError:
            raise TranscodeError(f"{what}: expected true/false/1/0, got {raw!r}") from None
    if kind in _INT_TYPES:
        try:
            return int(raw)
        except ValueError:
            raise TranscodeError(f"{what}: expected an integer, got {raw!r}") from None
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        try:
            return float(raw)
        except ValueError:
            raise TranscodeError(f"{what}: expected a number, got {raw!r}") from None
    if kind == FieldDescriptor.TYPE_ENUM:
        return int(raw) if raw.lstrip("-").isdigit() else raw
    message = field.message_type
    if message is not None and message.full_name not in _STRING_JSON_TYPES:
        raise TranscodeError(f"{what}: a {message.name} cannot be given as text")
    return raw


def message_json(message: Message) -> dict[str, Any]:
    """A message as the REST API shows it: the one JSON encoding of `capstan.client.messages`
    (shared with the CLI and the client library's `to_dict`)."""
    return to_dict(message)


def response_json(route: Route, message: Message) -> Any:
    """The JSON answer of `route`: the whole message, or its `response_body` field."""
    data = message_json(message)
    return data[route.response_body] if route.response_body else data
