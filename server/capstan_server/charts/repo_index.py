"""Chart repository indexes: fetch a repository's `index.yaml` over HTTP(S), parse it, and keep
it under the data dir so that reads never wait on the repository (`helm repo update` refreshes).

Fetch errors say what to do: an unreachable repository is Unavailable (retry later); one that
refuses the credentials, has no index or serves something else is the caller's problem
(InvalidArgument when registering, FailedPrecondition once registered).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import shutil
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from capstan_server.charts.semver import SemverError, Version
from capstan_server.errors import CapstanError, InvalidArgument, Unavailable
from capstan_server.values import load_yaml

__all__ = [
    "IndexCache",
    "IndexEntry",
    "RepoIndex",
    "download",
    "fetch_index",
    "parse_index",
    "parse_time",
    "write_atomically",
]

#: Large public indexes (Bitnami's) are tens of MB; anything far beyond is not an index.
MAX_INDEX_BYTES = 128 * 1024 * 1024
#: Indexes have one node per field of every chart version; allow for the big ones.
_MAX_INDEX_NODES = 50_000_000
INDEX_TIMEOUT = aiohttp.ClientTimeout(total=120, sock_connect=10)


@dataclass(frozen=True)
class IndexEntry:
    """One chart version listed in a repository index."""

    name: str
    version: str
    app_version: str
    description: str
    icon: str
    keywords: tuple[str, ...]
    deprecated: bool
    created: datetime | None
    #: sha256 of the `.tgz`, hex; "" when the index gives none.
    digest: str
    #: Where the `.tgz` is, possibly relative to the repository URL.
    urls: tuple[str, ...]


@dataclass(frozen=True)
class RepoIndex:
    """A parsed index: for each chart name, its versions newest first."""

    entries: Mapping[str, tuple[IndexEntry, ...]]

    def versions(self, chart: str) -> tuple[IndexEntry, ...]:
        """The versions of `chart`, newest first (empty when the chart is not listed)."""
        return self.entries.get(chart, ())


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as Helm writes it (nanoseconds, `Z`), or None when absent or bad."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Python parses at most microseconds; Helm writes nanoseconds
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)].ljust(6, '0')}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _entry(raw: Mapping[str, Any]) -> IndexEntry | None:
    name, version = raw.get("name"), raw.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, str):
        return None
    try:
        Version.parse(version)
    except SemverError:
        return None  # helm drops such entries from an index too
    urls = raw.get("urls") or []
    keywords = raw.get("keywords") or []
    return IndexEntry(
        name=name,
        version=version,
        app_version=str(raw.get("appVersion") or ""),
        description=str(raw.get("description") or ""),
        icon=str(raw.get("icon") or ""),
        keywords=tuple(str(k) for k in keywords) if isinstance(keywords, list) else (),
        deprecated=bool(raw.get("deprecated")),
        created=parse_time(raw.get("created")),
        digest=str(raw.get("digest") or "").removeprefix("sha256:").lower(),
        urls=tuple(str(u) for u in urls) if isinstance(urls, list) else (),
    )


def parse_index(
    raw: bytes, *, source: str, refused: type[CapstanError] = InvalidArgument
) -> RepoIndex:
    """Parse an `index.yaml`; `refused` (with a message naming `source`) if it is not one."""
    try:
        documents = load_yaml(raw, what=f"the index of {source}", max_nodes=_MAX_INDEX_NODES)
    except CapstanError as err:
        raise refused(f"{source} does not serve a chart repository index: {err.message}") from None
    document = documents[0] if documents else None
    if not isinstance(document, dict) or not isinstance(document.get("entries"), dict):
        raise refused(
            f"{source} does not serve a chart repository index (no 'entries' in index.yaml)"
        )
    entries: dict[str, tuple[IndexEntry, ...]] = {}
    for chart, versions in document["entries"].items():
        if not isinstance(versions, list):
            continue
        parsed = [e for e in (_entry(v) for v in versions if isinstance(v, dict)) if e is not None]
        parsed = [e for e in parsed if e.name == chart]
        parsed.sort(key=lambda e: Version.parse(e.version), reverse=True)
        if parsed:
            entries[chart] = tuple(parsed)
    return RepoIndex(entries)


def index_url(repo_url: str) -> str:
    """Where a repository's index lives (helm: `<url>/index.yaml`)."""
    return repo_url.rstrip("/") + "/index.yaml"


async def download(
    session: aiohttp.ClientSession,
    url: str,
    *,
    auth: tuple[str, str] | None,
    what: str,
    limit: int,
    refused: type[CapstanError],
    client_timeout: aiohttp.ClientTimeout = INDEX_TIMEOUT,
    accept_encoding: str = "identity",
) -> bytes:
    """GET `url` and return the body (at most `limit` bytes), mapping failures to errors:
    unreachable or 5xx -> Unavailable, anything else refused -> `refused`."""
    headers = {"Accept-Encoding": accept_encoding}
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
        headers["Authorization"] = f"Basic {token}"
    try:
        async with session.get(url, timeout=client_timeout, headers=headers) as resp:
            if resp.status in (401, 403):
                reason = "refused the credentials" if auth else "needs credentials"
                raise refused(f"{what} {reason} (HTTP {resp.status} from {url})")
            if resp.status >= 500:
                raise Unavailable(f"{what} is unavailable (HTTP {resp.status} from {url})")
            if resp.status != 200:
                raise refused(f"{what} was not found (HTTP {resp.status} from {url})")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > limit:
                    raise refused(f"{what} is larger than {limit} bytes ({url})")
                chunks.append(chunk)
            body = b"".join(chunks)
            encoding = resp.headers.get("Content-Encoding", "").lower()
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        detail = str(err) or type(err).__name__
        raise Unavailable(f"{what} cannot be reached at {url}: {detail}") from None
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, zlib.error) as err:
        raise refused(f"{what} sent a corrupt {encoding} body ({url}): {err}") from None
    return body


async def fetch_index(
    session: aiohttp.ClientSession,
    repo_url: str,
    *,
    auth: tuple[str, str] | None,
    name: str,
    refused: type[CapstanError] = InvalidArgument,
) -> tuple[bytes, RepoIndex]:
    """Download and parse a repository's index; the raw bytes are kept for the cache."""
    what = f"chart repository {name!r}"
    raw = await download(
        session,
        index_url(repo_url),
        auth=auth,
        what=what,
        limit=MAX_INDEX_BYTES,
        refused=refused,
        accept_encoding="gzip",
    )
    index = await asyncio.to_thread(parse_index, raw, source=what, refused=refused)
    return raw, index


def write_atomically(path: Path, body: bytes, *, prefix: str) -> None:
    """Write `path` so that readers see the old content or the new, never a part (the
    temporary file, named `prefix...`, is private and removed on failure). Blocking."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class IndexCache:
    """Indexes by repository id: parsed in memory, raw under `<data dir>/repos/<id>/`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._parsed: dict[str, RepoIndex] = {}

    def _path(self, repo_id: str) -> Path:
        return self.directory / repo_id / "index.yaml"

    async def load(self, repo_id: str, *, name: str) -> RepoIndex | None:
        """The cached index of a repository, or None when it was never fetched."""
        if repo_id in self._parsed:
            return self._parsed[repo_id]
        path = self._path(repo_id)
        try:
            raw = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        index = await asyncio.to_thread(parse_index, raw, source=f"chart repository {name!r}")
        self._parsed[repo_id] = index
        return index

    async def store(self, repo_id: str, raw: bytes, index: RepoIndex) -> None:
        """Keep a freshly fetched index (atomically replacing the old one)."""
        await asyncio.to_thread(write_atomically, self._path(repo_id), raw, prefix=".index-")
        self._parsed[repo_id] = index

    async def forget(self, repo_id: str) -> None:
        """Drop a repository's cached index (it was unregistered)."""
        self._parsed.pop(repo_id, None)
        await asyncio.to_thread(shutil.rmtree, self.directory / repo_id, True)
