"""ChartService: chart repositories (register, list, show, sync, unregister) and their charts.

A repository is registered only after its index was fetched once, so a bad URL or bad
credentials are reported at once and leave nothing behind.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import grpc.aio

from capstan.v1 import chart_pb2, chart_pb2_grpc
from capstan_server.charts.catalog import Catalog, parse_chart_reference, validate_chart_name
from capstan_server.charts.oci import OciOptions, is_oci_url, parse_oci_url
from capstan_server.charts.repo_index import IndexEntry
from capstan_server.charts.semver import Constraint, SemverError, Version
from capstan_server.drivers.base import LABEL_REPO_ID
from capstan_server.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from capstan_server.names import validate_repo_name
from capstan_server.registry import RepoRow
from capstan_server.registry_store import RegistryStore
from capstan_server.services import messages as msg
from capstan_server.services.addressing import Resolver, unreachable_detail
from capstan_server.tls import trusting

Context = grpc.aio.ServicerContext[Any, Any]

#: How a refusal names the way around it, for CLI and API callers alike.
_FORCE = "force (--force, or `force` in the request)"


def _validate_url(url: str) -> str:
    bad = InvalidArgument(
        f"repository url must be an http://, https:// or oci:// URL, not {url!r}",
        details=[{"field": "url", "value": url}],
    )
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        raise bad from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad
    if parts.username or parts.password:
        raise InvalidArgument("put repository credentials in username/password, not in the url")
    return url


def _oci_options(request: chart_pb2.CreateRepositoryRequest) -> OciOptions | None:
    """The OCI options of a registration of an `oci://` url (None for an HTTP repository);
    InvalidArgument for a bad url, chart name or CA, or OCI options on an HTTP url."""
    if not is_oci_url(request.url):
        if request.plain_http or request.ca_pem or request.charts:
            raise InvalidArgument(
                "plain_http, ca_pem and charts are for OCI registries (oci://HOST/PATH) only"
            )
        return None
    parse_oci_url(request.url)
    if request.ca_pem:
        if request.plain_http:
            raise InvalidArgument("ca_pem is for TLS: it cannot go with plain_http")
        try:
            trusting(request.ca_pem)
        except ValueError as err:
            raise InvalidArgument(f"ca_pem holds no usable PEM certificates: {err}") from None
    charts = tuple(dict.fromkeys(validate_chart_name(c) for c in request.charts))
    return OciOptions(plain_http=request.plain_http, ca_pem=request.ca_pem, charts=charts)


def _matches(entry: IndexEntry, keyword: str) -> bool:
    keyword = keyword.lower()
    return (
        keyword in entry.name.lower()
        or keyword in entry.description.lower()
        or any(keyword in k.lower() for k in entry.keywords)
    )


class ChartServicer(chart_pb2_grpc.ChartServiceServicer):
    """See chart.proto for the contract of each call."""

    def __init__(self, registry: RegistryStore, catalog: Catalog, resolver: Resolver) -> None:
        self.registry = registry
        self.catalog = catalog
        self.resolver = resolver

    async def _count(self, repo: RepoRow) -> int:
        index = await self.catalog.indexes.load(repo.id, name=repo.name)
        return len(index.entries) if index else 0

    async def _message(self, repo: RepoRow, count: int | None = None) -> chart_pb2.Repository:
        oci = await self.catalog.oci_options(repo)
        return msg.repo_message(repo, await self._count(repo) if count is None else count, oci)

    async def CreateRepository(
        self, request: chart_pb2.CreateRepositoryRequest, context: Context
    ) -> chart_pb2.Repository:
        name = validate_repo_name(request.name)
        oci = _oci_options(request)
        url = request.url if oci else _validate_url(request.url)
        kind = msg.release_type(request.type)
        if request.password and not request.username:
            raise InvalidArgument("a repository password needs a username")
        if await self.registry.find_repo(name) is not None:
            raise AlreadyExists(f"repository {name!r} is already registered")
        auth = (request.username, request.password) if request.username else None
        raw, index = await self.catalog.probe(name, url, auth, oci)
        repo = await self.registry.add_repo(
            name,
            url,
            "internal" if kind == "internal" else "external",
            request.username,
            request.password,
        )
        try:
            if oci:
                await self.registry.set_oci_options(repo.id, oci)
            await self.catalog.adopt(repo, raw, index)
        except BaseException:
            await self.registry.delete_repo(repo.id)  # nothing half-registered
            raise
        repo = await self.registry.mark_repo_synced(repo.id)
        return msg.repo_message(repo, len(index.entries), oci)

    async def ListRepositories(
        self, request: chart_pb2.ListRepositoriesRequest, context: Context
    ) -> chart_pb2.ListRepositoriesResponse:
        limit, offset = msg.page(request.limit, request.offset)
        kind = msg.release_type(request.type) if request.type else ""
        rows, total = await self.registry.list_repos(limit, offset, kind)
        repos = [await self._message(r) for r in rows]
        return chart_pb2.ListRepositoriesResponse(
            repos=repos, total=total, limit=limit, offset=offset
        )

    async def GetRepository(
        self, request: chart_pb2.GetRepositoryRequest, context: Context
    ) -> chart_pb2.Repository:
        return await self._message(await self.registry.get_repo(request.id))

    async def DeleteRepository(
        self, request: chart_pb2.DeleteRepositoryRequest, context: Context
    ) -> chart_pb2.DeleteRepositoryResponse:
        repo = await self.registry.get_repo(request.id)
        if not request.force:
            await self._check_unused(repo)
        # With force no cluster is asked: releases installed from the repository are left as
        # they are, their repo-id label naming a repository that is no longer registered.
        message = await self._message(repo)
        await self.registry.delete_repo(repo.id)
        await self.catalog.forget(repo)
        return chart_pb2.DeleteRepositoryResponse(repo=message)

    async def _check_unused(self, repo: RepoRow) -> None:
        """FailedPrecondition when releases installed from `repo` exist; Unavailable when a
        cluster could not be asked (it may hold some)."""
        clusters = await self.resolver.clusters("")
        users, down = await self.resolver.reachable_releases(
            clusters, labels={LABEL_REPO_ID: repo.id}
        )
        if down:
            names = ", ".join(repr(d.cluster.name) for d in down)
            plural = "s" if len(down) > 1 else ""
            reasons = "; ".join(d.error.message for d in down)
            raise Unavailable(
                f"repository {repo.name!r} cannot be deleted while cluster{plural} {names} "
                f"cannot be reached, because Capstan must first check that no releases "
                f"installed from it are left there ({reasons}); retry once "
                f"{'they are' if plural else 'it is'} reachable again, or unregister it without "
                f"the check with {_FORCE} (releases installed from it are left as they are)",
                details=[unreachable_detail(d) for d in down],
            )
        if users:
            names = ", ".join(
                f"{u.cluster.name}/{u.record.namespace}/{u.record.name}" for u in users[:10]
            )
            raise FailedPrecondition(
                f"repository {repo.name!r} is still used by {len(users)} release(s): "
                f"{names}{' ...' if len(users) > 10 else ''}; delete them first, or unregister "
                f"the repository anyway with {_FORCE} (they are left as they are, but can "
                "only be upgraded by giving a chart of a registered repository)",
                details=[
                    {"release": f"{u.cluster.name}/{u.record.namespace}/{u.record.name}"}
                    for u in users
                ],
            )

    async def SyncRepository(
        self, request: chart_pb2.SyncRepositoryRequest, context: Context
    ) -> chart_pb2.Repository:
        repo = await self.registry.get_repo(request.id)
        index = await self.catalog.sync(repo)
        return await self._message(await self.registry.get_repo(repo.id), len(index.entries))

    async def ListCharts(
        self, request: chart_pb2.ListChartsRequest, context: Context
    ) -> chart_pb2.ListChartsResponse:
        limit, offset = msg.page(request.limit, request.offset)
        try:
            constraint = Constraint(request.version or "*")
        except SemverError as err:
            raise InvalidArgument(
                f"invalid version constraint {request.version!r}: {err}"
            ) from None
        if request.repo:
            repos = [await self.registry.get_repo(request.repo)]
        else:
            repos, _ = await self.registry.list_repos()
        rows: list[chart_pb2.ChartVersion] = []
        for repo in repos:
            index = await self.catalog.index(repo)
            for chart in sorted(index.entries):
                chosen = [
                    e
                    for e in index.versions(chart)
                    if (e.version == request.version or constraint.allows(Version.parse(e.version)))
                    and (not request.keyword or _matches(e, request.keyword))
                ]
                if not request.all_version:
                    chosen = chosen[:1]  # versions are newest first
                rows += [msg.chart_version_message(e, repo) for e in chosen]
        return chart_pb2.ListChartsResponse(
            charts=rows[offset : offset + limit], total=len(rows), limit=limit, offset=offset
        )

    async def _repo_for_chart(self, request: chart_pb2.GetChartRequest) -> tuple[RepoRow, str]:
        if "/" in request.name:
            repo_name, chart = parse_chart_reference(request.name)
            if request.repo and request.repo != repo_name:
                repo = await self.registry.get_repo(request.repo)
                if repo.name != repo_name:
                    raise InvalidArgument(
                        f"chart {request.name!r} names repository {repo_name!r}, "
                        f"but repo is {request.repo!r}"
                    )
            return await self.registry.get_repo(repo_name), chart
        if not request.name:
            raise InvalidArgument("chart name is required")
        if request.repo:
            return await self.registry.get_repo(request.repo), validate_chart_name(request.name)
        repos, _ = await self.registry.list_repos()
        holders = [r for r in repos if (await self.catalog.index(r)).versions(request.name)]
        if not holders:
            raise NotFound(
                f"chart {request.name!r} not found in any registered repository",
                details=[{"resource": "chart", "name": request.name}],
            )
        if len(holders) > 1:
            raise InvalidArgument(
                f"chart {request.name!r} is in several repositories "
                f"({', '.join(r.name for r in holders)}): give repo",
                details=[{"repo": r.name, "repo_id": r.id} for r in holders],
            )
        return holders[0], request.name

    async def GetChart(
        self, request: chart_pb2.GetChartRequest, context: Context
    ) -> chart_pb2.GetChartResponse:
        repo, chart = await self._repo_for_chart(request)
        resolved = await self.catalog.resolve_in(repo, chart, request.version)
        detail = msg.chart_detail(resolved.files, resolved.entry, resolved.versions, repo)
        return chart_pb2.GetChartResponse(chart=detail)
