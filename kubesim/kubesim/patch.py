"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Strategic merge patch merges lists by the Kubernetes merge keys of well-known fields
(``containers`` by ``name``, ``volumeMounts`` by ``mountPath`` ...) and understands the
``$patch``, ``$retainKeys``, ``$deleteFromPrimitiveList/`` and ``$setElementOrder/`` directives.
"""

from __future__ import annotations

from typing import Any

from .errors import ApiError, BadRequest
from .objects import clone

#: Field name -> merge key, for lists of objects merged by key (patchMergeKey in k8s.io/api).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "conditions": "type",
    "ownerReferences": "uid",
    "readinessGates": "conditionType",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "ephemeralContainerStatuses": "name",
    "ingress": "ip",
}
#: Lists of scalars merged as sets.
SET_LISTS: frozenset[str] = frozenset({"finalizers"})


def list_merge_key(field: str, items: list[Any]) -> str | None:
    """The merge key for list ``field`` (``ports`` depends on what its items hold)."""
    if field == "ports":
        if any(isinstance(i, dict) and "containerPort" in i for i in items):
            return "containerPort"
        return "port"
    return MERGE_KEYS.get(field)


# ---------------------------------------------------------------- JSON merge patch


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    result = clone(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------- JSON patch


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise BadRequest(f"invalid JSON pointer {path!r}")
    return [_unescape(t) for t in path[1:].split("/")]


def _index(container: list[Any], token: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit():
        raise BadRequest(f"invalid array index {token!r}")
    idx = int(token)
    if idx > len(container) or (idx == len(container) and not allow_end):
        raise ApiError(422, "Invalid", f"array index {idx} out of bounds")
    return idx


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for token in tokens[:-1]:
        if isinstance(cur, dict):
            if token not in cur:
                raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(tokens)}")
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(cur, token, False)]
        else:
            raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(tokens)}")
    return cur


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(tokens)}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, False)]
    raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(tokens)}")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, True), value)
    else:
        raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise BadRequest("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise ApiError(422, "Invalid", f"unable to remove nonexistent key: {last}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, False))
    raise ApiError(422, "Invalid", f"doc is missing path: /{'/'.join(tokens)}")


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 operations (add, remove, replace, move, copy, test) applied to a copy."""
    if not isinstance(operations, list):
        raise BadRequest("a JSON patch must be a list of operations")
    doc = clone(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op:
            raise BadRequest(f"invalid JSON patch operation {op!r}")
        kind = op["op"]
        path = _pointer(str(op.get("path", "")))
        if kind == "add":
            doc = _add(doc, path, clone(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            if path:
                parent = _parent(doc, path)
                if isinstance(parent, list):
                    parent[_index(parent, path[-1], False)] = clone(op.get("value"))
                else:
                    parent[path[-1]] = clone(op.get("value"))
            else:
                doc = clone(op.get("value"))
        elif kind in ("move", "copy"):
            src = _pointer(str(op.get("from", "")))
            value = _remove(doc, src) if kind == "move" else clone(_get(doc, src))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(422, "Invalid", f"testing value {op.get('path')} failed")
        else:
            raise BadRequest(f"unknown JSON patch operation {kind!r}")
    return doc


# ---------------------------------------------------------------- strategic merge patch

_DELETE = object()


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch to a copy of ``target``."""
    if not isinstance(patch, dict):
        raise BadRequest("a strategic merge patch must be a JSON object")
    result = _smp_map(clone(target) if isinstance(target, dict) else {}, patch)
    return {} if result is _DELETE else result


def _smp_map(target: dict[str, Any], patch: dict[str, Any]) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch" and not k.startswith("$")}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            current = target.get(field)
            if isinstance(current, list) and isinstance(value, list):
                target[field] = [x for x in current if x not in value]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            target.pop(key, None)
            continue
        current = target.get(key)
        if isinstance(value, dict):
            merged = _smp_map(current if isinstance(current, dict) else {}, value)
            if merged is _DELETE:
                target.pop(key, None)
            else:
                target[key] = merged
        elif isinstance(value, list):
            target[key] = _smp_list(key, current if isinstance(current, list) else [], value)
        else:
            target[key] = clone(value)
    if isinstance(retain, list):
        keep = set(retain)
        for key in list(target):
            if key not in keep:
                del target[key]
    return target


def _smp_list(field: str, current: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [clone(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in SET_LISTS:
        out = list(current)
        for item in patch:
            if item not in out:
                out.append(clone(item))
        return out
    key = list_merge_key(field, current + patch)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return [clone(i) for i in patch]
    out = list(current)
    for item in patch:
        if key not in item:
            out.append(clone({k: v for k, v in item.items() if k != "$patch"}))
            continue
        idx = next(
            (n for n, cur in enumerate(out) if isinstance(cur, dict) and cur.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            merged = _smp_map({}, item)
            if merged is not _DELETE:
                out.append(merged)
        else:
            merged = _smp_map(out[idx], item)
            if merged is _DELETE:
                out.pop(idx)
            else:
                out[idx] = merged
    return out
