"""The owner index: which stored objects name a given uid in ``metadata.ownerReferences``.

It makes garbage collection and propagated deletion cheap (no scan of every object).
"""

from __future__ import annotations

from .changes import Key
from .objects import Obj, owner_uids

Ref = tuple[Key, str, str]
"""A stored object's address: ``((group, plural), namespace, name)``."""


class OwnerIndex:
    """owner uid -> the addresses of its dependents. Runs under the store lock."""

    def __init__(self) -> None:
        self._refs: dict[str, set[Ref]] = {}

    def update(self, key: Key, ns: str, name: str, old: Obj | None, new: Obj | None) -> None:
        """Re-index one object whose previous state was ``old`` (None: created) and new state
        is ``new`` (None: deleted)."""
        ref = (key, ns, name)
        for uid in owner_uids(old) if old else []:
            refs = self._refs.get(uid)
            if refs is not None:
                refs.discard(ref)
                if not refs:
                    del self._refs[uid]
        for uid in owner_uids(new) if new else []:
            self._refs.setdefault(uid, set()).add(ref)

    def dependents(self, owner_uid: str) -> list[Ref]:
        """The dependents of ``owner_uid``, sorted (a stable order for cascades)."""
        return sorted(self._refs.get(owner_uid, ()))

    def clear(self) -> None:
        self._refs.clear()
