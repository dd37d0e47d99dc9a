"""The OpenAPI 3.1 document of the REST API, generated from the same routes and descriptors.

Descriptions are the proto comments. The generated `_pb2` modules drop them, so they are read
from `capstan/v1/descriptor_set.binpb`, a descriptor set with source info that `make protos`
writes next to the stubs; without it the document still lists every path and schema, only
without prose.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from capstan.client.messages import JSON_TEXT_SUFFIX, LIST_WRAPPERS
from capstan_server.gateway.openapi_bounds import field_bounds, is_request, required
from capstan_server.gateway.routes import Route

log = logging.getLogger(__name__)

DESCRIPTOR_SET_PACKAGE = "capstan.v1"
DESCRIPTOR_SET_NAME = "descriptor_set.binpb"

_REF = "#/components/schemas/"
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # Proto3 JSON writes 64-bit integers as strings.
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.Int32Value": {"type": ["integer", "null"]},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"]},
    "google.protobuf.Int64Value": {"type": ["string", "null"]},
    "google.protobuf.UInt64Value": {"type": ["string", "null"]},
    "google.protobuf.DoubleValue": {"type": ["number", "null"]},
    "google.protobuf.FloatValue": {"type": ["number", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "format": "byte"},
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error: the gRPC status of the call, mapped to its HTTP status.",
    "required": ["code", "status", "message", "details"],
    "properties": {
        "code": {"type": "integer", "description": "The HTTP status code."},
        "status": {"type": "string", "description": "The gRPC status code name, e.g. NOT_FOUND."},
        "message": {"type": "string", "description": "What went wrong, for a person."},
        "details": {
            "type": "array",
            "items": {"type": "object", "additionalProperties": True},
            "description": "Structured details, e.g. the candidates of an ambiguous name.",
        },
    },
}


def load_comments() -> dict[str, str]:
    """Proto comments by full name (`capstan.v1.Release`, `capstan.v1.Release.name`, ...)."""
    try:
        data = resources.files(DESCRIPTOR_SET_PACKAGE).joinpath(DESCRIPTOR_SET_NAME).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError):
        log.warning("%s not found; the OpenAPI document has no descriptions", DESCRIPTOR_SET_NAME)
        return {}
    descriptor_set = descriptor_pb2.FileDescriptorSet.FromString(data)
    comments: dict[str, str] = {}
    for file in descriptor_set.file:
        comments.update(_file_comments(file))
    return comments


def _file_comments(file: descriptor_pb2.FileDescriptorProto) -> dict[str, str]:
    by_path = {
        tuple(location.path): _clean(location.leading_comments)
        for location in file.source_code_info.location
        if location.leading_comments.strip()
    }
    prefix = f"{file.package}." if file.package else ""
    found: dict[str, str] = {}

    def note(name: str, path: tuple[int, ...]) -> None:
        if path in by_path:
            found[name] = by_path[path]

    def message(msg: descriptor_pb2.DescriptorProto, name: str, path: tuple[int, ...]) -> None:
        note(name, path)
        for i, field in enumerate(msg.field):
            note(f"{name}.{field.name}", (*path, 2, i))
        for i, nested in enumerate(msg.nested_type):
            message(nested, f"{name}.{nested.name}", (*path, 3, i))
        for i, nested_enum in enumerate(msg.enum_type):
            enum(nested_enum, f"{name}.{nested_enum.name}", (*path, 4, i))

    def enum(item: descriptor_pb2.EnumDescriptorProto, name: str, path: tuple[int, ...]) -> None:
        note(name, path)
        for i, value in enumerate(item.value):
            note(f"{name}.{value.name}", (*path, 2, i))

    # Field numbers of FileDescriptorProto / ServiceDescriptorProto (descriptor.proto).
    for i, msg in enumerate(file.message_type):
        message(msg, prefix + msg.name, (4, i))
    for i, item in enumerate(file.enum_type):
        enum(item, prefix + item.name, (5, i))
    for i, service in enumerate(file.service):
        note(prefix + service.name, (6, i))
        for j, method in enumerate(service.method):
            note(f"{prefix}{service.name}.{method.name}", (6, i, 2, j))
    return found


def _clean(comment: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in comment.strip("\n").split("\n")]
    return "\n".join(lines).strip()


def openapi_path(template: str) -> str:
    """A google.api.http template as an OpenAPI path: `{name=shelves/*}` becomes `{name}`."""
    return re.sub(r"\{([^}=]+)(=[^}]*)?\}", r"{\1}", template)


class _Builder:
    def __init__(self, comments: Mapping[str, str]) -> None:
        self.comments = comments
        self.schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA}

    def describe(self, schema: dict[str, Any], full_name: str) -> dict[str, Any]:
        text = self.comments.get(full_name)
        if text:
            schema["description"] = text
        return schema

    def message_ref(self, message: Descriptor) -> dict[str, Any]:
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        name = message.full_name.removeprefix("capstan.v1.")
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder first: messages may refer to themselves
            self.schemas[name] = self.message_schema(message)
        return {"$ref": _REF + name}

    def message_schema(self, message: Descriptor, skip: Iterable[str] = ()) -> dict[str, Any]:
        # The JSON rules of capstan.client.messages: list wrappers are bare arrays, `*_json`
        # text fields are inlined JSON under the name without the suffix.
        if message.full_name in LIST_WRAPPERS:
            items = self.field_schema(message.fields_by_name["items"])
            return self.describe(items, message.full_name)
        skipped = set(skip)
        properties = {}
        for field in message.fields:
            if field.name in skipped:
                continue
            if field.type == FieldDescriptor.TYPE_STRING and field.name.endswith(
                    JSON_TEXT_SUFFIX):
                properties[field.name.removesuffix(JSON_TEXT_SUFFIX)] = self.describe(
                    {}, field.full_name)
            else:
                properties[field.name] = self.field_schema(field, bounded=is_request(message))
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        needed = [name for name in required(message) if name not in skipped]
        if is_request(message):
            # The gateway refuses unknown fields (400).
            schema["additionalProperties"] = False
            if needed:
                schema["required"] = needed
        return self.describe(schema, message.full_name)

    def enum_ref(self, enum: EnumDescriptor) -> dict[str, Any]:
        name = enum.full_name.removeprefix("capstan.v1.")
        if name not in self.schemas:
            schema = {"type": "string", "enum": [value.name for value in enum.values]}
            self.schemas[name] = self.describe(schema, enum.full_name)
        return {"$ref": _REF + name}

    def value_schema(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None:
            return self.message_ref(field.message_type)
        if field.enum_type is not None:
            return self.enum_ref(field.enum_type)
        return dict(_SCALARS[field.type])

    def field_schema(self, field: FieldDescriptor, *, bounded: bool = False) -> dict[str, Any]:
        """The schema of a field; `bounded` adds what the server enforces on a request's."""
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            values = self.value_schema(entry.fields_by_name["value"])
            schema: dict[str, Any] = {"type": "object", "additionalProperties": values}
        elif field.is_repeated:
            schema = {"type": "array", "items": self.value_schema(field)}
        else:
            schema = self.value_schema(field)
        if bounded and field.containing_type is not None:
            schema.update(field_bounds(field.containing_type, field))
        return self.describe(schema, field.full_name)

    def parameter(self, field: FieldDescriptor, name: str, where: str) -> dict[str, Any]:
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or _is_required(field),
            "schema": self.field_schema(field, bounded=True),
        }
        description = parameter["schema"].pop("description", None)
        if description:
            parameter["description"] = description
        if field.is_repeated:
            parameter["explode"] = True
        return parameter

    def operation(self, route: Route) -> dict[str, Any]:
        method = route.method
        request = method.input_type
        full_name = f"{method.containing_service.full_name}.{method.name}"
        text = self.comments.get(full_name, "")
        operation: dict[str, Any] = {
            "operationId": f"{method.containing_service.name}_{method.name}",
            "tags": [method.containing_service.name],
            "summary": text.split("\n\n", 1)[0].replace("\n", " ") if text else method.name,
        }
        if text:
            operation["description"] = text
        parameters = [
            self.parameter(_resolve(request, variable.field_path), variable.field_path, "path")
            for variable in route.variables
        ]
        if not route.body:
            parameters += [
                self.parameter(field, field.name, "query")
                for field in request.fields
                if field.name not in route.bound_fields and _is_query_field(field)
            ]
        if parameters:
            operation["parameters"] = parameters
        if route.body:
            # A write without a body is the empty request: the body is required only when the
            # request has REQUIRED fields the path does not give.
            needed = set(required(request)) - set(route.bound_fields)
            operation["requestBody"] = {
                "required": bool(needed),
                "content": self.body_content(route),
            }
        operation["responses"] = {
            "200": self.response(route),
            "default": {
                "description": "An error.",
                "content": {"application/json": {"schema": {"$ref": _REF + "Error"}}},
            },
        }
        return operation

    def body_content(self, route: Route) -> dict[str, Any]:
        request = route.method.input_type
        if route.body != "*":
            schema = self.field_schema(request.fields_by_name[route.body])
        elif route.bound_fields:
            # The path variables are not part of the body: describe the rest under its own name.
            name = request.full_name.removeprefix("capstan.v1.") + "Body"
            self.schemas[name] = self.message_schema(request, skip=route.bound_fields)
            schema = {"$ref": _REF + name}
        else:
            schema = self.message_ref(request)
        return {"application/json": {"schema": schema}}

    def response(self, route: Route) -> dict[str, Any]:
        output = route.method.output_type
        if route.response_body:
            schema = self.field_schema(output.fields_by_name[route.response_body])
        else:
            schema = self.message_ref(output)
        if route.server_streaming:
            return {
                "description": "A stream of newline-delimited JSON objects, one per message.",
                "content": {"application/x-ndjson": {"schema": schema}},
            }
        return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _is_required(field: FieldDescriptor) -> bool:
    return field.containing_type is not None and field.name in required(field.containing_type)


def _resolve(message: Descriptor, field_path: str) -> FieldDescriptor:
    names = field_path.split(".")
    for name in names[:-1]:
        sub = message.fields_by_name[name].message_type
        assert sub is not None, f"{field_path}: {name} is not a message"
        message = sub
    field: FieldDescriptor = message.fields_by_name[names[-1]]
    return field


def _is_query_field(field: FieldDescriptor) -> bool:
    """Whether the gateway accepts `field` as a query parameter (see transcode._scalar)."""
    message = field.message_type
    return message is None or message.full_name in {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
    }


def build_openapi(
    routes: Iterable[Route],
    *,
    title: str,
    version: str,
    description: str = "",
    comments: Mapping[str, str] | None = None,
    extra_paths: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes` (plus `extra_paths`, written by hand)."""
    builder = _Builder(comments if comments is not None else load_comments())
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, str] = {}
    seen: dict[str, int] = {}
    for route in routes:
        service = route.method.containing_service
        tags.setdefault(service.name, builder.comments.get(service.full_name, ""))
        operations = paths.setdefault(openapi_path(route.template), {})
        operation = builder.operation(route)
        # An `additional_bindings` entry is the same RPC again; operationIds must stay unique.
        bindings = seen.get(operation["operationId"], 0)
        seen[operation["operationId"]] = bindings + 1
        if bindings:
            operation["operationId"] = f"{service.name}_Binding{bindings + 1}_{route.method.name}"
        operations[route.http_method.lower()] = operation
    paths.update(extra_paths or {})
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "tags": [{"name": name, "description": text} for name, text in tags.items()],
        "paths": paths,
        "components": {"schemas": dict(sorted(builder.schemas.items()))},
    }
