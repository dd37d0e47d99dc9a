"""Chart archives: download a chart's `.tgz`, check its digest, cache it by digest, and read
the few files Capstan shows (Chart.yaml, values.yaml, values.schema.json, README).

Archives come from the network, so they are read defensively: nothing is ever extracted to
disk, only regular files at the chart's top level are read, and sizes are capped as Helm caps
them (100 MiB unpacked, 5 MiB per file).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from capstan_server.charts.repo_index import IndexEntry, download, write_atomically
from capstan_server.errors import CapstanError, FailedPrecondition
from capstan_server.values import load_yaml

__all__ = ["ChartFiles", "archive_url", "fetch_archive", "read_chart_files"]

MAX_ARCHIVE_BYTES = 100 * 1024 * 1024
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
MAX_FILE_BYTES = 5 * 1024 * 1024
ARCHIVE_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10)
_README_NAMES = ("readme.md", "readme.txt", "readme")


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


def archive_url(entry: IndexEntry, repo_url: str) -> str:
    """The absolute URL of a chart version's archive (index URLs may be relative)."""
    if not entry.urls:
        raise FailedPrecondition(
            f"the index lists no download URL for {entry.name} {entry.version}"
        )
    return urljoin(repo_url.rstrip("/") + "/", entry.urls[0])


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


async def fetch_archive(
    session: aiohttp.ClientSession,
    entry: IndexEntry,
    *,
    repo_url: str,
    auth: tuple[str, str] | None,
    cache_dir: Path,
    repo_name: str,
) -> Path:
    """The archive of `entry` in the cache, downloading (and checking its digest) if needed."""
    if entry.digest:
        cached = cache_dir / f"{entry.digest}.tgz"
        if await asyncio.to_thread(cached.is_file):
            return cached
    url = archive_url(entry, repo_url)
    # Like helm, send the repository's credentials only to the repository's own origin.
    credentials = auth if _same_origin(url, repo_url) else None
    body = await download(
        session,
        url,
        auth=credentials,
        what=f"chart {entry.name} {entry.version} of repository {repo_name!r}",
        limit=MAX_ARCHIVE_BYTES,
        refused=FailedPrecondition,
        client_timeout=ARCHIVE_TIMEOUT,
    )
    digest = hashlib.sha256(body).hexdigest()
    if entry.digest and digest != entry.digest:
        raise FailedPrecondition(
            f"chart {entry.name} {entry.version} from {url} does not match the digest in the "
            f"index of repository {repo_name!r} (sha256 {digest}, expected {entry.digest}); "
            "sync the repository and retry",
            details=[{"url": url, "sha256": digest, "expected": entry.digest}],
        )
    path = cache_dir / f"{digest}.tgz"
    await asyncio.to_thread(write_atomically, path, body, prefix=".download-")
    return path


def read_chart_files(archive: Path, *, chart: str) -> ChartFiles:
    """Read Chart.yaml, values.yaml, values.schema.json and the README of a chart archive.

    FailedPrecondition when the archive is not a sound chart (the caller cannot fix that).
    Blocking: call it in a thread.
    """
    wanted: dict[str, bytes] = {}
    unpacked = 0
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                unpacked += max(member.size, 0)
                if unpacked > MAX_UNPACKED_BYTES:
                    raise FailedPrecondition(f"chart {chart} unpacks to more than 100 MiB")
                parts = PurePosixPath(member.name).parts
                # Only `<top dir>/<file>`: subcharts' files and anything odd are ignored.
                if len(parts) != 2 or not member.isreg() or ".." in parts:
                    continue
                filename = parts[1].lower() if parts[1].lower() in _README_NAMES else parts[1]
                if filename not in (
                    "Chart.yaml",
                    "values.yaml",
                    "values.schema.json",
                    *_README_NAMES,
                ):
                    continue
                if member.size > MAX_FILE_BYTES:
                    raise FailedPrecondition(f"chart {chart}: {member.name} is larger than 5 MiB")
                handle = tar.extractfile(member)
                if handle is not None and filename not in wanted:
                    wanted[filename] = handle.read(MAX_FILE_BYTES + 1)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise FailedPrecondition(f"chart {chart}: the archive cannot be read: {err}") from None
    if "Chart.yaml" not in wanted:
        raise FailedPrecondition(f"chart {chart}: the archive has no Chart.yaml")
    metadata = _mapping(wanted["Chart.yaml"], chart, "Chart.yaml")
    values = _mapping(wanted.get("values.yaml", b""), chart, "values.yaml")
    schema: dict[str, Any] | None = None
    if "values.schema.json" in wanted:
        try:
            loaded = json.loads(wanted["values.schema.json"])
        except ValueError as err:
            raise FailedPrecondition(
                f"chart {chart}: values.schema.json is not JSON: {err}"
            ) from None
        if not isinstance(loaded, dict):
            raise FailedPrecondition(f"chart {chart}: values.schema.json is not a JSON object")
        schema = loaded
    readme = next((wanted[n] for n in _README_NAMES if n in wanted), b"")
    return ChartFiles(metadata, values, schema, readme.decode("utf-8", errors="replace"))


def _mapping(raw: bytes, chart: str, filename: str) -> dict[str, Any]:
    try:
        documents = load_yaml(raw, what=f"{filename} of chart {chart}")
    except CapstanError as err:
        raise FailedPrecondition(err.message, details=err.details) from None
    # Helm reads the first document of these files only.
    first = documents[0] if documents else None
    if first is None:
        return {}
    if not isinstance(first, dict):
        raise FailedPrecondition(f"chart {chart}: {filename} is not a YAML mapping")
    return first
