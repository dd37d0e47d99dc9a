"""The chart catalog: the charts of the registered repositories, and the resolution of a chart
reference (`<repo>/<chart>` plus a version or constraint) to a downloaded, digest-checked
archive (`ChartSource`) that drivers install from.

Repositories are Helm HTTP(S) repositories or OCI registries (`charts/oci.py` gives those an
index of the same shape). Only charts of registered repositories can be resolved: a local path,
a `file://`, `oci://` or `http(s)://` reference, or anything else that is not
`<registered repo>/<chart>`, is refused, so a caller can never make the server read its own
files or fetch from an arbitrary place.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from capstan_server.charts.archive import (
    ArchiveStore,
    ChartFiles,
    check_entry,
    read_chart_files,
)
from capstan_server.charts.fetch import Fetcher
from capstan_server.charts.limits import RepoLimits
from capstan_server.charts.oci import OciOptions, fetch_oci_archive, fetch_oci_index, is_oci_url
from capstan_server.charts.repo_index import IndexCache, IndexEntry, RepoIndex, fetch_index
from capstan_server.charts.semver import SemverError, latest
from capstan_server.drivers.base import ChartSource
from capstan_server.errors import CapstanError, FailedPrecondition, InvalidArgument, NotFound
from capstan_server.lru import ByteLRU
from capstan_server.names import validate_repo_name
from capstan_server.registry import RepoRow
from capstan_server.registry_store import RegistryStore

__all__ = ["Catalog", "ResolvedChart", "parse_chart_reference", "validate_chart_name"]

_CHART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: What files read from an archive cost in memory once parsed, per byte of them (estimated).
_PARSED_BYTES_PER_FILE_BYTE = 4
#: Shown in a NOT_FOUND for an unknown version.
_VERSIONS_SHOWN = 20


def validate_chart_name(chart: str) -> str:
    """Return `chart` if it can be a chart name in an index, else raise InvalidArgument."""
    if not _CHART_NAME.fullmatch(chart):
        raise InvalidArgument(
            f"invalid chart name {chart!r}", details=[{"field": "chart", "value": chart}]
        )
    return chart


def parse_chart_reference(reference: str) -> tuple[str, str]:
    """Split `<repo>/<chart>` into its parts; InvalidArgument for anything else."""
    refusal = (
        f"chart {reference!r} is not a chart of a registered repository: give it as "
        "<repo>/<chart> (e.g. bitnami-new/etcd); local paths and URLs are not accepted"
    )
    if not reference:
        raise InvalidArgument("chart_name is required (<repo>/<chart>, e.g. bitnami-new/etcd)")
    if "://" in reference or reference.startswith(("/", ".", "~", "file:", "oci:")):
        raise InvalidArgument(refusal, details=[{"field": "chart_name", "value": reference}])
    repo, slash, chart = reference.partition("/")
    if not slash or not _CHART_NAME.fullmatch(chart):
        raise InvalidArgument(refusal, details=[{"field": "chart_name", "value": reference}])
    try:
        validate_repo_name(repo)
    except InvalidArgument:
        raise InvalidArgument(
            refusal, details=[{"field": "chart_name", "value": reference}]
        ) from None
    return repo, chart


@dataclass(frozen=True)
class ResolvedChart:
    """A chart version picked from a registered repository, with its files read."""

    repo: RepoRow
    entry: IndexEntry
    #: Every version of the chart in the repository, newest first.
    versions: tuple[IndexEntry, ...]
    files: ChartFiles
    #: What a driver installs from.
    source: ChartSource


class Catalog:
    """Repository indexes and chart archives, cached under `<data_dir>/repos` and `/charts`,
    everything fetched through one `Fetcher` under `limits`."""

    def __init__(
        self, data_dir: Path, registry: RegistryStore, limits: RepoLimits | None = None
    ) -> None:
        self.registry = registry
        self.limits = limits or RepoLimits()
        self.fetcher = Fetcher(self.limits)
        self.indexes = IndexCache(data_dir / "repos", self.limits)
        self.archives_dir = data_dir / "charts"
        self.archives = ArchiveStore(self.archives_dir, self.fetcher, self.limits)
        self._files: ByteLRU[tuple[str, str], ChartFiles] = ByteLRU(self.limits.chart_cache_bytes)

    async def close(self) -> None:
        await self.fetcher.close()

    # -- indexes --------------------------------------------------------------------------------

    async def oci_options(self, repo: RepoRow) -> OciOptions | None:
        """How to reach an OCI repository; None for an HTTP one."""
        return await self.registry.oci_options(repo.id) if is_oci_url(repo.url) else None

    async def _fetch(
        self,
        name: str,
        url: str,
        auth: tuple[str, str] | None,
        oci: OciOptions | None,
        refused: type[CapstanError],
        repo_key: str,
    ) -> tuple[bytes, RepoIndex]:
        if oci is not None:
            return await fetch_oci_index(
                self.fetcher.session(), url, auth=auth, options=oci, name=name, refused=refused
            )
        return await fetch_index(
            self.fetcher, url, auth=auth, name=name, repo_key=repo_key, refused=refused
        )

    async def probe(
        self, name: str, url: str, auth: tuple[str, str] | None, oci: OciOptions | None = None
    ) -> tuple[bytes, RepoIndex]:
        """Fetch a repository's index (build an OCI repository's) before it is registered: bad
        URL or credentials -> InvalidArgument (a registry refusing them: PermissionDenied),
        unreachable -> Unavailable."""
        parts = urlsplit(url)
        key = f"probe:{parts.scheme}://{parts.netloc}"
        return await self._fetch(name, url, auth, oci, InvalidArgument, key)

    async def adopt(self, repo: RepoRow, raw: bytes, index: RepoIndex) -> None:
        """Cache an index fetched by `probe` for the repository just registered."""
        await self.indexes.store(repo.id, raw, index)

    async def sync(self, repo: RepoRow) -> RepoIndex:
        """Fetch a registered repository's index again (`helm repo update`)."""
        oci = await self.oci_options(repo)
        raw, index = await self._fetch(
            repo.name, repo.url, repo.auth, oci, FailedPrecondition, f"repo:{repo.id}"
        )
        await self.indexes.store(repo.id, raw, index)
        await self.registry.mark_repo_synced(repo.id)
        return index

    async def index(self, repo: RepoRow) -> RepoIndex:
        """A repository's index: the cached one, fetched on first use."""
        cached = await self.indexes.load(repo.id, name=repo.name)
        return cached if cached is not None else await self.sync(repo)

    async def forget(self, repo: RepoRow) -> None:
        await self.indexes.forget(repo.id)
        await self.archives.forget(repo.id)
        self._files.discard_where(lambda key: key[0] == repo.id)

    # -- resolution -----------------------------------------------------------------------------

    async def find(
        self, repo: RepoRow, chart: str, version: str
    ) -> tuple[IndexEntry, tuple[IndexEntry, ...]]:
        """The index entry helm would pick for `chart` and `version` (exact version, semver
        constraint, or "" for the latest stable), and all versions of the chart."""
        versions = (await self.index(repo)).versions(chart)
        if not versions:
            raise NotFound(
                f"chart {chart!r} not found in repository {repo.name!r}",
                details=[{"resource": "chart", "repo": repo.name, "name": chart}],
            )
        try:
            picked = latest((e.version for e in versions), version.strip())
        except SemverError as err:
            hint = (
                "; the versions of a chart in an OCI registry are its SemVer tags, other tags "
                "(such as 'latest') are not chart versions"
                if is_oci_url(repo.url)
                else ""
            )
            raise InvalidArgument(f"invalid chart version {version!r}: {err}{hint}") from None
        if picked is None:
            shown = [e.version for e in versions[:_VERSIONS_SHOWN]]
            wanted = f"version {version!r}" if version else "a stable version"
            raise NotFound(
                f"chart {repo.name}/{chart} has no {wanted}; available: {', '.join(shown)}",
                details=[
                    {
                        "resource": "chart version",
                        "repo": repo.name,
                        "name": chart,
                        "version": version,
                        "available": shown,
                    }
                ],
            )
        entry = next(e for e in versions if e.version == picked)
        return entry, versions

    async def resolve(self, reference: str, version: str = "") -> ResolvedChart:
        """Resolve `<repo>/<chart>` and a version: NotFound for an unknown repository, chart
        or version; InvalidArgument for a reference outside the registered repositories."""
        repo_name, chart = parse_chart_reference(reference)
        repo = await self.registry.find_repo(repo_name)
        if repo is None:
            raise NotFound(
                f"repository {repo_name!r} is not registered (chart {reference!r})",
                details=[{"resource": "repository", "name": repo_name}],
            )
        return await self.resolve_in(repo, chart, version)

    async def resolve_in(self, repo: RepoRow, chart: str, version: str = "") -> ResolvedChart:
        """Resolve a chart of a known repository and download its archive."""
        entry, versions = await self.find(repo, chart, version)
        oci = await self.oci_options(repo)
        fresh: ChartFiles | None = None
        if oci is not None:
            archive, fresh = await fetch_oci_archive(
                self.fetcher.session(),
                repo.url,
                entry.name,
                entry.version,
                auth=repo.auth,
                options=oci,
                name=repo.name,
                cache_dir=self.archives.directory / repo.id,  # per repository, as HTTP's
                limits=self.limits,
            )
        else:
            archive, fresh = await self.archives.get(
                entry, repo_id=repo.id, repo_url=repo.url, repo_name=repo.name, auth=repo.auth
            )
        files = await self.files(repo.id, archive, entry, fresh)
        source = ChartSource(
            repo_id=repo.id,
            repo_name=repo.name,
            repo_url=repo.url,
            name=entry.name,
            version=entry.version,
            app_version=str(files.metadata.get("appVersion") or entry.app_version),
            archive=archive,
            default_values=files.values,
        )
        return ResolvedChart(repo, entry, versions, files, source)

    async def files(
        self, repo_id: str, archive: Path, entry: IndexEntry, fresh: ChartFiles | None = None
    ) -> ChartFiles:
        """The files of a cached archive (`fresh`: just read while downloading it), kept in
        memory under a byte budget and checked against its index entry."""
        key = (repo_id, archive.stem)  # the archive's sha256, for HTTP and OCI alike
        files = self._files.get(key)
        if files is None:
            label = f"{entry.name}-{entry.version}"
            if fresh is None:
                fresh = await asyncio.to_thread(
                    read_chart_files, archive, chart=label, limits=self.limits
                )
            files = check_entry(fresh, entry)
            self._files.put(key, files, files.size * _PARSED_BYTES_PER_FILE_BYTE)
        return files
