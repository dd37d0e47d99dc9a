"""values.schema.json checks: helm's semantics, but no reference leaves the document and no
pattern or combinator can spin (issue 15, rows 1 and 8)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from capstan_server.errors import FailedPrecondition, InvalidArgument
from capstan_server.values_schema import validate_schema, validate_schema_async

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "replicaCount": {"type": "integer", "minimum": 0},
        "image": {"type": "object", "properties": {"tag": {"type": "string"}}},
    },
}


def test_schema_accepts_good_values_and_no_schema() -> None:
    validate_schema({"replicaCount": 1, "image": {"tag": "r9"}}, SCHEMA, chart="etcd-8.11.1")
    validate_schema({"anything": True}, None, chart="etcd-8.11.1")


def test_schema_failures_name_every_field_by_json_path() -> None:
    with pytest.raises(InvalidArgument) as err:
        validate_schema({"replicaCount": "three", "image": {"tag": 9}}, SCHEMA, chart="etcd-8.11.1")
    assert "etcd-8.11.1" in err.value.message
    assert "$.replicaCount" in err.value.message and "$.image.tag" in err.value.message
    assert [d["field"] for d in err.value.details] == ["$.image.tag", "$.replicaCount"]


def test_a_broken_schema_is_the_charts_fault() -> None:
    with pytest.raises(FailedPrecondition):
        validate_schema({}, {"type": "no-such-type"}, chart="bad-1.0.0")


def test_refs_inside_the_document_resolve() -> None:
    schema = {
        "definitions": {"tag": {"type": "string", "pattern": "^r[0-9]+$"}},
        "properties": {"image": {"properties": {"tag": {"$ref": "#/definitions/tag"}}}},
    }
    validate_schema({"image": {"tag": "r9"}}, schema, chart="c-1.0.0")
    with pytest.raises(InvalidArgument, match=r"\$\.image\.tag"):
        validate_schema({"image": {"tag": "latest"}}, schema, chart="c-1.0.0")


@pytest.mark.parametrize(
    "ref",
    [
        "file:///etc/passwd#/nope",
        "http://169.254.169.254/latest/meta-data/",
        "https://example.com/schema.json",
        "other.json",
        "/etc/hostname",
    ],
)
def test_refs_to_files_or_urls_are_refused_by_name(ref: str) -> None:
    schema = {"properties": {"a": {"$ref": ref}}}
    with pytest.raises(InvalidArgument) as err:
        validate_schema({"a": 1}, schema, chart="evil-1.0.0")
    assert ref in err.value.message and err.value.details[0]["ref"] == ref


def test_a_base_uri_cannot_smuggle_a_relative_ref_out() -> None:
    # "#..." refs under a foreign $id resolve against it; nothing outside may be retrieved.
    schema = {"$id": "http://127.0.0.1:1/x.json", "properties": {"a": {"$ref": "#/nope"}}}
    with pytest.raises((InvalidArgument, FailedPrecondition)) as err:
        validate_schema({"a": 1}, schema, chart="evil-1.0.0")
    assert "127.0.0.1:1/x.json" not in err.value.message.replace("#/nope", "")


def test_catastrophic_patterns_run_in_linear_time() -> None:
    evil = {"properties": {"a": {"type": "string", "pattern": "^(a|aa)+$"}}}
    started = time.monotonic()
    with pytest.raises(InvalidArgument):
        validate_schema({"a": "a" * 5000 + "!"}, evil, chart="evil-1.0.0")
    props: dict[str, Any] = {
        "patternProperties": {"^(a|aa)+$": {"type": "string"}},
        "additionalProperties": False,
    }
    with pytest.raises(InvalidArgument):
        validate_schema({"a" * 5000 + "!": 1}, props, chart="evil-1.0.0")
    assert time.monotonic() - started < 5  # Python's re: longer than the universe's age


def test_patterns_use_go_regexp_syntax_like_helm() -> None:
    schema = {"properties": {"a": {"type": "string", "pattern": "(a)\\1"}}}  # backreference
    with pytest.raises(FailedPrecondition, match="RE2"):
        validate_schema({"a": "aa"}, schema, chart="c-1.0.0")


def test_unevaluated_with_pattern_properties_is_refused() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "patternProperties": {"^x": {}},
        "unevaluatedProperties": False,
    }
    with pytest.raises(FailedPrecondition, match="unevaluatedProperties"):
        validate_schema({"x": 1}, schema, chart="c-1.0.0")


def test_exponential_combinators_stop_at_the_budget() -> None:
    # Each level refers twice to the one below: a small document, 2^40 paths to check.
    defs: dict[str, Any] = {"d0": {"type": "integer"}}
    for i in range(1, 41):
        below = {"$ref": f"#/definitions/d{i - 1}"}
        defs[f"d{i}"] = {"anyOf": [below, {"allOf": [below, {"minLength": 1}]}]}
    node = {"definitions": defs, "$ref": "#/definitions/d40"}
    started = time.monotonic()
    with pytest.raises((FailedPrecondition, InvalidArgument)):
        validate_schema("x", node, chart="c-1.0.0", budget_s=0.5)  # type: ignore[arg-type]
    assert time.monotonic() - started < 10


async def test_validation_runs_off_the_event_loop() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await validate_schema_async({"replicaCount": 1}, SCHEMA, chart="etcd-8.11.1")
    ticker.cancel()
