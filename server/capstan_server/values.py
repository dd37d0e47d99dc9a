"""The server's one YAML loader and Helm's values semantics: merge, coalesce, reuse/reset
(checking values against a chart's schema is `values_schema.py`).

Every piece of YAML the server reads (user values, Chart.yaml, values.yaml, repository indexes,
kubeconfigs, release manifests) goes through `load_yaml`, so all of it parses the same way:
safely, with string keys, and with timestamps left as strings, as Helm (sigs.k8s.io/yaml) does.

The merge rules are Helm's (pkg/cli/values and pkg/chart/common/util/coalesce.go):

- `merge_values`: several values files, later over earlier; maps merge recursively, anything
  else replaces; a null is kept (it means "delete this key" once coalesced with the chart).
- `coalesce`: user values over chart defaults; a user null deletes the chart's key.
- `upgrade_config`: the config an upgrade stores, after `--reuse-values` / `--reset-values`.

Charts with dependencies (subchart values and globals) are not coalesced here: the helm driver
lets helm do that, and the memory driver does not render.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import json
import re
from collections.abc import Mapping
from typing import Any

import yaml

from capstan_server import limits
from capstan_server.errors import InvalidArgument

Values = dict[str, Any]

#: The C loader is much faster on large repository indexes; fall back to the pure-Python one.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
#: Strings at least this long are counted once per object, so that an alias of a long string
#: counts as an expansion; shorter ones may be shared by Python itself and are not.
_SHARED_STRING_CHARS = 64


_VALUE_TAG = "tag:yaml.org,2002:value"
#: YAML 1.1 ints and floats as go-yaml (Helm's parser, through sigs.k8s.io/yaml) reads them:
#: PyYAML's patterns without the base-60 forms, so `1:20` stays a string as in Helm.
_GO_YAML_NUMBERS = {
    "tag:yaml.org,2002:int": re.compile(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    "tag:yaml.org,2002:float": re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
}


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """SafeLoader that reads plain scalars as Helm does (go-yaml): no implicit timestamps
    (`2023-05-10` stays a string), `=` is the string "=" rather than YAML 1.1's `value` tag
    that PyYAML cannot construct (an unquoted `- =` in a CRD's enum), no base-60 numbers."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, _GO_YAML_NUMBERS.get(tag, rx)) for tag, rx in resolvers
            if tag not in (_TIMESTAMP_TAG, _VALUE_TAG)]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}

_DOC_SEPARATOR = re.compile(r"^---(?:[ \t]|$)")


def load_yaml(
    text: str | bytes,
    *,
    what: str = "YAML",
    max_nodes: int = limits.MAX_YAML_NODES,
    max_alias_bytes: int = limits.MAX_YAML_ALIAS_BYTES,
    max_depth: int = limits.MAX_YAML_DEPTH,
) -> list[Any]:
    """Parse every document of `text` into JSON-compatible Python objects.

    Raises InvalidArgument naming `what`, the document number and the line within that
    document when the text is not valid YAML, and when it breaks a budget: more than
    `max_nodes` nodes or nesting deeper than `max_depth` once expanded, or aliases that would
    add more than `max_alias_bytes` (in JSON) to what the text itself holds. The alias budget
    is checked on the parsed tree, where an alias is a shared object, before anything is
    expanded, so an alias bomb is refused in about the time it takes to read its text.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidArgument(f"{what} is not UTF-8 text: {err}") from None
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as err:
        raise _yaml_error(text, err, what) from None
    except yaml.YAMLError as err:
        raise InvalidArgument(f"invalid YAML in {what}: {err}") from None
    expansion = _Expansion(what, max_alias_bytes, max_depth)
    for doc in documents:
        expansion.size(doc, 0)
    budget = [max_nodes]
    return [_jsonable(doc, what, budget) for doc in documents]


class _Expansion:
    """Measures the JSON size of parsed YAML without expanding it: an object met a second time
    is an alias, and its size counts against the alias budget."""

    def __init__(self, what: str, max_alias_bytes: int, max_depth: int) -> None:
        self.what = what
        self.max_alias_bytes = max_alias_bytes
        self.max_depth = max_depth
        self.alias_bytes = 0
        self._sizes: dict[int, int] = {}
        self._open: set[int] = set()

    def size(self, node: Any, depth: int) -> int:
        if isinstance(node, str) and len(node) < _SHARED_STRING_CHARS:
            return len(node) + 2
        if not isinstance(node, dict | list | str | bytes):
            return 8
        key = id(node)
        known = self._sizes.get(key)
        if known is not None:
            self.alias_bytes += known
            if self.alias_bytes > self.max_alias_bytes:
                raise InvalidArgument(
                    f"{self.what} is too large once its aliases are expanded (more than "
                    f"{self.max_alias_bytes} bytes of aliased content)",
                    details=[{"what": self.what, "reason": "alias expansion budget"}],
                )
            return known
        if key in self._open:
            raise InvalidArgument(f"{self.what} holds a recursive alias")
        if depth >= self.max_depth:
            raise InvalidArgument(
                f"{self.what} is nested too deeply: at most {self.max_depth} levels allowed",
                details=[{"what": self.what, "reason": "too deep", "max_depth": self.max_depth}],
            )
        self._open.add(key)
        if isinstance(node, dict):
            total = 2 + sum(len(str(k)) + 4 + self.size(v, depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            total = 2 + sum(self.size(v, depth + 1) + 1 for v in node)
        else:
            total = len(node) + 2
        self._open.discard(key)
        self._sizes[key] = total
        return total


def _yaml_error(text: str, err: yaml.MarkedYAMLError, what: str) -> InvalidArgument:
    mark = err.problem_mark or err.context_mark
    if mark is None:
        return InvalidArgument(f"invalid YAML in {what}: {err}")
    context = err.context or ""
    if err.context and err.context_mark is not None and err.context_mark is not mark:
        # e.g. "while parsing a flow sequence" that began lines before the problem was found
        doc, line = _document_position(text, err.context_mark.line)
        context += (
            f" (started at document {doc}, line {line}, column {err.context_mark.column + 1})"
        )
    problem = " ".join(p for p in (context, err.problem) if p) or "invalid YAML"
    document, line = _document_position(text, mark.line)
    where = f"document {document}, line {line}, column {mark.column + 1}"
    return InvalidArgument(
        f"invalid YAML in {what} ({where}): {problem}",
        details=[
            {
                "what": what,
                "document": document,
                "line": line,
                "column": mark.column + 1,
                "problem": problem,
            }
        ],
    )


def _document_position(text: str, line0: int) -> tuple[int, int]:
    """(1-based document number, 1-based line within that document) of absolute line `line0`.

    Documents are split at `---` lines, as the YAML spec allows them only at column 0; lines
    count from the line after the `---` so they match the line numbers of the file the
    document came from (the CLI joins `-f` files with `---`).
    """
    lines = text.splitlines()
    document, start = 1, -1
    seen_content = False
    for index, line in enumerate(lines[: line0 + 1]):
        if _DOC_SEPARATOR.match(line):
            if seen_content:
                document += 1
            seen_content = True
            start = index
        elif line.strip() and not line.lstrip().startswith(("#", "%")):
            seen_content = True
    return document, line0 - start


def _jsonable(node: Any, what: str, budget: list[int]) -> Any:
    """Turn a YAML tree into JSON types (string keys), counting nodes against `budget`."""
    budget[0] -= 1
    if budget[0] < 0:
        raise InvalidArgument(f"{what} is too large (too many nodes after expanding aliases)")
    if node is None or isinstance(node, str | bool | int | float):
        return node
    if isinstance(node, dict):
        return {_key(k): _jsonable(v, what, budget) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_jsonable(v, what, budget) for v in node]
    if isinstance(node, _dt.date | _dt.datetime):
        return node.isoformat()
    if isinstance(node, bytes):
        return base64.b64encode(node).decode("ascii")
    if isinstance(node, set | frozenset):
        return sorted(_key(v) for v in node)
    raise InvalidArgument(f"{what} holds a value of unsupported type {type(node).__name__}")


def _key(key: Any) -> str:
    # sigs.k8s.io/yaml turns non-string keys into their JSON spelling (true, 1, null).
    return key if isinstance(key, str) else json.dumps(key, default=str)


# -- user values ----------------------------------------------------------------------------


def parse_values(text: str) -> Values:
    """The user's values from YAML text: every document (one per `-f` file) must be a mapping
    (or empty); they are merged in order, later documents winning."""
    merged: Values = {}
    if not text.strip():
        return merged
    documents = load_yaml(text, what="values", max_depth=limits.MAX_JSON_DEPTH)
    for number, document in enumerate(documents, start=1):
        if document is None:
            continue
        if not isinstance(document, dict):
            kind = "a list" if isinstance(document, list) else f"a {type(document).__name__}"
            raise InvalidArgument(
                f"values document {number} is {kind}, not a mapping of keys to values",
                details=[{"what": "values", "document": number, "problem": "not a mapping"}],
            )
        merged = merge_values(merged, document)
    return merged


def user_values(text: str, json_values: Mapping[str, Any] | None = None) -> Values:
    """The values a user supplied: YAML documents merged in order, then `json_values` over them."""
    merged = parse_values(text)
    if json_values:
        merged = merge_values(merged, json_values)
    return merged


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> Values:
    """Helm's mergeMaps: `override` over `base`, maps merged recursively, nulls kept."""
    out: Values = copy.deepcopy(dict(base))
    for key, value in override.items():
        current = out.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            out[key] = merge_values(current, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# -- Helm's coalescing ----------------------------------------------------------------------


def coalesce(defaults: Mapping[str, Any], values: Mapping[str, Any]) -> Values:
    """Helm's CoalesceValues for one chart: `values` over the chart `defaults`.

    A null in `values` removes the key the chart defines; a null for a key the chart does not
    define is kept. Where the user gives a scalar and the chart a map (or the reverse), the
    user's value wins, as in Helm (which only prints a warning).
    """
    return _coalesce_tables(copy.deepcopy(dict(values)), copy.deepcopy(dict(defaults)))


def _coalesce_tables(dst: Values, src: Values) -> Values:
    """Helm's CoalesceTables: `src` fills what `dst` lacks; `dst` is authoritative."""
    for key, value in src.items():
        if key not in dst:
            dst[key] = value
        elif dst[key] is None:
            del dst[key]
        elif isinstance(value, dict) and isinstance(dst[key], dict):
            _coalesce_tables(dst[key], value)
    return dst


def upgrade_config(
    previous_config: Mapping[str, Any],
    new_values: Mapping[str, Any],
    *,
    reuse: bool,
    reset: bool,
) -> Values:
    """The user config an upgrade stores, with Helm's exact rules (action.Upgrade.reuseValues):

    - `reset`: the new values only (the chart's defaults fill the rest); `reuse` is ignored;
    - `reuse`: the new values merged over the previous config (a new null deletes a key);
    - neither, and no new values: the previous config is kept;
    - neither, with new values: the new values replace the previous config.

    (With `reuse`, Helm also renders against the *previous* chart's coalesced values instead of
    the new chart's defaults; that only matters to a renderer, which this function is not.)
    """
    if reset:
        return copy.deepcopy(dict(new_values))
    if reuse:
        return _coalesce_tables(
            copy.deepcopy(dict(new_values)), copy.deepcopy(dict(previous_config))
        )
    if not new_values:
        return copy.deepcopy(dict(previous_config))
    return copy.deepcopy(dict(new_values))
