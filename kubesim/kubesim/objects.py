"""Small helpers for JSON-shaped Kubernetes objects: copying, timestamps, metadata access."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

Obj = dict[str, Any]
T = TypeVar("T")

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def clone(value: T) -> T:
    """A deep copy of a JSON-shaped value (dicts, lists, scalars); faster than `copy.deepcopy`."""
    return cast(T, _clone(value))


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) if isinstance(v, dict | list) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) if isinstance(v, dict | list) else v for v in value]
    return value


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(prefix: str) -> str:
    return prefix + "".join(random.choice(_NAME_CHARS) for _ in range(5))


def meta(obj: Obj) -> Obj:
    """``obj["metadata"]``, created if missing."""
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def spec_part(obj: Obj) -> Obj:
    """Everything that counts as the desired state: the object less metadata, status, type info."""
    return {
        k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")
    }


def owner_uids(obj: Obj) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return [str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("uid")]
