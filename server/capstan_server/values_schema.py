"""Values against a chart's `values.schema.json`, as helm checks them before it renders, but
without the two ways a stranger's schema could hurt the server.

- References stay inside the document. Helm compiles the schema as `file:///values.schema.json`
  with loaders for `file://`, `http://` and `https://` (helm 3.18+ and 4: santhosh-tekuri/
  jsonschema v6 in `pkg/chart/.../util/jsonschema.go`; helm 3.17: xeipuuv/gojsonschema, which
  also follows file and http refs), so on the machine that runs helm a schema can read local
  files and reach any address. Capstan refuses every `$ref` / `$dynamicRef` / `$recursiveRef`
  that is not a fragment (`#...`) of the document itself, with INVALID_ARGUMENT naming it, and
  gives jsonschema a registry that cannot retrieve anything, so nothing is ever fetched and no
  error can quote a referenced document.
- `pattern`, `patternProperties` and the pattern part of `additionalProperties` run on RE2
  (google-re2), which is linear in the input, and which is also what Go's `regexp` (helm's)
  implements: a pattern RE2 cannot compile (backreferences, lookaround) fails in helm too.
  jsonschema's `unevaluatedProperties` would still match `patternProperties` with Python's
  backtracking `re`, so a schema combining the two is refused.
- Every keyword checks a deadline (`SCHEMA_BUDGET_S`): combinators can still make validation
  exponential, and the check runs on a worker thread (`validate_schema_async`), so it never
  stalls the event loop and always ends.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jsonschema
import re2  # google-re2: linear-time matching, Go's regexp syntax
import referencing
import referencing.exceptions

from capstan_server.errors import FailedPrecondition, InvalidArgument

__all__ = [
    "SCHEMA_BUDGET_S",
    "check_references",
    "validate_schema",
    "validate_schema_async",
]

#: Wall-clock budget of one validation (a real chart's schema takes milliseconds).
SCHEMA_BUDGET_S = 5.0
#: Failing fields listed in the message (all of them are in the details).
_ERRORS_LISTED = 20
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_PATTERN_OPTIONS = re2.Options()
_PATTERN_OPTIONS.max_mem = 8 << 20  # RE2's own default: bounds a huge pattern's automaton


class _OutOfTime(Exception):
    """The validation passed its deadline."""


class _BadPattern(Exception):
    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self.pattern = pattern


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _PATTERN_OPTIONS)
    except re2.error:
        raise _BadPattern(pattern) from None


def _search(pattern: str, text: str) -> bool:
    return _compiled(pattern).search(text) is not None


# jsonschema's own keywords, with RE2 instead of `re` (same messages as jsonschema's).


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            listed = ", ".join(map(repr, sorted(extras)))
            yield jsonschema.ValidationError(
                f"{listed} {verb} not match any of the regexes: "
                + ", ".join(map(repr, sorted(patterns)))
            )
        else:
            was = "was" if len(extras) == 1 else "were"
            listed = ", ".join(map(repr, extras))
            yield jsonschema.ValidationError(
                f"Additional properties are not allowed ({listed} {was} unexpected)"
            )


_OVERRIDES: dict[str, Callable[..., Iterator[Any]]] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


def _with_deadline(check: Callable[..., Iterator[Any]], deadline: float) -> Callable[..., Any]:
    def checked(*args: Any) -> Iterator[Any]:
        if time.monotonic() > deadline:
            raise _OutOfTime
        yield from check(*args)

    return checked


def _refuse_retrieval(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


def _walk(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(JSON path, keyword, value) of every keyword of every subschema, iteratively (each
    object once, should a caller hand in a graph rather than parsed JSON)."""
    stack = [(node, path)]
    seen: set[int] = set()
    while stack:
        current, where = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, dict):
            for key, value in current.items():
                yield where, key, value
                stack.append((value, f"{where}/{key}"))
        elif isinstance(current, list):
            stack.extend((v, f"{where}/{i}") for i, v in enumerate(current))


def check_references(schema: Mapping[str, Any], chart: str) -> None:
    """InvalidArgument naming the first reference of `schema` outside the document;
    FailedPrecondition for a schema that could only be checked with Python's `re`."""
    uses_unevaluated = uses_pattern_properties = False
    for where, key, value in _walk(schema, "#"):
        if key in _REF_KEYWORDS and isinstance(value, str) and not value.startswith("#"):
            raise InvalidArgument(
                f"chart {chart}'s values.schema.json refers to {value[:200]!r} (at {where}): "
                "Capstan resolves references only inside the schema itself (#/...), never "
                "files or URLs",
                details=[{"chart": chart, "ref": value[:200], "at": where}],
            )
        uses_unevaluated |= key == "unevaluatedProperties"
        uses_pattern_properties |= key == "patternProperties"
    if uses_unevaluated and uses_pattern_properties:
        raise FailedPrecondition(
            f"chart {chart}'s values.schema.json combines unevaluatedProperties with "
            "patternProperties, which Capstan cannot check in bounded time"
        )


def validate_schema(
    values: Mapping[str, Any],
    schema: Mapping[str, Any] | None,
    *,
    chart: str,
    budget_s: float = SCHEMA_BUDGET_S,
) -> None:
    """Check coalesced `values` against a chart's values.schema.json. InvalidArgument lists
    the failing fields by JSON path (`$.image.tag`), or names a reference outside the schema;
    FailedPrecondition when the schema itself is unusable. Blocking and CPU-bound: use
    `validate_schema_async` on the event loop."""
    if not schema:
        return
    schema = dict(schema)
    check_references(schema, chart)
    deadline = time.monotonic() + budget_s
    try:
        base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        base.check_schema(schema)
        keywords = {**base.VALIDATORS, **_OVERRIDES}
        checked = {k: _with_deadline(v, deadline) for k, v in keywords.items()}
        validator_class = jsonschema.validators.extend(base, checked)  # type: ignore[no-untyped-call]
        registry: referencing.Registry[Any] = referencing.Registry(
            retrieve=_refuse_retrieval  # type: ignore[call-arg]
        )
        validator = validator_class(schema, registry=registry)
        errors = sorted(validator.iter_errors(values), key=lambda e: list(map(str, e.path)))
    except jsonschema.SchemaError as err:
        raise FailedPrecondition(
            f"chart {chart} has an invalid values.schema.json: {err.message[:500]}"
        ) from None
    except _BadPattern as err:
        raise FailedPrecondition(
            f"chart {chart}'s values.schema.json has a pattern {err.pattern[:200]!r} that is "
            "not RE2 syntax (Go's regexp, which helm uses, cannot run it either)"
        ) from None
    except _OutOfTime:
        raise FailedPrecondition(
            f"chart {chart}'s values.schema.json takes more than {budget_s:g} s to check"
        ) from None
    except referencing.exceptions.Unresolvable as err:
        ref = str(getattr(err, "ref", ""))[:200]
        raise InvalidArgument(
            f"chart {chart}'s values.schema.json has a reference {ref!r} that does not point "
            "inside the schema",
            details=[{"chart": chart, "ref": ref}],
        ) from None
    except RecursionError:
        raise FailedPrecondition(
            f"chart {chart}'s values.schema.json refers to itself without end"
        ) from None
    except Exception as err:  # never quote what went wrong inside: it may hold any text
        raise FailedPrecondition(
            f"chart {chart}'s values.schema.json cannot be used ({type(err).__name__})"
        ) from None
    if not errors:
        return
    details = [{"field": e.json_path, "description": e.message[:500]} for e in errors]
    listed = "; ".join(f"{d['field']}: {d['description']}" for d in details[:_ERRORS_LISTED])
    more = f" (and {len(details) - _ERRORS_LISTED} more)" if len(details) > _ERRORS_LISTED else ""
    raise InvalidArgument(
        f"values don't meet the specifications of the schema of chart {chart}: {listed}{more}",
        details=details,
    )


async def validate_schema_async(
    values: Mapping[str, Any], schema: Mapping[str, Any] | None, *, chart: str
) -> None:
    """`validate_schema` on a worker thread, so the event loop keeps serving meanwhile."""
    if schema:
        await asyncio.to_thread(validate_schema, values, schema, chart=chart)
