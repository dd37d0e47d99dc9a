"""Responses as JSON: the one encoding path of the REST gateway, the CLI and `to_dict`.

The rules, on top of protobuf's JSON mapping (`json_format.MessageToDict` with proto field
names and fields without presence always printed):

- proto field names (snake_case), every field present with its default value; a singular
  message field that is unset is `null` (`{}` for a Struct), so a client always sees the same
  keys for a message type; a oneof member or a proto3 `optional` field only when it is set;
- numbers inside `google.protobuf.Struct` / `Value` / `ListValue` (config, values, schemas) are
  doubles on the wire; an integral one is written as an integer (`2379`, not `2379.0`), as
  Helm's own JSON (Go's encoding/json) writes it. Fields declared `double` keep their type;
- a `string` field whose name ends in `_json` carries JSON text (a live Kubernetes object,
  which protobuf could not carry as a Struct past 100 levels of nesting): it is written as the
  parsed JSON value under the name without the suffix (`object_json` -> `object`); empty text
  is `null`;
- a message named in `LIST_WRAPPERS` (a map value cannot be a repeated field) is written as its
  `items` array, so `Release.resources` is `{kind_key: [...]}`.

`json_format` walks every message field by field through its descriptors, which costs ~40 us
per listed release; a page of 200 must cost a few ms end to end. So each message type gets an
encoder built once from its descriptor (`_encoder`): the plain fields read in one
`attrgetter` call, the others through a converter chosen per field. The result is the same as
`json_format` plus the rules above (tests/client/test_messages_encoding.py checks that on
random messages of every capstan.v1 type); keys come in declaration order.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import math
import struct
import threading
from collections.abc import Callable
from operator import attrgetter
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["JSON_TEXT_SUFFIX", "LIST_WRAPPERS", "to_dict", "whole_numbers"]

#: Suffix of string fields holding JSON text, inlined as JSON.
JSON_TEXT_SUFFIX = "_json"
#: Messages written as the bare array of their `items` field.
LIST_WRAPPERS = frozenset({"capstan.v1.ReleaseResourceList"})
#: Floats past this are not exact integers in a double; leave them as they are.
_EXACT = 2**53

#: A converter: a field's (or a map value's, or a list item's) Python value -> its JSON.
_Convert = Callable[[Any], Any]
#: A message encoder: a message -> its JSON object.
_Encode = Callable[[Message], dict[str, Any]]


def to_dict(message: Message) -> dict[str, Any]:
    """`message` as the REST gateway writes it (see the module docstring).

    (The gateway answers GetReleaseHistory with the bare `revisions` array:
    `to_dict(response)["revisions"]`.)
    """
    descriptor = cast(Descriptor, message.DESCRIPTOR)
    if descriptor.full_name.startswith(_PROTOBUF):
        # A well-known type on its own is protobuf's JSON of it (only fields get the rules).
        return _protobuf_json(message)  # type: ignore[no-any-return]
    return _encoder(descriptor)(message)


def whole_numbers(value: Any) -> Any:
    """`value` with every integral float turned into an int (JSON from a Struct)."""
    if isinstance(value, float):
        return _whole(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value


def _whole(number: float) -> float | int:
    return int(number) if number.is_integer() and abs(number) < _EXACT else number


# -- message encoders, one per type, built on first use -----------------------------------------

_PROTOBUF = "google.protobuf."
_encoders: dict[Descriptor, _Encode] = {}  # complete: read without the lock
_unfinished: dict[Descriptor, _Encode] = {}  # being built, under the lock
_building = threading.RLock()


def _encoder(descriptor: Descriptor) -> _Encode:
    """The encoder of a (not well-known) message type, built once."""
    found = _encoders.get(descriptor)
    if found is not None:
        return found
    with _building:
        found = _encoders.get(descriptor) or _unfinished.get(descriptor)
        if found is not None:
            return found
        outermost = not _unfinished
        try:
            found = _build_encoder(descriptor)
            if outermost:
                # Only now are the types built with it (which may call it) complete too.
                _encoders.update(_unfinished)
        finally:
            if outermost:
                _unfinished.clear()
        return found


def _build_encoder(descriptor: Descriptor) -> _Encode:
    # The encoder is registered before its plan is filled, so that a type reaching itself
    # (directly or through others) finds it instead of recursing while it is built.
    template: dict[str, Any] = {}  # every key, in declaration order
    plain_keys: list[str] = []  # fields whose Python value is their JSON
    read_plain: Callable[[Message], Any] = _nothing  # their values, in one call
    converted: list[tuple[str, str, _Convert]] = []  # (key, attribute, converter)
    messages: list[tuple[str, str, _Convert]] = []  # singular messages: null when unset
    present: list[tuple[str, str, _Convert]] = []  # written only when set

    def encode(message: Message) -> dict[str, Any]:
        out = dict(template)
        out.update(zip(plain_keys, read_plain(message), strict=True))
        for key, name, convert in converted:
            out[key] = convert(getattr(message, name))
        for key, name, convert in messages:
            out[key] = convert(getattr(message, name)) if message.HasField(name) else None
        for key, name, convert in present:
            if message.HasField(name):
                out[key] = convert(getattr(message, name))
        return out

    _unfinished[descriptor] = encode
    plain_names = []
    for field in descriptor.fields:
        key, convert = _field_plan(field)
        sub = field.message_type
        if field.is_repeated:
            converted.append((key, field.name, convert))
        elif sub is not None and field.containing_oneof is not None:
            present.append((key, field.name, convert))
            continue
        elif sub is not None and sub.full_name in _NEVER_NULL:
            converted.append((key, field.name, convert))
        elif sub is not None:
            messages.append((key, field.name, convert))
        elif field.has_presence:
            present.append((key, field.name, convert))
            continue
        elif convert is _same:
            plain_keys.append(key)
            plain_names.append(field.name)
        else:
            converted.append((key, field.name, convert))
        template[key] = None
    if len(plain_names) == 1:
        (name,) = plain_names
        read_plain = lambda message: (getattr(message, name),)  # noqa: E731
    elif plain_names:
        read_plain = attrgetter(*plain_names)
    return encode


def _nothing(_message: Message) -> tuple[()]:
    return ()


def _same(value: Any) -> Any:
    return value


def _field_plan(field: FieldDescriptor) -> tuple[str, _Convert]:
    """The JSON key of `field` and the converter of its Python value."""
    sub = field.message_type
    if sub is not None and sub.GetOptions().map_entry:
        return field.name, _map_converter(sub)
    if (field.type == FieldDescriptor.TYPE_STRING and field.name.endswith(JSON_TEXT_SUFFIX)
            and not field.is_repeated):
        return field.name.removesuffix(JSON_TEXT_SUFFIX), _json_text
    item = _value_converter(field)
    if not field.is_repeated:
        return field.name, item
    if item is _same:
        return field.name, list
    return field.name, lambda values: [item(value) for value in values]


def _map_converter(entry: Descriptor) -> _Convert:
    key_field = entry.fields_by_name["key"]
    value = _value_converter(entry.fields_by_name["value"])
    if key_field.type == FieldDescriptor.TYPE_STRING and value is _same:
        return dict
    if key_field.type == FieldDescriptor.TYPE_STRING:
        key: _Convert = _same
    elif key_field.type == FieldDescriptor.TYPE_BOOL:
        key = _bool_key
    else:
        key = str
    # (Keys then lookups: `items()` of a protobuf map is a view written in Python, slower.)
    return lambda values: {key(k): value(values[k]) for k in values}


def _bool_key(key: bool) -> str:
    return "true" if key else "false"


def _json_text(text: str) -> Any:
    return json.loads(text) if text else None


def _value_converter(field: FieldDescriptor) -> _Convert:
    """The converter of one value of `field` (an item, if it is repeated)."""
    sub = field.message_type
    if sub is not None:
        return _message_converter(sub)
    kind = field.type
    if kind in _INT64_TYPES:
        return str
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return _double
    if kind == FieldDescriptor.TYPE_FLOAT:
        return _float
    if kind == FieldDescriptor.TYPE_BYTES:
        return _bytes
    enum = field.enum_type
    if enum is not None:
        if enum.full_name == "google.protobuf.NullValue":
            return _null
        names = {value.number: value.name for value in enum.values}
        # An open enum may hold a number it does not name: protobuf writes the number.
        return lambda number: names.get(number, number)
    return _same  # string, bool, 32-bit integers


def _message_converter(descriptor: Descriptor) -> _Convert:
    """The converter of a (set) message value of type `descriptor`."""
    name = descriptor.full_name
    if name in LIST_WRAPPERS:
        items = _encoder(descriptor)
        return lambda message: items(message)["items"]
    if not name.startswith(_PROTOBUF):
        return _encoder(descriptor)
    if descriptor.file.name == "google/protobuf/wrappers.proto":
        value = _value_converter(descriptor.fields_by_name["value"])
        return lambda message: value(message.value)
    return _WELL_KNOWN.get(name, _protobuf_json)


# -- scalars -----------------------------------------------------------------------------------

_INT64_TYPES = frozenset({
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
})


def _double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _float(value: float) -> float | str:
    """A 32-bit float as protobuf writes it: the shortest decimal that reads back the same."""
    if not math.isfinite(value):
        return _double(value)
    precision = 6  # every 32-bit float has 6 to 9 significant digits
    shortest = float(f"{value:.{precision}g}")
    while struct.unpack("<f", struct.pack("<f", shortest))[0] != value:
        precision += 1
        shortest = float(f"{value:.{precision}g}")
    return shortest


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _null(_value: int) -> None:
    return None


# -- well-known types --------------------------------------------------------------------------

_SECONDS_MIN, _SECONDS_MAX = -62135596800, 253402300799  # 0001-01-01 .. 9999-12-31
_EPOCH = datetime.datetime(1970, 1, 1)


def _timestamp(message: Any) -> str:
    return _rfc3339(message.seconds, message.nanos)


@functools.lru_cache(maxsize=8192)
def _rfc3339(seconds: int, nanos: int) -> str:
    """RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as `Timestamp.ToJsonString`.

    Cached: a listing shows the same creation and update times page after page, and formatting
    one costs several times more than finding it (a few MB at most).
    """
    if not (_SECONDS_MIN <= seconds <= _SECONDS_MAX and 0 <= nanos < 1_000_000_000):
        raise ValueError(f"Timestamp is not valid: {seconds} s, {nanos} ns")
    text = (_EPOCH + datetime.timedelta(seconds=seconds)).isoformat()
    if not nanos:
        return text + "Z"
    if not nanos % 1_000_000:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if not nanos % 1_000:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def _struct(message: Any) -> dict[str, Any]:
    fields = message.fields
    return {key: _value(fields[key]) for key in fields}


def _list_value(message: Any) -> list[Any]:
    return [_value(item) for item in message.values]


def _value(message: Any) -> Any:
    kind = message.WhichOneof("kind")
    if kind == "string_value":
        return message.string_value
    if kind == "number_value":
        number: float = message.number_value
        if not math.isfinite(number):
            # It would read back as a string: protobuf refuses it too.
            raise ValueError(f"a Struct number cannot be {number}")
        return _whole(number)
    if kind == "bool_value":
        return message.bool_value
    if kind == "struct_value":
        return _struct(message.struct_value)
    if kind == "list_value":
        return _list_value(message.list_value)
    return None  # null_value, or no kind set


def _empty(_message: Any) -> dict[str, Any]:
    return {}


def _to_json_string(message: Any) -> str:
    return message.ToJsonString()  # type: ignore[no-any-return]


def _protobuf_json(message: Message) -> Any:
    """Any other well-known type (`Any`, ...): protobuf's own JSON of it."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


_WELL_KNOWN: dict[str, _Convert] = {
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Duration": _to_json_string,
    "google.protobuf.FieldMask": _to_json_string,
    "google.protobuf.Struct": _struct,
    "google.protobuf.ListValue": _list_value,
    "google.protobuf.Value": _value,
    "google.protobuf.Empty": _empty,
}
#: Message types whose unset JSON is what their empty message encodes to ({}), not null.
_NEVER_NULL = frozenset({"google.protobuf.Struct", "google.protobuf.Empty"})
