"""Chart repositories in OCI registries (`oci://HOST/PATH`), spoken to over the OCI
distribution API as Helm does: charts are the registry repositories `PATH/<chart>`, their
versions the SemVer tags (`+` written `_`), and each version a manifest whose config has Helm's
media type and whose one chart layer is the chart's `.tgz`.

An OCI registry has no index.yaml, so `fetch_oci_index` builds one (the same `RepoIndex`, and
raw JSON the index cache keeps) from the registry's catalog, or from the chart names given at
registration when the registry offers no catalog (Docker Hub, GHCR). Metadata (app version,
description) is read for each chart's newest version only: a registry answers per tag, and
public ones count manifest reads against a rate limit. `fetch_oci_archive` resolves a version's
tag to its manifest at every call (tags can be moved) and pulls the chart layer once, checked
against its digest and cached by it.

Requests go through the catalog's aiohttp session, the one fetch path of chart repositories, so
its address rules and limits apply to registry hosts (and token realms) too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from capstan_server.charts.archive import ChartFiles, read_chart_files
from capstan_server.charts.limits import RepoLimits
from capstan_server.charts.repo_index import RepoIndex, parse_index, write_atomically
from capstan_server.charts.semver import Version
from capstan_server.errors import (
    CapstanError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from capstan_server.tls import trusting

__all__ = [
    "HELM_CONFIG_MEDIA_TYPE",
    "OciClient",
    "OciLocation",
    "OciOptions",
    "fetch_oci_archive",
    "fetch_oci_index",
    "is_oci_url",
    "parse_oci_url",
    "tag_of",
]

HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
#: The chart layer's media type; `application/tar+gzip` is what helm < 3.8 pushed.
_CHART_LAYER_TYPES = ("application/vnd.cncf.helm.chart.content.v1.tar+gzip", "application/tar+gzip")
_MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_MAX_LIST_BYTES = 16 * 1024 * 1024
_MAX_CONFIG_BYTES = 4 * 1024 * 1024
_MAX_CHART_BYTES = 100 * 1024 * 1024
#: Entries asked for per page of a catalog or tag list, and the most pages read.
_PAGE_SIZE = 1000
_MAX_PAGES = 100
#: How many of a chart's newest tags are tried for its metadata.
_METADATA_TRIES = 3
_CONCURRENT_CHARTS = 8
_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)
# OCI repository path components (distribution spec), and an authority without userinfo.
_PATH = re.compile(r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_NUM = r"(?:0|[1-9][0-9]*)"
_PRE = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_STRICT_SEMVER = re.compile(
    rf"^{_NUM}\.{_NUM}\.{_NUM}(?:-{_PRE}(?:\.{_PRE})*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def is_oci_url(url: str) -> bool:
    return url.lower().startswith("oci://")


@dataclass(frozen=True)
class OciLocation:
    """Where an OCI chart repository is: registry `host` (with port) and repository `path`."""

    host: str
    path: str

    def repository(self, chart: str) -> str:
        return f"{self.path}/{chart}" if self.path else chart

    def reference(self, chart: str, version: str) -> str:
        return f"oci://{self.host}/{self.repository(chart)}:{tag_of(version)}"


@dataclass(frozen=True)
class OciOptions:
    """How to talk to an OCI repository, stored with its registration."""

    #: Plain HTTP instead of HTTPS (helm's `--plain-http`), for a loopback or lab registry.
    plain_http: bool = False
    #: PEM CA certificates that sign the registry's TLS certificate ("": the system's).
    ca_pem: str = ""
    #: The charts, when registered by name (the registry offers no catalog).
    charts: tuple[str, ...] = ()


def parse_oci_url(url: str) -> OciLocation:
    """`oci://HOST[:PORT][/PATH]` → OciLocation; InvalidArgument for anything else."""
    bad = [{"field": "url", "value": url}]
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host
        raise InvalidArgument(f"invalid OCI repository url {url!r}", details=bad) from None
    if parts.scheme.lower() != "oci" or not parts.netloc:
        raise InvalidArgument(f"an OCI repository url is oci://HOST/PATH, not {url!r}",
                              details=bad)
    if parts.username or parts.password:
        raise InvalidArgument("put registry credentials in username/password, not in the url")
    if parts.query or parts.fragment or not _HOST.match(parts.netloc):
        raise InvalidArgument(f"invalid OCI repository url {url!r}", details=bad)
    path = parts.path.strip("/")
    if path and not _PATH.match(path):
        raise InvalidArgument(
            f"invalid repository path {path!r} in {url!r}: lower-case letters, digits and "
            "separators (. _ -) in /-separated parts", details=bad)
    return OciLocation(parts.netloc.lower(), path)


def tag_of(version: str) -> str:
    """The OCI tag of a chart version: tags cannot hold `+`, so Helm writes `_`."""
    return version.replace("+", "_")


def _version_of(tag: str) -> str | None:
    """The chart version a tag names, or None. Strict SemVer, as helm reads OCI tags
    (`semver.StrictNewVersion`): `latest`, `v1`, `1.0` are not chart versions."""
    version = tag.replace("_", "+")
    return version if _STRICT_SEMVER.match(version) else None


@dataclass(frozen=True)
class ChartManifest:
    """What a chart version's manifest says."""

    #: `sha256:<hex>` of the manifest (what `helm pull ...@sha256:` names).
    digest: str
    config_digest: str
    #: `sha256:<hex>` of the chart `.tgz`.
    layer_digest: str
    layer_size: int


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            chunks.clear()  # not kept alive by the error's traceback (see repo_index)
            raise FailedPrecondition(f"{what} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in _CHALLENGE_PARAM.findall(rest)}


class OciClient:
    """The distribution API of one registry, for one repository path, with the repository's
    credentials: Basic, or the Bearer tokens a registry's challenge asks for (fetched from its
    token realm with those credentials, cached per scope)."""

    def __init__(self, session: aiohttp.ClientSession, location: OciLocation, *,
                 auth: tuple[str, str] | None, options: OciOptions, name: str) -> None:
        self.session = session
        self.location = location
        self.auth = auth
        self.options = options
        self.what = f"OCI registry {location.host} of repository {name!r}"
        self._scheme = "http" if options.plain_http else "https"
        self._ssl: ssl.SSLContext | bool = (
            trusting(options.ca_pem) if options.ca_pem else True)
        self._tokens: dict[str, str] = {}
        self._basic = False  # the registry asked for Basic once: send it up front from then on

    def _basic_header(self) -> str:
        assert self.auth is not None
        return "Basic " + base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()

    async def _token(self, params: dict[str, str], scope: str) -> str:
        realm = params.get("realm", "")
        try:
            scheme = urlsplit(realm).scheme
        except ValueError:  # an unclosed "[" of an IPv6 host
            scheme = ""
        # The realm is the registry's choice; its credentials never travel in the clear to it
        # unless the registry itself was registered as plain HTTP.
        if scheme != "https" and not (scheme == "http" and self.options.plain_http):
            raise FailedPrecondition(f"{self.what} names a token realm Capstan will not send "
                                     f"credentials to ({realm!r}: not https)")
        query = {k: v for k, v in (("service", params.get("service", "")),
                                   ("scope", params.get("scope", scope))) if v}
        url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        headers = {"Authorization": self._basic_header()} if self.auth else {}
        try:
            async with self.session.get(url, headers=headers, timeout=_TIMEOUT,
                                        ssl=self._ssl) as resp:
                if resp.status in (401, 403):
                    raise self._refused(resp.status)
                if resp.status != 200:
                    raise Unavailable(f"{self.what}: its token service answered HTTP "
                                      f"{resp.status}")
                doc = json.loads(await _read_capped(resp, _MAX_CONFIG_BYTES, self.what))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
            raise Unavailable(f"{self.what}: its token service cannot be used: "
                              f"{str(err) or type(err).__name__}") from None
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise Unavailable(f"{self.what}: its token service gave no token")
        return token

    def _refused(self, status: int) -> CapstanError:
        if self.auth:
            return PermissionDenied(f"{self.what} refused the credentials (HTTP {status})")
        return PermissionDenied(f"{self.what} needs credentials (HTTP {status}): give "
                                "username and password")

    async def get(self, path: str, *, scope: str = "", accept: str = "", limit: int,
                  missing: type[CapstanError] = NotFound) -> tuple[bytes, Mapping[str, str]]:
        """GET `/v2/...` and return body and headers, answering auth challenges once.

        Unreachable or 5xx → Unavailable; credentials refused → PermissionDenied; 404 →
        `missing`; a body over `limit` → FailedPrecondition.
        """
        url = f"{self._scheme}://{self.location.host}{path}"
        for attempt in range(2):
            headers = {"Accept-Encoding": "identity"}
            if accept:
                headers["Accept"] = accept
            if scope in self._tokens:
                headers["Authorization"] = f"Bearer {self._tokens[scope]}"
            elif self._basic and self.auth:
                headers["Authorization"] = self._basic_header()
            try:
                async with self.session.get(url, headers=headers, timeout=_TIMEOUT,
                                            ssl=self._ssl) as resp:
                    if resp.status == 401 and attempt == 0:
                        challenge = resp.headers.get("WWW-Authenticate", "")
                        kind, params = _parse_challenge(challenge)
                        if kind == "bearer":
                            self._tokens[scope] = await self._token(params, scope)
                            continue
                        if kind == "basic" and self.auth and not self._basic:
                            self._basic = True
                            continue
                    if resp.status in (401, 403):
                        raise self._refused(resp.status)
                    if resp.status == 404:
                        raise missing(f"{self.what}: {path} was not found (HTTP 404)")
                    if resp.status >= 500 or resp.status == 429:
                        raise Unavailable(f"{self.what} is unavailable (HTTP {resp.status} "
                                          f"for {path})")
                    if resp.status != 200:
                        raise FailedPrecondition(f"{self.what} answered HTTP {resp.status} "
                                                 f"for {path}")
                    body = await _read_capped(resp, limit, f"{self.what}: {path}")
                    return body, resp.headers.copy()  # case-insensitive still
            except aiohttp.ClientSSLError as err:
                raise Unavailable(f"{self.what}: TLS failed ({err}); give the registry's CA "
                                  "certificate (--ca-file), or --plain-http if it speaks "
                                  "plain HTTP") from None
            except (aiohttp.ClientError, TimeoutError, OSError) as err:
                raise Unavailable(f"{self.what} cannot be reached: "
                                  f"{str(err) or type(err).__name__}") from None
        raise self._refused(401)

    async def _list(self, path: str, key: str, *, scope: str,
                    missing: type[CapstanError] = NotFound) -> list[str]:
        """All pages of a `_catalog` or `tags/list` answer (`Link: <...>; rel="next"`)."""
        found: list[str] = []
        for _ in range(_MAX_PAGES):
            body, headers = await self.get(path, scope=scope, limit=_MAX_LIST_BYTES,
                                           missing=missing)
            try:
                doc = json.loads(body)
            except ValueError:
                raise FailedPrecondition(f"{self.what}: {path} is not JSON") from None
            items = doc.get(key) if isinstance(doc, dict) else None
            found += [i for i in items or [] if isinstance(i, str)]
            link = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', headers.get("Link", ""))
            if not link:
                return found
            # Relative as distribution sends it, or absolute on the same registry.
            try:
                following = urlsplit(urljoin(path, link[1]))
            except ValueError:  # an unclosed "[" of an IPv6 host
                following = urlsplit("")
            path = following.path + (f"?{following.query}" if following.query else "")
            elsewhere = following.netloc.lower() not in ("", self.location.host)
            if elsewhere or not path.startswith("/v2/"):
                raise FailedPrecondition(f"{self.what} sent a next page elsewhere ({link[1]})")
        return found

    async def check(self) -> None:
        """Prove the registry is reachable and accepts the credentials (`GET /v2/`)."""
        await self.get("/v2/", limit=_MAX_CONFIG_BYTES, missing=InvalidArgument)

    async def catalog(self) -> list[str] | None:
        """The charts under the repository path, from the registry's catalog; None when the
        registry offers none (most public ones)."""
        try:
            names = await self._list(f"/v2/_catalog?n={_PAGE_SIZE}", "repositories",
                                     scope="registry:catalog:*")
        except (NotFound, PermissionDenied, FailedPrecondition):
            return None
        prefix = f"{self.location.path}/" if self.location.path else ""
        charts = [n[len(prefix):] for n in names if n.startswith(prefix)]
        return sorted({c for c in charts if c and "/" not in c})

    def _scope(self, chart: str) -> str:
        return f"repository:{self.location.repository(chart)}:pull"

    async def tags(self, chart: str) -> list[str]:
        return await self._list(f"/v2/{self.location.repository(chart)}/tags/list?n={_PAGE_SIZE}",
                                "tags", scope=self._scope(chart))

    async def manifest(self, chart: str, version: str) -> ChartManifest:
        """The manifest of a chart version; InvalidArgument when it is not a Helm chart."""
        repository = self.location.repository(chart)
        tag = tag_of(version)
        body, headers = await self.get(f"/v2/{repository}/manifests/{tag}", accept=_MANIFEST_ACCEPT,
                                       scope=self._scope(chart), limit=_MAX_MANIFEST_BYTES)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        said = headers.get("Docker-Content-Digest", digest)
        if said.startswith("sha256:") and said != digest:
            raise FailedPrecondition(f"{self.what}: the manifest of {repository}:{tag} does not "
                                     f"match its digest {said}")
        try:
            doc = json.loads(body)
            config = doc["config"]
            layers = doc.get("layers") or []
        except (ValueError, KeyError, TypeError):
            raise InvalidArgument(f"{repository}:{tag} in {self.what} is not a Helm chart "
                                  "(its manifest is not an image manifest)") from None
        config_type = config.get("mediaType") if isinstance(config, dict) else None
        if config_type != HELM_CONFIG_MEDIA_TYPE:
            raise InvalidArgument(
                f"{repository}:{tag} in {self.what} is not a Helm chart: its config media type "
                f"is {config_type!r}, not {HELM_CONFIG_MEDIA_TYPE!r}",
                details=[{"reference": self.location.reference(chart, version),
                          "media_type": str(config_type)}])
        chart_layers = [la for la in layers
                        if isinstance(la, dict) and la.get("mediaType") in _CHART_LAYER_TYPES]
        if len(chart_layers) != 1 or not str(chart_layers[0].get("digest", "")).startswith(
                "sha256:"):
            raise InvalidArgument(f"{repository}:{tag} in {self.what} is not a Helm chart "
                                  "(it has no single sha256 chart layer)")
        layer = chart_layers[0]
        return ChartManifest(digest, str(config.get("digest", "")), str(layer["digest"]),
                             int(layer.get("size") or 0))

    async def blob(self, chart: str, digest: str, limit: int) -> bytes:
        """A blob, checked against its digest."""
        body, _ = await self.get(f"/v2/{self.location.repository(chart)}/blobs/{digest}",
                                 scope=self._scope(chart), limit=limit,
                                 missing=FailedPrecondition)
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise FailedPrecondition(f"{self.what}: blob {digest} of {chart} does not match "
                                     "its digest")
        return body


async def _chart_entries(client: OciClient, chart: str, *, named: bool) -> list[dict[str, Any]]:
    """Index entries of one chart: every SemVer tag, with metadata for the newest chart."""
    versions = [v for v in (_version_of(t) for t in await client.tags(chart)) if v]
    versions.sort(key=Version.parse, reverse=True)
    if not versions:
        if named:
            raise NotFound(f"chart {chart!r} has no SemVer tags in {client.what}")
        return []
    # Metadata comes from the newest version that is a chart; a repository whose newest few
    # tags are not charts holds something else (the catalog lists container images too).
    newest: dict[str, Any] | None = None
    refusal: InvalidArgument | None = None
    for version in versions[:_METADATA_TRIES]:
        try:
            manifest = await client.manifest(chart, version)
        except InvalidArgument as err:
            refusal = refusal or err
            continue
        newest = {"version": version, "digest": manifest.layer_digest}
        with contextlib.suppress(ValueError):  # a config that is not JSON costs the metadata
            config = json.loads(await client.blob(chart, manifest.config_digest,
                                                  _MAX_CONFIG_BYTES))
            if isinstance(config, dict):
                newest.update({k: config.get(k) for k in (
                    "appVersion", "description", "icon", "keywords", "deprecated")})
        break
    if newest is None:
        if named and refusal is not None:
            raise refusal
        return []
    location = client.location
    return [{"name": chart, "version": v, "urls": [location.reference(chart, v)],
             **(newest if v == newest["version"] else {})} for v in versions]


async def fetch_oci_index(
    session: aiohttp.ClientSession,
    url: str,
    *,
    auth: tuple[str, str] | None,
    options: OciOptions,
    name: str,
    refused: type[CapstanError] = InvalidArgument,
) -> tuple[bytes, RepoIndex]:
    """Build the index of an OCI repository; raw JSON (an index.yaml) for the cache.

    Unreachable → Unavailable; credentials refused → PermissionDenied; a named chart missing
    → NotFound; a named chart that is not a Helm chart, or no catalog and no names → `refused`.
    """
    client = OciClient(session, parse_oci_url(url), auth=auth, options=options, name=name)
    await client.check()
    charts: Sequence[str] | None = options.charts or await client.catalog()
    if charts is None:
        raise refused(f"{client.what} offers no catalog: name the charts of repository "
                      f"{name!r} (--chart NAME, `charts` in the request)")
    # A catalog may list many repositories: a few at a time, not one request storm.
    slots = asyncio.Semaphore(_CONCURRENT_CHARTS)

    async def one(chart: str) -> list[dict[str, Any]]:
        async with slots:
            return await _chart_entries(client, chart, named=bool(options.charts))

    try:
        found = await asyncio.gather(*(one(c) for c in charts))
    except InvalidArgument as err:
        raise refused(err.message, details=err.details) from None
    entries = {c: e for c, e in zip(charts, found, strict=True) if e}
    raw = json.dumps({"apiVersion": "v1", "entries": entries}, sort_keys=True).encode()
    return raw, parse_index(raw, source=f"OCI repository {name!r}", refused=refused)


async def fetch_oci_archive(
    session: aiohttp.ClientSession,
    url: str,
    chart: str,
    version: str,
    *,
    auth: tuple[str, str] | None,
    options: OciOptions,
    name: str,
    cache_dir: Path,
    limits: RepoLimits,
) -> tuple[Path, ChartFiles | None]:
    """The `.tgz` of a chart version, by the digest its tag names now (pulled once), and its
    files when it was just pulled. A pulled layer is read under `limits` before it is kept:
    one that is no chart, or too big once unpacked, never reaches the cache."""
    client = OciClient(session, parse_oci_url(url), auth=auth, options=options, name=name)
    manifest = await client.manifest(chart, version)
    cached = cache_dir / f"{manifest.layer_digest.removeprefix('sha256:')}.tgz"
    if await asyncio.to_thread(cached.is_file):
        return cached, None
    body = await client.blob(chart, manifest.layer_digest, _MAX_CHART_BYTES)
    files = await asyncio.to_thread(read_chart_files, body, chart=f"{chart}-{version}",
                                    limits=limits)
    await asyncio.to_thread(write_atomically, cached, body, prefix=".download-")
    return cached, files
