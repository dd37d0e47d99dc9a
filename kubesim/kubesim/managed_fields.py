"""Simplified server-side apply: field ownership in ``metadata.managedFields`` (FieldsV1 trees).

Ownership is tracked per manager as a set of leaf paths. ``apply`` merges an apply
configuration into the live object (maps recursively, keyed lists by their merge keys, other
lists atomically), reports conflicts with other managers' fields unless forced, and removes
fields the applier owned before but no longer applies (when nobody else owns them).
Plain writes (``record_update``) give the writer ownership of the fields it changed.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ApiError
from .objects import Obj, clone, now_rfc3339
from .patch import SET_LISTS, list_merge_key

Path = tuple[str, ...]
_UNTRACKED_META = frozenset(
    {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
     "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"}
)
_MISSING = object()


def _item_key(key: str, item: dict[str, Any]) -> str:
    return "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"))


def _leaves(value: Any, name: str, prefix: Path, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _leaves(v, k, (*prefix, f"f:{k}"), out)
        return
    if isinstance(value, list) and value:
        if name in SET_LISTS and all(not isinstance(i, dict | list) for i in value):
            for item in value:
                out.add((*prefix, "v:" + json.dumps(item)))
            return
        key = list_merge_key(name, value)
        if key and all(isinstance(i, dict) and key in i for i in value):
            for item in value:
                item_path = (*prefix, _item_key(key, item))
                out.add((*item_path, "."))
                for k, v in item.items():
                    _leaves(v, k, (*item_path, f"f:{k}"), out)
            return
    out.add(prefix)


def field_paths(obj: Obj) -> set[Path]:
    """The leaf paths an object (or apply configuration) sets, in FieldsV1 segment form."""
    out: set[Path] = set()
    for k, v in obj.items():
        if k in ("apiVersion", "kind"):
            continue
        if k == "metadata" and isinstance(v, dict):
            for mk, mv in v.items():
                if mk not in _UNTRACKED_META:
                    _leaves(mv, mk, ("f:metadata", f"f:{mk}"), out)
            continue
        _leaves(v, k, (f"f:{k}",), out)
    return out


def value_at(obj: Any, path: Path) -> Any:
    cur = obj
    for seg in path:
        if seg == ".":
            return cur
        if seg.startswith("f:"):
            if not isinstance(cur, dict) or seg[2:] not in cur:
                return _MISSING
            cur = cur[seg[2:]]
        elif seg.startswith("k:"):
            want = json.loads(seg[2:])
            if not isinstance(cur, list):
                return _MISSING
            found = _MISSING
            for item in cur:
                if isinstance(item, dict) and all(item.get(k) == v for k, v in want.items()):
                    found = item
                    break
            if found is _MISSING:
                return _MISSING
            cur = found
        elif seg.startswith("v:"):
            value = json.loads(seg[2:])
            return value if isinstance(cur, list) and value in cur else _MISSING
    return cur


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for seg in path:
            node = node.setdefault(seg, {})
    return tree


def from_fields_v1(tree: Any, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    for seg, child in tree.items():
        path = (*prefix, seg)
        if isinstance(child, dict) and child:
            out |= from_fields_v1(child, path)
        else:
            out.add(path)
    return out


def _entries(obj: Obj) -> list[dict[str, Any]]:
    entries = (obj.get("metadata") or {}).get("managedFields")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _entry(manager: str, operation: str, api_version: str, paths: set[Path],
           subresource: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def _same_entry(e: dict[str, Any], manager: str, operation: str, subresource: str) -> bool:
    return (
        e.get("manager") == manager
        and e.get("operation") == operation
        and e.get("subresource", "") == subresource
    )


def record_update(
    old: Obj | None, new: Obj, manager: str, api_version: str, subresource: str
) -> None:
    """Give ``manager`` (operation Update) the fields that changed from ``old`` to ``new``."""
    new_paths = field_paths(new)
    if old is None:
        changed = new_paths
    else:
        changed = {p for p in new_paths if value_at(old, p) != value_at(new, p)}
    entries = _entries(old) if old is not None else []
    out: list[dict[str, Any]] = []
    mine: set[Path] = set()
    for e in entries:
        paths = from_fields_v1(e.get("fieldsV1")) & new_paths
        if _same_entry(e, manager, "Update", subresource):
            mine = paths
            continue
        paths -= changed
        if paths:
            out.append({**e, "fieldsV1": to_fields_v1(paths)})
    mine |= changed
    if mine:
        out.append(_entry(manager, "Update", api_version, mine, subresource))
    if out:
        new.setdefault("metadata", {})["managedFields"] = out
    else:
        new.setdefault("metadata", {}).pop("managedFields", None)


# ---------------------------------------------------------------- apply


def _merge(live: Any, config: Any, name: str) -> Any:
    if isinstance(live, dict) and isinstance(config, dict):
        out = dict(live)
        for k, v in config.items():
            out[k] = _merge(live.get(k), v, k) if k in live else clone(v)
        return out
    if isinstance(live, list) and isinstance(config, list):
        if name in SET_LISTS and all(not isinstance(i, dict | list) for i in live + config):
            return list(live) + [clone(i) for i in config if i not in live]
        key = list_merge_key(name, live + config)
        if key and all(isinstance(i, dict) and key in i for i in live + config):
            merged = [clone(i) for i in live]
            for item in config:
                idx = next((n for n, cur in enumerate(merged) if cur.get(key) == item[key]), None)
                if idx is None:
                    merged.append(clone(item))
                else:
                    merged[idx] = _merge(merged[idx], item, "")
            return merged
    return clone(config)


def _remove_path(obj: Any, path: Path) -> None:
    *parents, last = path
    if last == ".":
        if not parents:
            return
        *grand, item_seg = parents
        container = value_at(obj, tuple(grand))
        want = json.loads(item_seg[2:]) if item_seg.startswith("k:") else None
        if isinstance(container, list) and want is not None:
            container[:] = [
                i for i in container
                if not (isinstance(i, dict) and all(i.get(k) == v for k, v in want.items()))
            ]
        return
    container = value_at(obj, tuple(parents))
    if last.startswith("f:") and isinstance(container, dict):
        container.pop(last[2:], None)
    elif last.startswith("v:") and isinstance(container, list):
        value = json.loads(last[2:])
        if value in container:
            container.remove(value)


def apply(
    live: Obj | None,
    config: Obj,
    manager: str,
    api_version: str,
    force: bool,
) -> Obj:
    """The object after ``manager`` applies ``config`` to ``live`` (None: create).

    Raises a 409 Conflict `ApiError` naming the conflicting fields and managers unless
    ``force``; with ``force`` the applier takes those fields over.
    """
    config_paths = field_paths(config)
    if live is None:
        obj = clone(config)
        obj.setdefault("metadata", {})["managedFields"] = [
            _entry(manager, "Apply", api_version, config_paths, "")
        ]
        return obj
    entries = _entries(live)
    mine: set[Path] = set()
    others: list[tuple[dict[str, Any], set[Path]]] = []
    for e in entries:
        paths = from_fields_v1(e.get("fieldsV1"))
        if _same_entry(e, manager, "Apply", ""):
            mine = paths
        else:
            others.append((e, paths))
    conflicts: list[tuple[str, Path]] = []
    for e, paths in others:
        if e.get("subresource"):
            continue
        for p in config_paths & paths:
            if value_at(live, p) != value_at(config, p):
                conflicts.append((str(e.get("manager")), p))
    if conflicts and not force:
        causes = [
            {"reason": "FieldManagerConflict",
             "message": f'conflict with "{m}"',
             "field": "." + ".".join(s[2:] for s in p if s != ".")}
            for m, p in sorted(conflicts)
        ]
        text = "\n".join(f"- {c['field']}: {c['message']}" for c in causes)
        raise ApiError(
            409,
            "Conflict",
            f"Apply failed with {len(causes)} conflict{'s' if len(causes) > 1 else ''}: {text}",
            {"causes": causes},
        )
    conflict_paths = {p for _, p in conflicts}
    merged: Obj = _merge(live, config, "")
    others_owned: set[Path] = set()
    new_entries: list[dict[str, Any]] = []
    for e, paths in others:
        paths = paths - conflict_paths
        others_owned |= paths
        if paths:
            new_entries.append({**e, "fieldsV1": to_fields_v1(paths)})
    for p in sorted(mine - config_paths, key=len, reverse=True):
        if p not in others_owned and not any(o[: len(p) - 1] == p[:-1] and p[-1] == "."
                                             for o in others_owned):
            _remove_path(merged, p)
    new_entries.append(_entry(manager, "Apply", api_version, config_paths, ""))
    merged.setdefault("metadata", {})["managedFields"] = new_entries
    return merged
