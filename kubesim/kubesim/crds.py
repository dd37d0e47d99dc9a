"""CustomResourceDefinition checks and the status the API server gives a CRD at once."""

from __future__ import annotations

from .errors import Invalid
from .objects import Obj, now_rfc3339
from .resources import ResourceType


def validate_crd(rt: ResourceType, obj: Obj) -> None:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    name = str(obj["metadata"]["name"])
    causes = []
    if not spec.get("group"):
        causes.append(("spec.group", "Required value"))
    if not names.get("plural"):
        causes.append(("spec.names.plural", "Required value"))
    if not names.get("kind"):
        causes.append(("spec.names.kind", "Required value"))
    if not spec.get("versions"):
        causes.append(("spec.versions", "Invalid value: must have exactly one version marked as "
                       "storage version"))
    if not causes and name != f"{names['plural']}.{spec['group']}":
        causes.append(("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."'
                       "+spec.group"))
    if causes:
        raise Invalid(rt, name, causes)


def crd_accepted(obj: Obj) -> None:
    """CRDs are established at once (the API server's own controllers do this quickly)."""
    spec = obj.get("spec") or {}
    now = now_rfc3339()
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    obj["status"] = {
        "acceptedNames": names,
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    }
