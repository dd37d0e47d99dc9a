"""Chart repository indexes: fetch a repository's `index.yaml` (through `fetch.Fetcher`), parse
it under budgets, and keep it under the data dir so that reads never wait on the repository
(`helm repo update` refreshes).

Fetch errors say what to do: an unreachable repository is Unavailable (retry later); one that
refuses the credentials, has no index or serves something else is the caller's problem
(InvalidArgument when registering, FailedPrecondition once registered).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capstan_server.charts.fetch import Fetcher
from capstan_server.charts.limits import RepoLimits
from capstan_server.charts.semver import SemverError, Version
from capstan_server.errors import CapstanError, InvalidArgument
from capstan_server.lru import ByteLRU
from capstan_server.values import load_yaml

__all__ = [
    "IndexCache",
    "IndexEntry",
    "RepoIndex",
    "fetch_index",
    "parse_index",
    "parse_time",
    "write_atomically",
]

_DEFAULT_LIMITS = RepoLimits()
#: What a parsed index costs in memory per byte of YAML (Python objects are large).
_PARSED_BYTES_PER_RAW_BYTE = 8


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
    raw: bytes,
    *,
    source: str,
    refused: type[CapstanError] = InvalidArgument,
    limits: RepoLimits = _DEFAULT_LIMITS,
) -> RepoIndex:
    """Parse an `index.yaml`; `refused` (with a message naming `source`) if it is not one, or
    if it passes the budgets of `limits` (size, alias expansion, nesting). Blocking."""
    if len(raw) > limits.max_index_bytes:
        raise refused(f"{source} serves an index larger than {limits.max_index_bytes} bytes")
    # An index has no use for aliases: expanding to more nodes than it has bytes is a bomb.
    budget = int(len(raw) * limits.index_nodes_per_byte) + 1000
    try:
        documents = load_yaml(raw, what=f"the index of {source}", max_nodes=budget)
    except CapstanError as err:
        raise refused(f"{source} does not serve a chart repository index: {err.message}") from None
    except RecursionError:
        documents = None
    if documents is None or _too_deep(documents, limits.max_index_depth):
        raise refused(
            f"{source} serves an index nested more than {limits.max_index_depth} levels deep"
        )
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


def _too_deep(node: Any, limit: int) -> bool:
    stack = [(node, 0)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(current, dict):
            stack.extend((v, depth + 1) for v in current.values())
        elif isinstance(current, list):
            stack.extend((v, depth + 1) for v in current)
    return False


def index_url(repo_url: str) -> str:
    """Where a repository's index lives (helm: `<url>/index.yaml`)."""
    return repo_url.rstrip("/") + "/index.yaml"


async def fetch_index(
    fetcher: Fetcher,
    repo_url: str,
    *,
    auth: tuple[str, str] | None,
    name: str,
    repo_key: str,
    refused: type[CapstanError] = InvalidArgument,
) -> tuple[bytes, RepoIndex]:
    """Download and parse a repository's index; the raw bytes are kept for the cache."""
    what = f"chart repository {name!r}"
    # One growing buffer (not a list of pieces): freed at once, its memory goes back to the OS.
    buffer = bytearray()
    try:
        await fetcher.fetch(
            index_url(repo_url),
            repo_key=repo_key,
            repo_url=repo_url,
            auth=auth,
            what=what,
            limit=fetcher.limits.max_index_bytes,
            refused=refused,
            sink=buffer.extend,
            accept_encoding="gzip",
        )
    except BaseException:
        # The error's traceback holds the frames that hold the buffer, in a cycle that lives
        # until the garbage collector's next full pass: a bomb refused at the cap would keep
        # its max_index_bytes that long, one per attempt. Let them go now.
        buffer.clear()
        raise
    raw = bytes(buffer)
    del buffer
    index = await asyncio.to_thread(
        parse_index, raw, source=what, refused=refused, limits=fetcher.limits
    )
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
    """Indexes by repository id: raw under `<data dir>/repos/<id>/`, parsed in memory under a
    byte budget (least recently used first out; a miss parses the file again)."""

    def __init__(self, directory: Path, limits: RepoLimits = _DEFAULT_LIMITS) -> None:
        self.directory = directory
        self.limits = limits
        self._parsed: ByteLRU[str, RepoIndex] = ByteLRU(limits.index_cache_bytes)

    def _path(self, repo_id: str) -> Path:
        return self.directory / repo_id / "index.yaml"

    def _keep(self, repo_id: str, raw: bytes, index: RepoIndex) -> None:
        self._parsed.put(repo_id, index, len(raw) * _PARSED_BYTES_PER_RAW_BYTE)

    async def load(self, repo_id: str, *, name: str) -> RepoIndex | None:
        """The cached index of a repository, or None when it was never fetched."""
        cached = self._parsed.get(repo_id)
        if cached is not None:
            return cached
        path = self._path(repo_id)
        try:
            raw = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        index = await asyncio.to_thread(
            parse_index, raw, source=f"chart repository {name!r}", limits=self.limits
        )
        self._keep(repo_id, raw, index)
        return index

    async def store(self, repo_id: str, raw: bytes, index: RepoIndex) -> None:
        """Keep a freshly fetched index (atomically replacing the old one)."""
        await asyncio.to_thread(write_atomically, self._path(repo_id), raw, prefix=".index-")
        self._keep(repo_id, raw, index)

    async def forget(self, repo_id: str) -> None:
        """Drop a repository's cached index (it was unregistered)."""
        self._parsed.pop(repo_id)
        await asyncio.to_thread(shutil.rmtree, self.directory / repo_id, True)
