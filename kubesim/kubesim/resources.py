"""The registry of API resources kubesim serves: built-in kinds (`catalogue`) plus CRD-defined.

A `ResourceType` describes one resource in one served version (what discovery
prints). Objects are stored per `ResourceType.key` -- ``(group, plural)`` -- so
every served version of a CRD shares one set of objects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

STANDARD_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
@dataclass(frozen=True)
class ResourceType:
    """One resource (``deployments``) in one served group/version (``apps/v1``)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = STANDARD_VERBS
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    #: Whether ``metadata.generation`` is maintained (bumped on spec changes).
    has_generation: bool = False
    #: The version objects are stored in (for CRDs with several versions).
    storage_version: str = ""
    #: For custom resources: the CRD's name (``crontabs.stable.example.com``).
    crd_name: str = ""
    preferred: bool = True
    #: How names are validated (`kubesim.names`): DNS subdomain unless the kind says otherwise.
    name_rule: str = "subdomain"

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """The storage key shared by all versions of a resource."""
        return (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def group_resource(self) -> str:
        """``deployments.apps`` / ``secrets``: the form Kubernetes uses in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    def singular_name(self) -> str:
        return self.singular or self.kind.lower()


def resource_types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The served versions of a CustomResourceDefinition object as `ResourceType` s."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    plural = str(names.get("plural", ""))
    kind = str(names.get("kind", ""))
    if not (group and plural and kind):
        return []
    namespaced = spec.get("scope", "Namespaced") != "Cluster"
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    storage = next(
        (str(v["name"]) for v in spec.get("versions") or [] if v.get("storage")),
        str(versions[0]["name"]) if versions else "",
    )
    out = []
    for index, v in enumerate(versions):
        subs = v.get("subresources") or spec.get("subresources") or {}
        sub: tuple[str, ...] = ()
        if "status" in subs:
            sub += ("status",)
        if "scale" in subs:
            sub += ("scale",)
        out.append(
            ResourceType(
                group=group,
                version=str(v["name"]),
                plural=plural,
                kind=kind,
                namespaced=namespaced,
                singular=str(names.get("singular") or kind.lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=sub,
                has_generation=True,
                storage_version=storage,
                crd_name=str((crd.get("metadata") or {}).get("name", "")),
                preferred=index == 0,
            )
        )
    return out


@dataclass
class _GroupInfo:
    name: str
    versions: list[str] = field(default_factory=list)


class ResourceRegistry:
    """Thread-safe lookup of served resources; CRDs add and remove entries at run time."""

    def __init__(self, builtins: Iterable[ResourceType] | None = None) -> None:
        # local import: the catalogue is data built from this module's `ResourceType`
        from .catalogue import BUILTIN_RESOURCES

        self._lock = threading.RLock()
        self._builtin: list[ResourceType] = list(BUILTIN_RESOURCES if builtins is None
                                                 else builtins)
        self._custom: dict[str, list[ResourceType]] = {}  # CRD name -> its versions
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._rebuild()

    def _rebuild(self) -> None:
        table: dict[tuple[str, str, str], ResourceType] = {}
        for rt in self._iter_unlocked():
            table[(rt.group, rt.version, rt.plural)] = rt
        self._by_gvr = table

    def _iter_unlocked(self) -> Iterator[ResourceType]:
        yield from self._builtin
        for versions in self._custom.values():
            yield from versions

    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._iter_unlocked())

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def by_key(self, key: tuple[str, str]) -> ResourceType | None:
        """The storage-version (or preferred) entry for ``(group, plural)``."""
        found = [rt for rt in self.all() if rt.key == key]
        for rt in found:
            if rt.storage_version in ("", rt.version):
                return rt
        return found[0] if found else None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for rt in self.all():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        return None

    def resolve(self, ref: str | ResourceType) -> ResourceType:
        """Find a resource from a flexible reference.

        Accepts a `ResourceType`, a plural (``deployments``), a plural with group
        (``deployments.apps``), a kind (``Deployment``), a short name (``deploy``), or a
        path form (``apps/v1/deployments``, ``v1/pods``). Raises `KeyError` if unknown.
        """
        if isinstance(ref, ResourceType):
            return ref
        items = self.all()
        if ref.count("/") == 2 or (ref.count("/") == 1 and ref.startswith("v")):
            parts = ref.split("/")
            group, version, plural = ("", *parts) if len(parts) == 2 else parts
            rt = self.lookup(group, version, plural)
            if rt is not None:
                return rt
            raise KeyError(ref)
        candidates: list[ResourceType] = []
        for rt in items:
            if ref in (rt.plural, rt.kind, rt.group_resource, rt.singular_name()) or (
                ref in rt.short_names
            ):
                candidates.append(rt)
        if not candidates:
            raise KeyError(ref)
        for rt in candidates:
            if rt.preferred:
                return rt
        return candidates[0]

    def add_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        name = str((crd.get("metadata") or {}).get("name", ""))
        types = resource_types_from_crd(crd)
        with self._lock:
            if types:
                self._custom[name] = types
            else:
                self._custom.pop(name, None)
            self._rebuild()
        return types

    def remove_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            removed = self._custom.pop(name, [])
            self._rebuild()
        return removed

    def remove_all_crds(self) -> None:
        with self._lock:
            self._custom.clear()
            self._rebuild()

    def groups(self) -> list[tuple[str, list[str]]]:
        """Non-core groups with their served versions, preferred version first."""
        groups: dict[str, _GroupInfo] = {}
        for rt in self.all():
            if not rt.group:
                continue
            info = groups.setdefault(rt.group, _GroupInfo(rt.group))
            if rt.version not in info.versions:
                if rt.preferred:
                    info.versions.insert(0, rt.version)
                else:
                    info.versions.append(rt.version)

        from .catalogue import GROUP_ORDER

        def order(name: str) -> tuple[int, str]:
            return (GROUP_ORDER.index(name) if name in GROUP_ORDER else len(GROUP_ORDER), name)

        return [(g, groups[g].versions) for g in sorted(groups, key=order)]

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self.all() if rt.group == group and rt.version == version]
