"""A committed object (`StoredObject`) and one committed change (`Event`), as the store keeps them.

Both are shared by lists, watches, listeners and the persistence journal: treat them as
read-only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .objects import Obj
from .resources import ResourceType

Key = tuple[str, str]
"""How objects are stored: ``(group, plural)``, shared by all versions of a resource."""


class StoredObject:
    """A committed object plus its lazily cached compact JSON (shared by lists and watches)."""

    __slots__ = ("_json", "obj", "rv")

    def __init__(self, obj: Obj, rv: int) -> None:
        self.obj = obj
        self.rv = rv
        self._json: bytes | None = None

    def json(self) -> bytes:
        if self._json is None:
            self._json = json.dumps(self.obj, separators=(",", ":")).encode()
        return self._json


@dataclass(frozen=True)
class Event:
    """One committed change. ``object`` is the stored object itself: treat it as read-only."""

    type: str
    resource: ResourceType
    object: Obj
    old_object: Obj | None
    resource_version: int
    stored: StoredObject

    @property
    def namespace(self) -> str:
        return str((self.object.get("metadata") or {}).get("namespace", ""))

    @property
    def name(self) -> str:
        return str((self.object.get("metadata") or {}).get("name", ""))
