"""The compiled JSON encoder (`capstan.client.messages.to_dict`) writes exactly what the
json_format-based one did (tests/client/json_reference.py): random messages of every capstan.v1
type, and of a test type with every kind of field protobuf has, compared as JSON text (so that
`1` vs `1.0` and `true` vs `1` count as different), plus a few cases spelled out."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capstan.client import to_dict
from capstan.v1 import chart_pb2, cluster_pb2, release_pb2

from .json_reference import reference_to_dict

F = FieldDescriptor
#: How deep random messages nest (a type may reach itself): ListReleasesResponse -> Release ->
#: ReleaseResourceList -> ReleaseResource, the deepest capstan.v1 path.
MAX_DEPTH = 3


# -- a test type with every kind of field ------------------------------------------------------

_WELL_KNOWN_FILES = ("any", "duration", "empty", "field_mask", "struct", "timestamp", "wrappers")
_WRAPPERS = ("DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value",
             "UInt32Value", "BoolValue", "StringValue", "BytesValue")
_SCALARS = {
    "double": F.TYPE_DOUBLE, "float": F.TYPE_FLOAT, "int64": F.TYPE_INT64,
    "uint64": F.TYPE_UINT64, "int32": F.TYPE_INT32, "fixed64": F.TYPE_FIXED64,
    "fixed32": F.TYPE_FIXED32, "bool": F.TYPE_BOOL, "string": F.TYPE_STRING,
    "bytes": F.TYPE_BYTES, "uint32": F.TYPE_UINT32, "sfixed32": F.TYPE_SFIXED32,
    "sfixed64": F.TYPE_SFIXED64, "sint32": F.TYPE_SINT32, "sint64": F.TYPE_SINT64,
}


def _kinds_file() -> descriptor_pb2.FileDescriptorProto:
    """capstan.test.Kinds: every scalar, repeated, optional, oneof, map and well-known type."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="capstan_test/kinds.proto", package="capstan.test", syntax="proto3",
        dependency=[f"google/protobuf/{name}.proto" for name in _WELL_KNOWN_FILES]
        + ["capstan/v1/release.proto"])
    color = proto.enum_type.add(name="Color")
    for number, name in enumerate(("COLOR_UNSPECIFIED", "COLOR_RED", "COLOR_GREEN")):
        color.value.add(name=name, number=number)
    kinds = proto.message_type.add(name="Kinds")
    kinds.oneof_decl.add(name="choice")
    numbers = iter(range(1, 1000))

    def types(kind: str) -> dict[str, Any]:
        if kind in _SCALARS:
            return {"type": _SCALARS[kind]}
        if kind == "enum":
            return {"type": F.TYPE_ENUM, "type_name": ".capstan.test.Color"}
        if kind == "null":
            return {"type": F.TYPE_ENUM, "type_name": ".google.protobuf.NullValue"}
        return {"type": F.TYPE_MESSAGE, "type_name": "." + kind}

    def add(name: str, kind: str, *, repeated: bool = False, oneof: bool = False,
            optional: bool = False) -> None:
        field = kinds.field.add(name=name, number=next(numbers), **types(kind),
                                label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if oneof:
            field.oneof_index = 0
        if optional:
            field.proto3_optional = True
            field.oneof_index = len(kinds.oneof_decl)
            kinds.oneof_decl.add(name="_" + name)

    def add_map(name: str, key: str, value: str) -> None:
        entry = kinds.nested_type.add(name=name.title().replace("_", "") + "Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, label=F.LABEL_OPTIONAL, **types(key))
        entry.field.add(name="value", number=2, label=F.LABEL_OPTIONAL, **types(value))
        kinds.field.add(name=name, number=next(numbers), label=F.LABEL_REPEATED,
                        type=F.TYPE_MESSAGE, type_name=f".capstan.test.Kinds.{entry.name}")

    well_known = [f"google.protobuf.{name}" for name in (
        "Timestamp", "Duration", "FieldMask", "Struct", "Value", "ListValue", "Empty", "Any",
        *_WRAPPERS)]
    for kind in [*_SCALARS, "enum", "null", "capstan.test.Kinds", *well_known,
                 "capstan.v1.ReleaseResourceList"]:
        short = kind.rsplit(".", 1)[-1].lower()
        add(f"one_{short}", kind)
        add(f"many_{short}", kind, repeated=True)
    for kind in ("int64", "string", "double", "bytes", "enum", "capstan.test.Kinds",
                 "google.protobuf.Struct", "google.protobuf.Timestamp"):
        add(f"maybe_{kind.rsplit('.', 1)[-1].lower()}", kind, optional=True)
    for kind in ("string", "int64", "float", "capstan.test.Kinds", "google.protobuf.Struct",
                 "google.protobuf.Empty", "google.protobuf.Timestamp",
                 "capstan.v1.ReleaseResourceList"):
        add(f"choice_{kind.rsplit('.', 1)[-1].lower()}", kind, oneof=True)
    add("thing_json", "string")
    add("things_json", "string", repeated=True)
    add("maybe_json", "string", optional=True)
    for key in ("string", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
                "fixed64", "sfixed32", "sfixed64", "bool"):
        add_map(f"by_{key}", key, "string")
    for value in ("bytes", "double", "float", "int64", "enum", "capstan.test.Kinds",
                  "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.Timestamp",
                  "google.protobuf.Int64Value", "capstan.v1.ReleaseResourceList"):
        add_map(f"to_{value.rsplit('.', 1)[-1].lower()}", "string", value)
    return proto


def _test_types() -> Descriptor:
    pool = descriptor_pool.Default()
    try:
        return pool.FindMessageTypeByName("capstan.test.Kinds")
    except KeyError:
        pool.AddSerializedFile(_kinds_file().SerializeToString())
        return pool.FindMessageTypeByName("capstan.test.Kinds")


KINDS = _test_types()


def _capstan_types() -> Iterator[Descriptor]:
    def walk(found: Any) -> Iterator[Descriptor]:
        for descriptor in found.values():
            if not descriptor.GetOptions().map_entry:
                yield descriptor
                yield from walk(descriptor.nested_types_by_name)

    for module in (release_pb2, chart_pb2, cluster_pb2):
        yield from walk(module.DESCRIPTOR.message_types_by_name)


CAPSTAN_TYPES = sorted(_capstan_types(), key=lambda d: d.full_name)


# -- random values -----------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
_INTS = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1), F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1), F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1), F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}
#: Numbers as a Struct holds them (doubles): integral ones, around 2**53, fractions, -0.0.
STRUCT_NUMBERS = st.one_of(
    st.integers(-(2**60), 2**60).map(float),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 2.0**53 - 1, 2.0**53, -(2.0**53), 1e300, 0.5]),
)
STRUCT_VALUES = st.recursive(
    st.none() | st.booleans() | STRUCT_NUMBERS | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
#: What a `*_json` field carries: JSON text of anything (integers of any size), or nothing.
JSON_TEXT = st.just("") | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
).map(json.dumps)
#: Nanos with 0, 3, 6 and 9 fractional digits.
NANOS = st.one_of(
    st.just(0), st.integers(1, 999).map(lambda ms: ms * 1_000_000),
    st.integers(1, 999_999).map(lambda us: us * 1_000), st.integers(1, 999_999_999))


def _struct(data: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(data)
    return message


def _value(data: Any) -> struct_pb2.Value:
    return _struct({"v": data}).fields["v"]


def _list_value(data: list[Any]) -> struct_pb2.ListValue:
    message = struct_pb2.ListValue()
    message.extend(data)
    return message


def _duration(seconds: int, nanos: int) -> duration_pb2.Duration:
    # Seconds and nanos of a Duration have one sign.
    nanos = -nanos if seconds < 0 else nanos
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def _any(draw: st.DrawFn) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(draw(st.one_of(
        st.builds(timestamp_pb2.Timestamp, seconds=st.integers(0, 2**33), nanos=NANOS),
        st.dictionaries(TEXT, STRUCT_VALUES, max_size=3).map(_struct),
        messages(release_pb2.ReleaseRevision.DESCRIPTOR, MAX_DEPTH),
    )))
    return packed


_SNAKE = st.from_regex(r"[a-z]{1,4}(_[a-z]{1,4}){0,2}", fullmatch=True)
_WELL_KNOWN: dict[str, Any] = {
    "google.protobuf.Timestamp": st.builds(
        timestamp_pb2.Timestamp, seconds=st.integers(-62135596800, 253402300799), nanos=NANOS),
    "google.protobuf.Duration": st.builds(
        _duration, st.integers(-315576000000, 315576000000), NANOS),
    "google.protobuf.FieldMask": st.lists(_SNAKE, max_size=3).map(
        lambda paths: field_mask_pb2.FieldMask(paths=paths)),
    "google.protobuf.Struct": st.dictionaries(TEXT, STRUCT_VALUES, max_size=4).map(_struct),
    "google.protobuf.Value": STRUCT_VALUES.map(_value) | st.just(struct_pb2.Value()),
    "google.protobuf.ListValue": st.lists(STRUCT_VALUES, max_size=3).map(_list_value),
    "google.protobuf.Empty": st.just(empty_pb2.Empty()),
}


def scalars(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INTS:
        low, high = _INTS[kind]
        return st.integers(low, high)
    if kind == F.TYPE_DOUBLE:
        return st.floats()  # NaN and infinities too
    if kind == F.TYPE_FLOAT:
        return st.floats(width=32)
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind == F.TYPE_BYTES:
        return st.binary(max_size=6)
    if kind == F.TYPE_ENUM:
        numbers = [value.number for value in field.enum_type.values]
        # An open enum may hold a number it does not name.
        return st.sampled_from(numbers if field.enum_type.is_closed else [*numbers, 77])
    if field.name.endswith("_json") and not field.is_repeated:
        return JSON_TEXT
    return TEXT


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 0) -> Message:
    """A random message of type `descriptor`, its fields set (or not) at random."""
    name = descriptor.full_name
    if name in _WELL_KNOWN:
        return draw(_WELL_KNOWN[name])  # type: ignore[no-any-return]
    if name == "google.protobuf.Any":
        return _any(draw)
    message = message_factory.GetMessageClass(descriptor)()
    if descriptor.file.name == "google/protobuf/wrappers.proto":
        message.value = draw(scalars(descriptor.fields_by_name["value"]))  # type: ignore[attr-defined]
        return message
    chosen = {oneof.name: draw(st.sampled_from([None, *oneof.fields]))
              for oneof in descriptor.oneofs}
    # Message children only so deep (a Kinds in a Kinds gets none: it has ~150 fields).
    deeper = depth < (1 if name == KINDS.full_name else MAX_DEPTH)
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and chosen[oneof.name] is not field:
            continue
        if oneof is None and not field.is_repeated and not draw(st.booleans()):
            continue  # left unset
        target = getattr(message, field.name)
        sub = field.message_type
        if sub is not None and sub.GetOptions().map_entry:
            key, value = sub.fields_by_name["key"], sub.fields_by_name["value"]
            size = 3 if deeper or value.message_type is None else 0
            for item in draw(st.lists(scalars(key), max_size=size, unique=True)):
                if value.message_type is not None:
                    target[item].CopyFrom(draw(messages(value.message_type, depth + 1)))
                else:
                    target[item] = draw(scalars(value))
        elif sub is not None and field.is_repeated:
            for _ in range(draw(st.integers(0, 2 if deeper else 0))):
                target.add().CopyFrom(draw(messages(sub, depth + 1)))
        elif sub is not None:
            target.SetInParent()
            if deeper:
                target.MergeFrom(draw(messages(sub, depth + 1)))
        elif field.is_repeated:
            target.extend(draw(st.lists(scalars(field), max_size=3)))
        else:
            setattr(message, field.name, draw(scalars(field)))
    return message


# -- the comparison ----------------------------------------------------------------------------


def as_text(data: Any) -> str:
    """JSON text that tells 1 from 1.0 and true from 1 (Python's == does not)."""
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


def assert_same(message: Message) -> None:
    assert as_text(to_dict(message)) == as_text(reference_to_dict(message))


@pytest.mark.parametrize("descriptor", [*CAPSTAN_TYPES, KINDS], ids=lambda d: d.full_name)
def test_random_messages_encode_as_the_reference(descriptor: Descriptor) -> None:
    # Kinds, with every kind of field, gets the most examples.
    @settings(max_examples=100 if descriptor is KINDS else 40, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages(descriptor))
    def check(message: Message) -> None:
        assert_same(message)

    check()


def test_every_capstan_type_is_covered() -> None:
    names = {d.full_name for d in CAPSTAN_TYPES}
    assert {"capstan.v1.Release", "capstan.v1.ReleaseResource", "capstan.v1.ListReleasesResponse",
            "capstan.v1.ChartDetail", "capstan.v1.Cluster"} <= names
    assert len(names) >= 40


# -- cases spelled out -------------------------------------------------------------------------


def test_a_listed_release() -> None:
    release = release_pb2.Release(name="etcd", clusterID="c1", version=3, status="deployed",
                                  kube_groups=["dev"])
    release.created_at.FromSeconds(1683742419)
    release.updated_at.FromNanoseconds(1683742419_039822000)
    release.config.update({"replicaCount": 3.0, "ratio": 0.5, "ports": [2379.0]})
    pod = release.resources["pod"].items.add(kind="Pod", name="etcd-0",
                                             object_json='{"spec": {"a": 1.0}}')
    pod.secret_data["x"] = 3
    data = to_dict(release)
    assert data["created_at"] == "2023-05-10T18:13:39Z"
    assert data["updated_at"] == "2023-05-10T18:13:39.039822Z"
    assert data["config"] == {"replicaCount": 3, "ratio": 0.5, "ports": [2379]}
    assert isinstance(data["config"]["replicaCount"], int)
    (item,) = data["resources"]["pod"]
    assert item["object"] == {"spec": {"a": 1.0}} and "object_json" not in item
    assert data["kube_groups"] == ["dev"] and data["clusterID"] == "c1"
    assert_same(release)


def test_unset_messages_are_null_and_structs_empty() -> None:
    data = to_dict(release_pb2.Release())
    assert data["created_at"] is None and data["config"] == {} and data["resources"] == {}
    assert to_dict(release_pb2.DeleteReleaseResponse()) == {"release": None}
    assert_same(release_pb2.Release())


def test_the_top_level_list_wrapper_keeps_its_items() -> None:
    message = release_pb2.ReleaseResourceList()
    message.items.add(kind="Pod")
    assert list(to_dict(message)) == ["items"]
    assert_same(message)


def test_scalars_as_protobuf_writes_them() -> None:
    kinds = message_factory.GetMessageClass(KINDS)
    message = kinds(one_int64=-(2**63), one_uint64=2**64 - 1, one_bytes=b"\x00\xff",
                    one_float=0.1, one_double=math.inf, one_enum=2,
                    many_double=[math.nan, -math.inf], maybe_int64=0, thing_json="", one_null=0)
    data = to_dict(message)
    assert data["one_int64"] == str(-(2**63)) and data["one_uint64"] == str(2**64 - 1)
    assert data["one_bytes"] == "AP8=" and data["one_float"] == 0.1
    assert data["one_double"] == "Infinity" and data["many_double"] == ["NaN", "-Infinity"]
    assert data["one_enum"] == "COLOR_GREEN" and data["maybe_int64"] == "0"
    assert data["thing"] is None and data["one_null"] is None
    assert "maybe_string" not in data and "choice_string" not in data
    message.one_enum = 9  # an open enum's unnamed number
    assert to_dict(message)["one_enum"] == 9
    assert_same(message)


@pytest.mark.parametrize("nanos, text", [
    (0, "2023-05-10T18:13:39Z"), (5_000_000, "2023-05-10T18:13:39.005Z"),
    (5_000, "2023-05-10T18:13:39.000005Z"), (5, "2023-05-10T18:13:39.000000005Z"),
])
def test_timestamps_take_0_3_6_or_9_fractional_digits(nanos: int, text: str) -> None:
    message = release_pb2.ReleaseRevision(updated=timestamp_pb2.Timestamp(
        seconds=1683742419, nanos=nanos))
    assert to_dict(message)["updated"] == text
    assert_same(message)


def test_timestamps_at_the_ends_of_the_range() -> None:
    for seconds in (-62135596800, 253402300799, -1, 0):
        assert_same(release_pb2.ReleaseRevision(updated=timestamp_pb2.Timestamp(seconds=seconds)))


def test_a_value_with_no_kind_is_null() -> None:
    kinds = message_factory.GetMessageClass(KINDS)
    message = kinds()
    message.one_listvalue.values.add()  # type: ignore[attr-defined]
    message.one_value.SetInParent()  # type: ignore[attr-defined]
    assert to_dict(message)["one_listvalue"] == [None]
    assert to_dict(message)["one_value"] is None
    assert_same(message)


def test_well_known_wrappers_and_any() -> None:
    kinds = message_factory.GetMessageClass(KINDS)
    message = kinds(one_int64value=wrappers_pb2.Int64Value(value=5),
                    one_duration=duration_pb2.Duration(seconds=-3, nanos=-100_000_000))
    message.one_any.Pack(release_pb2.ReleaseRevision(revision=2))  # type: ignore[attr-defined]
    data = to_dict(message)
    assert data["one_int64value"] == "5" and data["one_duration"] == "-3.100s"
    assert data["one_any"]["@type"].endswith("capstan.v1.ReleaseRevision")
    assert data["one_stringvalue"] is None
    assert_same(message)


@pytest.mark.parametrize("bad", [
    release_pb2.Release(config=_struct({"x": math.nan})),
    release_pb2.Release(config=_struct({"x": [math.inf]})),
    release_pb2.ReleaseRevision(updated=timestamp_pb2.Timestamp(seconds=253402300800)),
    release_pb2.ReleaseRevision(updated=timestamp_pb2.Timestamp(nanos=-1)),
], ids=["nan-in-struct", "infinity-in-struct", "year-10000", "negative-nanos"])
def test_what_protobuf_refuses_is_refused(bad: Message) -> None:
    with pytest.raises((ValueError, json_format.Error)):
        reference_to_dict(bad)
    with pytest.raises((ValueError, json_format.Error)):
        to_dict(bad)


def test_a_well_known_type_on_its_own_is_protobufs_json() -> None:
    struct = _struct({"a": 1.0})
    assert to_dict(struct) == reference_to_dict(struct) == {"a": 1.0}
