"""The JSON encoding as `capstan.client.messages.to_dict` wrote it before it was compiled per
message type (issue 12): protobuf's `json_format.MessageToDict`, then a pass over the result for
Capstan's rules. Kept here, out of the package, as the reference the compiled encoder must
match (tests/client/test_messages_encoding.py, bench/encode_bench.py)."""

from __future__ import annotations

import json
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

JSON_TEXT_SUFFIX = "_json"
LIST_WRAPPERS = frozenset({"capstan.v1.ReleaseResourceList"})
_UNSET_JSON: dict[str, Any] = {"google.protobuf.Struct": {}, "google.protobuf.Empty": {}}
_JSON_VALUES = frozenset({"google.protobuf.Struct", "google.protobuf.Value",
                          "google.protobuf.ListValue"})
_EXACT = 2**53


def reference_to_dict(message: Message) -> dict[str, Any]:
    """`message` as the REST gateway wrote it up to issue 12."""
    data: dict[str, Any] = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    _shape(cast(Descriptor, message.DESCRIPTOR), data)
    return data


def whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT:
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value


def _is_well_known(message: Descriptor) -> bool:
    return message.full_name.startswith("google.protobuf.")


def _shape(descriptor: Descriptor, data: dict[str, Any]) -> None:
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING and field.name.endswith(JSON_TEXT_SUFFIX):
            if not field.is_repeated and field.name in data:
                text = data.pop(field.name)
                data[field.name.removesuffix(JSON_TEXT_SUFFIX)] = json.loads(text) if text else None
            continue
        sub = field.message_type
        if sub is None:
            continue
        if field.containing_oneof is not None and field.name not in data:
            continue
        if field.name not in data:
            if not field.is_repeated:
                data[field.name] = _UNSET_JSON.get(sub.full_name)
            continue
        if sub.full_name in _JSON_VALUES:
            data[field.name] = whole_numbers(data[field.name])
            continue
        if _is_well_known(sub):
            continue
        value = data[field.name]
        if sub.GetOptions().map_entry:
            value_type = sub.fields_by_name["value"].message_type
            if value_type is not None and value_type.full_name in _JSON_VALUES:
                data[field.name] = whole_numbers(value)
            elif value_type is not None and not _is_well_known(value_type):
                data[field.name] = {k: _item(value_type, v) for k, v in value.items()}
        elif field.is_repeated:
            data[field.name] = [_item(sub, item) for item in value]
        elif isinstance(value, dict):
            data[field.name] = _item(sub, value)


def _item(descriptor: Descriptor, data: dict[str, Any]) -> Any:
    _shape(descriptor, data)
    if descriptor.full_name in LIST_WRAPPERS:
        return data.get("items", [])
    return data
