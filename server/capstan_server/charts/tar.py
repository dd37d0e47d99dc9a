"""Read a chart archive (`.tgz`) the way helm's loader reads it, under budgets, without Python's
`tarfile`.

`tarfile` builds everything it is handed: a 2 GiB PAX or GNU long-name header is read whole, two
million empty entries become two million TarInfo objects, and Python 3.11.7's PAX parser is
quadratic (CVE-2024-6232). This reader walks the 512-byte headers of the gzip stream itself,
checks every budget before it reads or keeps anything, and keeps only the files asked for.

Helm's rules (pkg/chart/loader/archive.go, LoadArchiveFiles): the first path element is dropped
whatever it is; directories and PAX headers are skipped; absolute paths, paths that leave the
chart, and a Chart.yaml outside the chart directory are errors; a UTF-8 BOM is trimmed; 5 MiB
per file and 100 MiB in all. Helm lets a later entry replace an earlier one of the same name and
ignores which top-level directory an entry is under, so an archive with two top-level
directories (or a name twice) shows one chart and installs another: Capstan refuses both, so
that what it shows and checks is what helm installs. Links, devices and other special entries
(which `helm package` never writes) are refused too.
"""

from __future__ import annotations

import posixpath
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from capstan_server.charts.limits import RepoLimits

__all__ = ["ArchiveError", "TarFile", "read_tgz"]

_BLOCK = 512
_READ = 1 << 16
_REGULAR = (b"0", b"\x00", b"7")
_UTF8_BOM = b"\xef\xbb\xbf"


class ArchiveError(Exception):
    """The archive is not a chart helm would load, or passes a budget (message says which)."""


@dataclass(frozen=True)
class TarFile:
    """A file of the chart, named as helm names it (without the top-level directory)."""

    name: str
    data: bytes


class _Inflated:
    """The inflated bytes of a (possibly multi-member, as Go reads it) gzip stream, counted
    against the unpacked budget."""

    def __init__(self, source: BinaryIO, budget: int) -> None:
        self._source = source
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._buf = bytearray()
        self._budget = budget
        self.total = 0

    def _more(self, want: int) -> bool:
        data = self._z.unconsumed_tail
        if not data:
            if self._z.eof:
                rest = self._z.unused_data or self._source.read(_READ)
                if not rest:
                    return False
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                data = rest
            else:
                data = self._source.read(_READ)
                if not data:
                    raise ArchiveError("the archive is truncated")
        try:
            piece = self._z.decompress(data, max(want, _READ))
        except zlib.error:
            raise ArchiveError("the archive is not gzip data") from None
        self.total += len(piece)
        if self.total > self._budget:
            raise ArchiveError(f"the chart unpacks to more than {self._budget} bytes")
        self._buf += piece
        return True

    def read(self, n: int) -> bytes:
        """Exactly `n` bytes, or b"" at a clean end of the stream."""
        while len(self._buf) < n:
            if not self._more(n - len(self._buf)):
                if self._buf:
                    raise ArchiveError("the archive is truncated")
                return b""
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def skip(self, n: int) -> None:
        while n > 0:
            step = min(n, _READ)
            if len(self.read(step)) != step:
                raise ArchiveError("the archive is truncated")
            n -= step


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field, "big", signed=False) & ~(0x80 << (8 * (len(field) - 1)))
        if field[0] & 0x40:
            raise ArchiveError("an entry has a negative size")
        return value
    text = field.split(b"\x00", 1)[0].strip(b" \x00")
    if not text:
        return 0
    if not all(48 <= c <= 55 for c in text):
        raise ArchiveError("an entry header is corrupt")
    return int(text, 8)


def _checksum_ok(header: bytes) -> bool:
    wanted = _number(header[148:156])
    blanked = header[:148] + b" " * 8 + header[156:]
    return wanted == sum(blanked) or wanted == sum(b - 256 if b > 127 else b for b in blanked)


def _pax(data: bytes) -> dict[str, str]:
    """PAX records (`<len> <key>=<value>\\n`), parsed in linear time."""
    records: dict[str, str] = {}
    at = 0
    while at < len(data):
        space = data.find(b" ", at, at + 20)
        if space < 0 or not data[at:space].isdigit():
            raise ArchiveError("a PAX header is corrupt")
        length = int(data[at:space])
        record = data[space + 1 : at + length]
        if length <= space - at or at + length > len(data) or not record.endswith(b"\n"):
            raise ArchiveError("a PAX header is corrupt")
        key, eq, value = record[:-1].partition(b"=")
        if not eq:
            raise ArchiveError("a PAX header is corrupt")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        at += length
    return records


def _chart_path(raw_name: str) -> tuple[str, str]:
    """(top-level directory, path inside the chart) as helm computes them."""
    delimiter = "\\" if "\\" in raw_name else "/"
    parts = raw_name.split(delimiter)
    inside = "/".join(parts[1:])
    if inside.startswith("/"):
        raise ArchiveError("the chart illegally contains absolute paths")
    cleaned = posixpath.normpath(inside) if inside else "."
    if cleaned == ".":
        raise ArchiveError(f"the chart illegally contains content outside the base directory: "
                           f"{raw_name[:100]!r}")
    if cleaned.startswith(".."):
        raise ArchiveError("the chart illegally references its parent directory")
    if parts[0] == "Chart.yaml":
        raise ArchiveError("Chart.yaml is not in the chart's base directory")
    return parts[0], cleaned


def read_tgz(source: BinaryIO, limits: RepoLimits, wanted: Callable[[str], bool]) -> list[TarFile]:
    """Walk a chart `.tgz` (a binary stream), enforcing helm's rules and Capstan's budgets, and
    return the files for which `wanted(name)` is true. ArchiveError when it is not sound."""
    stream = _Inflated(source, limits.max_unpacked_bytes)
    files: list[TarFile] = []
    seen: set[str] = set()
    top: str | None = None
    entries = kept = 0
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        header = stream.read(_BLOCK)
        if not header:
            break  # helm tolerates a missing end-of-archive marker
        if header == bytes(_BLOCK):
            following = stream.read(_BLOCK)
            if following and following != bytes(_BLOCK):
                raise ArchiveError("the archive has entries after its end marker")
            break
        entries += 1
        if entries > limits.max_archive_entries:
            raise ArchiveError(f"the archive has more than {limits.max_archive_entries} entries")
        if not _checksum_ok(header):
            raise ArchiveError("an entry header is corrupt (bad checksum)")
        kind = header[156:157]
        size = _number(header[124:136])
        padded = -(-size // _BLOCK) * _BLOCK
        if kind in (b"x", b"g", b"L", b"K"):
            if size > limits.max_tar_header_bytes:
                raise ArchiveError(f"an extended header is larger than "
                                   f"{limits.max_tar_header_bytes} bytes")
            data = stream.read(padded)[:size]
            if len(data) != size:
                raise ArchiveError("the archive is truncated")
            if kind == b"x":
                pax = _pax(data)
            elif kind == b"L":
                long_name = data.split(b"\x00", 1)[0].decode("utf-8", "replace")
            continue
        name = header[0:100].split(b"\x00", 1)[0].decode("utf-8", "replace")
        if header[257:263] == b"ustar\x00":  # POSIX ustar: a name prefix field
            prefix = header[345:500].split(b"\x00", 1)[0].decode("utf-8", "replace")
            name = f"{prefix}/{name}" if prefix else name
        name = pax.get("path", long_name or name)
        if "size" in pax:
            if not pax["size"].isdigit():
                raise ArchiveError("a PAX header is corrupt")
            size = int(pax["size"])
            padded = -(-size // _BLOCK) * _BLOCK
        pax, long_name = {}, None
        if kind == b"5" or name.endswith("/"):
            stream.skip(padded)
            continue
        if kind not in _REGULAR:
            raise ArchiveError(f"the archive holds a link or special file ({name[:100]!r}), "
                               "which helm package never writes")
        entry_top, inside = _chart_path(name)
        if top is None:
            top = entry_top
        elif entry_top != top:
            raise ArchiveError("the archive has several top-level directories (helm would mix "
                               "their files)")
        if inside in seen:
            raise ArchiveError(f"the archive holds {inside[:100]!r} twice")
        seen.add(inside)
        if size > limits.max_file_bytes:
            raise ArchiveError(f"{inside[:100]} is larger than {limits.max_file_bytes} bytes")
        if wanted(inside):
            kept += size
            if kept > limits.max_read_bytes:
                raise ArchiveError(f"the chart's values, schemas and README pass "
                                   f"{limits.max_read_bytes} bytes")
            data = stream.read(padded)[:size]
            if len(data) != size:
                raise ArchiveError("the archive is truncated")
            files.append(TarFile(inside, data.removeprefix(_UTF8_BOM)))
        else:
            stream.skip(padded)
    return files
