"""A project's manifest policy (README "Projects inside the clusters", docs/tenancy.md),
checked on what helm rendered BEFORE anything is applied.

For a caller that acts as a project (`auth.tenancy`), an install or upgrade is first rendered
by helm as a server-side dry run under the project's identity (so `lookup` sees only what the
project may read), and its manifest and hooks are checked; a rollback checks the manifest of
the revision it re-applies. Each object must be

- namespaced (by the cluster's discovery) and in one of the project's namespaces -- an object
  without `metadata.namespace` lands in the release namespace -- and not of a `denied_kinds`
  kind; or
- cluster-scoped and of a kind in the project's `cluster_resources` (`Kind` or `Kind.group`;
  default none). CRDs shipped in a chart's `crds/` directories count as
  `CustomResourceDefinition` objects.

Kinds the cluster does not serve are judged as namespaced (helm cannot create them anyway; a
CRD and its objects in one chart: the CRD itself needs the allow-list). A refusal is
PermissionDenied naming every offending object; nothing was applied.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from capstan_server.auth.tenancy import Tenancy
from capstan_server.charts.limits import RepoLimits
from capstan_server.charts.tar import ArchiveError, read_tgz
from capstan_server.drivers.base import (
    ClusterTarget,
    Driver,
    InstallOptions,
    ReleaseRecord,
    UpgradeOptions,
)
from capstan_server.drivers.helm.manifest import ManifestObject, parse_manifest
from capstan_server.errors import FailedPrecondition, PermissionDenied

__all__ = ["admit", "chart_crds", "offences", "rendered_and_admitted"]

Opts = TypeVar("Opts", InstallOptions, UpgradeOptions)
#: The archive was checked with the operator's limits when it was fetched; defaults suffice.
_LIMITS = RepoLimits()
_CRD = ManifestObject("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "")


def _matches(entries: Sequence[str], obj: ManifestObject) -> bool:
    group = obj.api_version.rpartition("/")[0]
    return any(e == obj.kind or e == f"{obj.kind}.{group}" for e in entries)


def _named(obj: ManifestObject) -> str:
    where = f"{obj.namespace}/" if obj.namespace else ""
    return f"{obj.kind} {where}{obj.name} ({obj.api_version})"


def _crd_or_subchart(name: str) -> bool:
    return name.startswith("crds/") or "/crds/" in name or (
        name.startswith("charts/") and name.endswith(".tgz"))


def chart_crds(archive: Path, *, depth: int = 0, data: bytes | None = None,
               prefix: str = "") -> list[str]:
    """The files of a chart archive's `crds/` directories, its subcharts' (unpacked or
    archived) too, named inside the chart; read as helm reads archives (`charts.tar`)."""
    try:
        if data is None:
            with archive.open("rb") as source:
                found = read_tgz(source, _LIMITS, _crd_or_subchart)
        else:
            found = read_tgz(io.BytesIO(data), _LIMITS, _crd_or_subchart)
    except ArchiveError as err:
        raise FailedPrecondition(f"chart {archive.name}: {prefix}: {err}") from None
    names = []
    for f in found:
        if f.name.endswith(".tgz") and f.name.startswith("charts/"):
            if depth < 5:  # as deep as helm's dependency trees go in practice
                names += chart_crds(archive, depth=depth + 1, data=f.data,
                                    prefix=f"{prefix}{f.name}/")
        else:
            names.append(f"{prefix}{f.name}")
    return sorted(names)


async def offences(driver: Driver, cluster: ClusterTarget, manifests: Sequence[str],
                   release_namespace: str, tenancy: Tenancy) -> list[dict[str, str]]:
    """What in the manifests the project may not apply, each as an error detail."""
    found: list[dict[str, str]] = []
    for obj in (o for m in manifests for o in parse_manifest(m)):
        namespaced = await driver.namespaced(cluster, obj.api_version, obj.kind)
        if namespaced is False:
            if not _matches(tenancy.cluster_resources, obj):
                found.append(_offence(obj, f"cluster-scoped {obj.kind} is not in project "
                                           f"{tenancy.project!r}'s cluster_resources"))
            continue
        namespace = obj.namespace or release_namespace
        if not tenancy.owns_namespace(namespace):
            found.append(_offence(obj, f"namespace {namespace!r} is not one of project "
                                       f"{tenancy.project!r}'s namespaces"))
        elif _matches(tenancy.denied_kinds, obj):
            found.append(_offence(obj, f"kind {obj.kind} is in project {tenancy.project!r}'s "
                                       "denied_kinds"))
    return found


def _offence(obj: ManifestObject, reason: str) -> dict[str, str]:
    return {"reason": "manifest_policy", "object": _named(obj), "kind": obj.kind,
            "namespace": obj.namespace, "name": obj.name, "message": reason}


async def admit(driver: Driver, cluster: ClusterTarget, record: ReleaseRecord, tenancy: Tenancy,
                *, chart: Path | None = None, what: str) -> None:
    """PermissionDenied naming every object of `record` (and CRD file of `chart`) that the
    project may not apply; `what` names the operation."""
    bookkeeping = dataclasses.replace(cluster, act_as=None)  # discovery is not the project's
    found = await offences(driver, bookkeeping, [record.manifest, *record.hook_manifests],
                           record.namespace, tenancy)
    if chart is not None and not _matches(tenancy.cluster_resources, _CRD):
        found += [_offence(dataclasses.replace(_CRD, name=name),
                           f"cluster-scoped CustomResourceDefinition (crds/) is not in project "
                           f"{tenancy.project!r}'s cluster_resources")
                  for name in chart_crds(chart)]
    if found:
        listed = "; ".join(f"{f['object']}: {f['message']}" for f in found)
        raise PermissionDenied(
            f"{what} refused by the manifest policy of project {tenancy.project!r}, nothing "
            f"was applied: {listed}", details=found)


async def rendered_and_admitted(driver: Driver, run: Callable[[Opts], Awaitable[ReleaseRecord]],
                                opts: Opts, tenancy: Tenancy | None, *, what: str
                                ) -> ReleaseRecord:
    """`run(opts)` (the driver's install or upgrade); for a project, only after a dry run of
    it passed `admit` (a dry run answers with that rendering, nothing more is run)."""
    if tenancy is None:
        return await run(opts)
    rendered = await run(dataclasses.replace(opts, dry_run=True))
    await admit(driver, opts.ref.cluster, rendered, tenancy, chart=opts.chart.archive, what=what)
    return rendered if opts.dry_run else await run(opts)
