"""Chart archives: download a chart's `.tgz`, check its digest and its contents, cache it per
repository by digest, and read the few files Capstan shows (Chart.yaml, values.yaml,
values.schema.json, README).

An archive reaches the disk only as `<data dir>/charts/<repo id>/<sha256>.tgz`, after its sha256
matched the digest of its index entry and `tar.read_tgz` found it sound; a download streams into
a private temporary file beside it that is removed whatever happens. A digest is checked to be
64 hex digits before anything else and is never a path of its own, and the cache is per
repository, so one repository can never name (and get) another one's archive. An index entry
without a digest is refused: Capstan installs only archives whose digest it checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capstan_server.charts.fetch import Fetcher, join_url
from capstan_server.charts.limits import RepoLimits
from capstan_server.charts.repo_index import IndexEntry
from capstan_server.charts.tar import ArchiveError, read_tgz
from capstan_server.errors import CapstanError, FailedPrecondition
from capstan_server.values import load_yaml

__all__ = [
    "ArchiveStore",
    "ChartFiles",
    "archive_url",
    "check_entry",
    "read_chart_files",
    "valid_digest",
]

_README_NAMES = ("readme.md", "readme.txt", "readme")
_TOP_FILES = ("Chart.yaml", "values.yaml", "values.schema.json")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MAX_SUBCHART_DEPTH = 3


@dataclass(frozen=True)
class ChartFiles:
    """What Capstan reads from a chart archive."""

    #: Chart.yaml.
    metadata: dict[str, Any]
    #: values.yaml (the chart's default values).
    values: dict[str, Any]
    #: values.schema.json, if the chart has one.
    schema: dict[str, Any] | None
    #: README.md (or README.txt / README), "" if none.
    readme: str
    #: The values.schema.json of subcharts, directories and `.tgz` alike (path inside the chart,
    #: schema): helm checks them too, so Capstan refuses their references outside the document
    #: before helm runs.
    subchart_schemas: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: Bytes read from the archive (what the in-memory cache counts).
    size: int = 0


def valid_digest(entry: IndexEntry, repo_name: str) -> str:
    """The entry's sha256 as 64 lower-case hex digits, else FailedPrecondition."""
    if not entry.digest:
        raise FailedPrecondition(
            f"the index of repository {repo_name!r} gives no digest for {entry.name} "
            f"{entry.version}: Capstan installs only archives whose digest it checked"
        )
    if not _DIGEST.fullmatch(entry.digest):
        raise FailedPrecondition(
            f"the index of repository {repo_name!r} gives {entry.name} {entry.version} a "
            "digest that is not a sha256 (64 hex digits)"
        )
    return entry.digest


def archive_url(entry: IndexEntry, repo_url: str) -> str:
    """The absolute URL of a chart version's archive (index URLs may be relative)."""
    if not entry.urls:
        raise FailedPrecondition(
            f"the index lists no download URL for {entry.name} {entry.version}"
        )
    return join_url(repo_url.rstrip("/") + "/", entry.urls[0])


def _is_subchart_archive(name: str) -> bool:
    # helm loads `charts/*.tgz` (at any depth of directory subcharts) as subcharts.
    return name.endswith(".tgz") and posixpath.basename(posixpath.dirname(name)) == "charts"


def _wanted(name: str) -> bool:
    return (
        name in _TOP_FILES
        or name.lower() in _README_NAMES
        or (name.startswith("charts/") and name.endswith("/values.schema.json"))
        or _is_subchart_archive(name)
    )


def _subchart_schemas(
    files: dict[str, bytes], chart: str, limits: RepoLimits, prefix: str = "", depth: int = 0
) -> list[tuple[str, dict[str, Any]]]:
    """The values.schema.json of every subchart, directory or archive, nested archives
    included: helm validates them all (following their refs), so Capstan must see them all."""
    found = []
    for name, data in sorted(files.items()):
        path = prefix + name
        in_subchart = name.startswith("charts/") or bool(prefix)
        if in_subchart and posixpath.basename(name) == "values.schema.json":
            found.append((path, _schema(data, chart, path)))
        elif _is_subchart_archive(name):
            if depth >= _MAX_SUBCHART_DEPTH:
                raise FailedPrecondition(
                    f"chart {chart}: subchart archives nest more than {_MAX_SUBCHART_DEPTH} deep"
                )
            try:
                inner = read_tgz(io.BytesIO(data), limits, _wanted)
            except ArchiveError as err:
                raise FailedPrecondition(f"chart {chart}: {path}: {err}") from None
            found += _subchart_schemas(
                {f.name: f.data for f in inner}, chart, limits, f"{path}/", depth + 1
            )
    return found


def read_chart_files(archive: Path | bytes, *, chart: str, limits: RepoLimits) -> ChartFiles:
    """Read Chart.yaml, values.yaml, values.schema.json and the README of a chart archive.

    FailedPrecondition when the archive is not a sound chart (the caller cannot fix that).
    Blocking: call it in a thread.
    """
    try:
        if isinstance(archive, bytes):
            found = read_tgz(io.BytesIO(archive), limits, _wanted)
        else:
            with archive.open("rb") as source:
                found = read_tgz(source, limits, _wanted)
    except ArchiveError as err:
        raise FailedPrecondition(f"chart {chart}: {err}") from None
    except OSError:
        raise FailedPrecondition(f"chart {chart}: the archive cannot be read") from None
    wanted = {f.name: f.data for f in found}
    if "Chart.yaml" not in wanted:
        raise FailedPrecondition(f"chart {chart}: the archive has no Chart.yaml")
    metadata = _mapping(wanted["Chart.yaml"], chart, "Chart.yaml")
    values = _mapping(wanted.get("values.yaml", b""), chart, "values.yaml")
    schema = _schema(wanted["values.schema.json"], chart, "values.schema.json") if (
        "values.schema.json" in wanted
    ) else None
    subcharts = tuple(_subchart_schemas(wanted, chart, limits))
    readme = next(
        (data for name, data in wanted.items() if name.lower() in _README_NAMES), b""
    )
    return ChartFiles(
        metadata,
        values,
        schema,
        readme.decode("utf-8", errors="replace"),
        subcharts,
        size=sum(len(f.data) for f in found if not _is_subchart_archive(f.name)),
    )


def _schema(raw: bytes, chart: str, filename: str) -> dict[str, Any]:
    try:
        loaded = json.loads(raw)
    except (ValueError, RecursionError):
        raise FailedPrecondition(f"chart {chart}: {filename} is not JSON") from None
    if not isinstance(loaded, dict):
        raise FailedPrecondition(f"chart {chart}: {filename} is not a JSON object")
    return loaded


def _mapping(raw: bytes, chart: str, filename: str) -> dict[str, Any]:
    try:
        documents = load_yaml(raw, what=f"{filename} of chart {chart}")
    except CapstanError as err:
        raise FailedPrecondition(err.message, details=err.details) from None
    except RecursionError:
        raise FailedPrecondition(f"chart {chart}: {filename} is nested too deeply") from None
    # Helm reads the first document of these files only.
    first = documents[0] if documents else None
    if first is None:
        return {}
    if not isinstance(first, dict):
        raise FailedPrecondition(f"chart {chart}: {filename} is not a YAML mapping")
    return first


def check_entry(files: ChartFiles, entry: IndexEntry) -> ChartFiles:
    """`files` if their Chart.yaml is the chart and version the index entry names."""
    meta = files.metadata
    if (meta.get("name"), str(meta.get("version"))) != (entry.name, entry.version):
        raise FailedPrecondition(
            f"chart archive {entry.name}-{entry.version} holds Chart.yaml of "
            f"{str(meta.get('name'))[:100]!r} {str(meta.get('version'))[:100]!r}, not what "
            "the index says"
        )
    return files


class ArchiveStore:
    """Digest-checked archives under `<directory>/<repo id>/<sha256>.tgz`."""

    def __init__(self, directory: Path, fetcher: Fetcher, limits: RepoLimits) -> None:
        self.directory = directory
        self.fetcher = fetcher
        self.limits = limits
        self._inflight: dict[tuple[str, str], asyncio.Future[tuple[Path, ChartFiles | None]]] = {}

    def path(self, repo_id: str, digest: str) -> Path:
        return self.directory / repo_id / f"{digest}.tgz"

    async def get(
        self,
        entry: IndexEntry,
        *,
        repo_id: str,
        repo_url: str,
        repo_name: str,
        auth: tuple[str, str] | None,
    ) -> tuple[Path, ChartFiles | None]:
        """The cached archive of `entry` and, when it was just downloaded, its files (read
        while checking it); downloads of one archive in flight at once are shared."""
        digest = valid_digest(entry, repo_name)
        path = self.path(repo_id, digest)
        if await asyncio.to_thread(path.is_file):
            return path, None
        key = (repo_id, digest)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[tuple[Path, ChartFiles | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._inflight[key] = future
        try:
            result = await self._download(entry, digest, path, repo_url, repo_name, auth)
            future.set_result(result)
            return result
        except BaseException as err:
            if isinstance(err, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(err)
                future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            del self._inflight[key]

    async def _download(
        self,
        entry: IndexEntry,
        digest: str,
        path: Path,
        repo_url: str,
        repo_name: str,
        auth: tuple[str, str] | None,
    ) -> tuple[Path, ChartFiles]:
        url = archive_url(entry, repo_url)
        label = f"{entry.name}-{entry.version}"
        await asyncio.to_thread(path.parent.mkdir, mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".download-")
        tmp = Path(tmp_name)
        try:
            sha = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:

                def sink(piece: bytes) -> None:
                    sha.update(piece)
                    out.write(piece)

                await self.fetcher.fetch(
                    url,
                    repo_key=f"repo:{path.parent.name}",
                    repo_url=repo_url,
                    auth=auth,
                    what=f"chart {entry.name} {entry.version} of repository {repo_name!r}",
                    limit=self.limits.max_archive_bytes,
                    refused=FailedPrecondition,
                    sink=sink,
                )
            if sha.hexdigest() != digest:
                # The computed digest is not shown: it would tell what any URL answers.
                raise FailedPrecondition(
                    f"chart {entry.name} {entry.version} does not match the digest in the index "
                    f"of repository {repo_name!r}; sync the repository and retry",
                    details=[{"expected": digest}],
                )
            files = check_entry(
                await asyncio.to_thread(read_chart_files, tmp, chart=label, limits=self.limits),
                entry,
            )
            await asyncio.to_thread(os.replace, tmp, path)
            return path, files
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(tmp.unlink)

    async def forget(self, repo_id: str) -> None:
        """Drop a repository's archives (it was unregistered)."""
        await asyncio.to_thread(shutil.rmtree, self.directory / repo_id, True)
