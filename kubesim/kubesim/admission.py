"""What the API server itself does to some built-in kinds on every create and update.

CustomResourceDefinitions are validated and established at once (`crds`). APIServices are
checked (their name is ``<version>.<group>``) and reported Available: kubesim never proxies
to them, so the aggregated API they announce is not served. Webhook configurations and
admission policies are only stored: no webhook is called and no policy is evaluated.
"""

from __future__ import annotations

from collections.abc import Callable

from .crds import crd_accepted, validate_crd
from .errors import Invalid
from .objects import Obj, now_rfc3339
from .resources import ResourceType

_CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
_APISERVICES = ("apiregistration.k8s.io", "apiservices")


def _crd(rt: ResourceType, obj: Obj) -> None:
    validate_crd(rt, obj)
    crd_accepted(obj)


def _apiservice(rt: ResourceType, obj: Obj) -> None:
    spec = obj.get("spec") or {}
    name = str(obj["metadata"]["name"])
    version, group = str(spec.get("version") or ""), str(spec.get("group") or "")
    causes = []
    if not version:
        causes.append(("spec.version", "Required value"))
    if group == "" and version != "v1":
        causes.append(("spec.group", "Required value: only v1 may have an empty group and it "
                       "better be legacy kube"))
    if not causes and name != f"{version}.{group}":
        causes.append(("metadata.name", f'Invalid value: "{name}": must be `spec.version+"."+'
                       'spec.group`: "' + f'{version}.{group}"'))
    if causes:
        raise Invalid(rt, name, causes)
    available = {"type": "Available", "status": "True", "lastTransitionTime": now_rfc3339()}
    if spec.get("service"):
        available.update(reason="Passed", message="all checks passed")
    else:
        available["reason"] = "Local"
        available["message"] = "Local APIServices are always available"
    previous = next((c for c in (obj.get("status") or {}).get("conditions") or []
                     if isinstance(c, dict) and c.get("type") == "Available"), None)
    if previous and previous.get("status") == "True" and previous.get("lastTransitionTime"):
        available["lastTransitionTime"] = previous["lastTransitionTime"]
    obj["status"] = {"conditions": [available]}


_ADMIT: dict[tuple[str, str], Callable[[ResourceType, Obj], None]] = {
    _CRDS: _crd,
    _APISERVICES: _apiservice,
}


def admit(rt: ResourceType, obj: Obj) -> None:
    """Validate ``obj`` and set what the API server sets (status) for its kind, in place."""
    check = _ADMIT.get(rt.key)
    if check is not None:
        check(rt, obj)
