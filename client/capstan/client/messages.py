"""Responses as JSON: the one encoding path of the REST gateway, the CLI and `to_dict`.

The rules, on top of protobuf's JSON mapping (`json_format.MessageToDict`):

- proto field names (snake_case), every field present with its default value; a singular
  message field that is unset is `null` (`{}` for a Struct), so a client always sees the same
  keys for a message type;
- numbers inside `google.protobuf.Struct` / `Value` / `ListValue` (config, values, schemas) are
  doubles on the wire; an integral one is written as an integer (`2379`, not `2379.0`), as
  Helm's own JSON (Go's encoding/json) writes it. Fields declared `double` keep their type;
- a `string` field whose name ends in `_json` carries JSON text (a live Kubernetes object,
  which protobuf could not carry as a Struct past 100 levels of nesting): it is written as the
  parsed JSON value under the name without the suffix (`object_json` -> `object`); empty text
  is `null`;
- a message named in `LIST_WRAPPERS` (a map value cannot be a repeated field) is written as its
  `items` array, so `Release.resources` is `{kind_key: [...]}`.
"""

from __future__ import annotations

import json
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["JSON_TEXT_SUFFIX", "LIST_WRAPPERS", "to_dict", "whole_numbers"]

#: Suffix of string fields holding JSON text, inlined as JSON.
JSON_TEXT_SUFFIX = "_json"
#: Messages written as the bare array of their `items` field.
LIST_WRAPPERS = frozenset({"capstan.v1.ReleaseResourceList"})
#: The JSON an unset singular message field renders as (any other type: null).
_UNSET_JSON: dict[str, Any] = {"google.protobuf.Struct": {}, "google.protobuf.Empty": {}}
#: The well-known types whose numbers are JSON numbers carried as doubles.
_JSON_VALUES = frozenset({"google.protobuf.Struct", "google.protobuf.Value",
                          "google.protobuf.ListValue"})
#: Floats past this are not exact integers in a double; leave them as they are.
_EXACT = 2**53


def to_dict(message: Message) -> dict[str, Any]:
    """`message` as the REST gateway writes it (see the module docstring).

    (The gateway answers GetReleaseHistory with the bare `revisions` array:
    `to_dict(response)["revisions"]`.)
    """
    data: dict[str, Any] = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    _shape(cast(Descriptor, message.DESCRIPTOR), data)
    return data


def whole_numbers(value: Any) -> Any:
    """`value` with every integral float turned into an int (JSON from a Struct)."""
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
    """Apply the null/JSON-text/list-wrapper rules to `data`, the JSON of a `descriptor`."""
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
            # Only the member that is set belongs in the JSON of a oneof.
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
