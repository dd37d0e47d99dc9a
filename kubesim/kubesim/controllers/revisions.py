"""ControllerRevisions: the template history StatefulSets and DaemonSets keep (for rollbacks)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..objects import Obj, clone
from .base import Context
from .common import as_int, labels_of, name_of, namespace_of, owner_reference, uid_of

REVISION_LABEL = "controller-revision-hash"


def revision_number(cr: Mapping[str, Any]) -> int:
    return as_int(cr.get("revision"), 0)


def ensure_revision(
    ctx: Context, owner: Obj, name: str, digest: str, template: Mapping[str, Any]
) -> Obj:
    """The ControllerRevision ``name`` for ``owner``'s ``template``, created if missing."""
    ns = namespace_of(owner)
    owned = ctx.owned("ControllerRevision", uid_of(owner))
    for cr in owned:
        if name_of(cr) == name:
            return cr
    existing = ctx.get("ControllerRevision", ns, name)
    if existing is not None:
        return existing
    tmpl = clone(dict(template))
    tmpl["$patch"] = "replace"
    labels = labels_of(template)
    labels[REVISION_LABEL] = digest
    cr = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "data": {"spec": {"template": tmpl}},
        "revision": max((revision_number(c) for c in owned), default=0) + 1,
    }
    return ctx.create("ControllerRevision", cr)


def revision_template(cr: Mapping[str, Any]) -> dict[str, Any] | None:
    """The pod template a revision recorded (without the patch directive)."""
    data = cr.get("data")
    tmpl = ((data or {}).get("spec") or {}).get("template") if isinstance(data, dict) else None
    if not isinstance(tmpl, dict):
        return None
    out = clone(tmpl)
    out.pop("$patch", None)
    return out


def prune_revisions(ctx: Context, owner: Obj, keep: set[str], limit: int) -> None:
    """Delete the oldest revisions beyond ``limit``, never those named in ``keep``."""
    old = [cr for cr in ctx.owned("ControllerRevision", uid_of(owner)) if name_of(cr) not in keep]
    old.sort(key=revision_number)
    for cr in old[: max(0, len(old) - limit)]:
        ctx.delete("ControllerRevision", namespace_of(cr), name_of(cr))
