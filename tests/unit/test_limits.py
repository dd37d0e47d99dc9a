"""Every limit of `capstan_server.limits`, one test each (the end-to-end answers to hostile
requests are in tests/services/test_hostile_input.py and tests/gateway/test_rest_hostile.py)."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from capstan.v1 import chart_pb2, cluster_pb2, release_pb2
from capstan_server import limits
from capstan_server.errors import InvalidArgument
from capstan_server.gateway import capstan_services
from capstan_server.interceptors import status_for


def _requests() -> list[Any]:
    return [m.input_type for s in capstan_services() for m in s.methods]


def test_every_request_field_has_a_limit() -> None:
    limits.check_covered(_requests())


def test_an_unclassified_field_is_caught() -> None:
    descriptor = struct_pb2.Value.DESCRIPTOR  # string_value: no limit of its own
    with pytest.raises(ValueError, match="string_value"):
        limits.check_covered([descriptor])


def _messages_with(field: str) -> list[type[Message]]:
    found = []
    for module in (release_pb2, chart_pb2, cluster_pb2):
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            if descriptor.name.endswith("Request") and field in descriptor.fields_by_name:
                found.append(getattr(module, descriptor.name))
    return found


def _request(cls: type[Message], **fields: Any) -> Message:
    """A request of `cls` with `fields` and every other REQUIRED field set."""
    message = cls(**fields)
    for name in limits.required_fields(cls.DESCRIPTOR):
        if name not in fields:
            field = cls.DESCRIPTOR.fields_by_name[name]
            setattr(message, name, 1 if field.enum_type is not None else "x")
    return message


def test_required_fields_are_enforced() -> None:
    assert limits.required_fields(release_pb2.RecoverReleaseRequest.DESCRIPTOR) == ("id", "action")
    assert limits.required_fields(release_pb2.ListReleasesRequest.DESCRIPTOR) == ()
    with pytest.raises(InvalidArgument, match="chart_name is required"):
        limits.check_request(release_pb2.CreateReleaseRequest(cluster="c"))
    with pytest.raises(InvalidArgument, match="action is required"):
        limits.check_request(release_pb2.RecoverReleaseRequest(id="r"))
    limits.check_request(_request(release_pb2.RecoverReleaseRequest))


@pytest.mark.parametrize(("field", "limit"), sorted(limits.FIELD_MAX_CHARS.items()))
def test_string_lengths(field: str, limit: int) -> None:
    messages = _messages_with(field)
    assert messages, f"{field} is in no request"
    for cls in messages:
        repeated = cls.DESCRIPTOR.fields_by_name[field].is_repeated

        def value(text: str, repeated: bool = repeated) -> Any:
            return [text] if repeated else text

        limits.check_request(_request(cls, **{field: value("a" * limit)}))
        with pytest.raises(InvalidArgument, match=f"{field} is too long") as err:
            limits.check_request(_request(cls, **{field: value("a" * (limit + 1))}))
        assert len(err.value.message) < 200


@pytest.mark.parametrize("field", sorted(limits.FIELD_MAX_CHARS))
def test_no_string_holds_a_nul(field: str) -> None:
    for cls in _messages_with(field):
        repeated = cls.DESCRIPTOR.fields_by_name[field].is_repeated
        text = "a\x00b"
        with pytest.raises(InvalidArgument, match=f"{field} holds a NUL character"):
            limits.check_request(_request(cls, **{field: [text] if repeated else text}))


def test_repeated_fields_are_bounded() -> None:
    many = ["c"] * (limits.MAX_REPEATED_ITEMS + 1)
    with pytest.raises(InvalidArgument, match="charts has 1001 items"):
        limits.check_request(_request(chart_pb2.CreateRepositoryRequest, charts=many))
    limits.check_request(_request(chart_pb2.CreateRepositoryRequest, charts=many[1:]))


def test_field_kinds_have_their_named_limits() -> None:
    assert limits.FIELD_MAX_CHARS["release_name"] == limits.MAX_NAME_CHARS == 253
    assert limits.FIELD_MAX_CHARS["version"] == limits.MAX_VERSION_CHARS == 256
    assert limits.FIELD_MAX_CHARS["chart_name"] == limits.MAX_CHART_REF_CHARS
    assert limits.FIELD_MAX_CHARS["description"] == limits.MAX_DESCRIPTION_CHARS
    assert limits.FIELD_MAX_CHARS["values"] == limits.MAX_VALUES_BYTES
    assert limits.FIELD_MAX_CHARS["kubeconfig"] == limits.MAX_KUBECONFIG_BYTES
    assert limits.FIELD_MAX_CHARS["url"] == limits.MAX_URL_CHARS
    assert limits.FIELD_MAX_CHARS["password"] == limits.MAX_CREDENTIAL_CHARS


@pytest.mark.parametrize(("field", "bounds"), sorted(limits.INT_BOUNDS.items()))
def test_integer_bounds(field: str, bounds: tuple[int, int]) -> None:
    low, high = bounds
    for cls in _messages_with(field):
        limits.check_request(_request(cls, **{field: high}))
        for bad in (low - 1, high + 1) if high < 2**31 - 1 else (low - 1, -(2**31)):
            with pytest.raises(InvalidArgument, match=f"{field} must be between"):
                limits.check_request(_request(cls, **{field: bad}))


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_json_depth() -> None:
    assert limits.json_depth(1) == 0
    assert limits.json_depth({}) == 1
    assert limits.json_depth({"a": [1, {"b": []}]}) == 4
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert limits.json_depth(deep) == 100_001  # iterative: no RecursionError


def test_values_json_depth_and_size() -> None:
    ok = release_pb2.CreateReleaseRequest(chart_name="r/c")
    json_format.ParseDict({"values_json": _nested(limits.MAX_JSON_DEPTH)}, ok)
    limits.check_request(ok)
    deep = release_pb2.CreateReleaseRequest(chart_name="r/c")
    deep.values_json.update(_nested(limits.MAX_JSON_DEPTH + 1))
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        limits.check_request(deep)
    big = release_pb2.CreateReleaseRequest(chart_name="r/c")
    big.values_json.update({"blob": "x" * (limits.MAX_VALUES_BYTES + 1)})
    with pytest.raises(InvalidArgument, match="values_json is too large"):
        limits.check_request(big)


def test_clip_and_echo() -> None:
    assert limits.clip("short") == "short"
    long = "x" * 8000
    assert len(limits.clip(long)) < limits.MAX_ECHO_CHARS + 30
    assert "8000 characters" in limits.clip(long)
    assert len(limits.echo(long)) < limits.MAX_ECHO_CHARS + 30
    assert limits.clip_details({"value": long, "n": 3, "list": [long]}) == {
        "value": limits.clip(long),
        "n": 3,
        "list": [limits.clip(long)],
    }


def test_error_statuses_stay_small() -> None:
    """An error echoing a huge value still fits well inside gRPC's trailer limit."""
    long = "x" * 100_000
    error = InvalidArgument(f"bad {long}", details=[{"value": long}] * 50)
    status = status_for(error)
    assert status.code is grpc.StatusCode.INVALID_ARGUMENT
    assert len(status.details) <= limits.MAX_ERROR_MESSAGE_CHARS + 40
    trailers = sum(len(k) + len(v) for k, v in status.trailing_metadata)
    assert trailers < 8 * 1024


def test_message_size_limits_agree_with_the_client() -> None:
    from capstan.client import DEFAULT_MAX_MESSAGE_BYTES

    assert DEFAULT_MAX_MESSAGE_BYTES == limits.DEFAULT_MAX_MESSAGE_BYTES


def test_body_and_parser_limits() -> None:
    # The gateway refuses long paths itself, so aiohttp's parser must let them through.
    assert limits.MAX_PATH_CHARS < limits.MAX_REQUEST_LINE_BYTES
    assert limits.MAX_VALUES_BYTES < limits.MAX_BODY_BYTES < limits.DEFAULT_MAX_MESSAGE_BYTES
    assert limits.MAX_ERROR_DETAILS_BYTES + limits.MAX_ERROR_MESSAGE_CHARS < 8 * 1024
    assert json.dumps(limits.INT_BOUNDS)  # JSON-able: the OpenAPI document states them
