"""Every budget that keeps a chart repository (a stranger's server) from hurting Capstan, in one
place, with its default and the `capstan-server` flag that sets it (see the README's security
section). The defaults suit public repositories as large as Bitnami's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MiB", "RepoLimits"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class RepoLimits:
    """What one fetch, one archive, one index and the caches may cost."""

    #: Hosts (names or addresses, as written in URLs) fetched even where the address policy
    #: refuses their address: loopback, link-local, unspecified (`--allow-repo-host`).
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    #: Allow every loopback address (`--dev`, for its sample repository on 127.0.0.1).
    allow_loopback: bool = False
    #: Wall-clock limit of one fetch, connection and redirects included (`--repo-fetch-timeout`).
    fetch_timeout_s: float = 60.0
    #: Longest silence while a body is arriving.
    idle_timeout_s: float = 15.0
    #: Slower than this on average, after `rate_grace_s`, a fetch is given up (`--repo-min-rate`).
    min_rate_bytes_s: int = 16 * 1024
    rate_grace_s: float = 5.0
    #: Fetches in flight per repository; more wait (up to the fetch timeout), so one slow
    #: repository can never hold the connections others need (`--repo-connections`).
    connections_per_repo: int = 4
    #: All connections to all repositories.
    connections_total: int = 200
    max_redirects: int = 10
    #: index.yaml, inflated (`--repo-index-max-bytes`). Parsed, an index takes ~ 12 times its
    #: size in memory and ~ 1 s per MB of CPU, which is what bounds it.
    max_index_bytes: int = 32 * MiB
    #: YAML nodes of an index per byte of it: no index needs aliases, so a document that
    #: expands beyond its own size is an alias bomb.
    index_nodes_per_byte: float = 1.0
    #: Nesting of an index's YAML (real ones are 4 deep).
    max_index_depth: int = 32
    #: A chart archive as downloaded (`.tgz`) and inflated; helm caps charts at 100 MiB
    #: inflated and 5 MiB per file (pkg/chart/loader).
    max_archive_bytes: int = 20 * MiB
    max_unpacked_bytes: int = 100 * MiB
    max_file_bytes: int = 5 * MiB
    #: What Capstan keeps of one archive (Chart.yaml, values, schemas, README) in all.
    max_read_bytes: int = 16 * MiB
    #: Entries in one archive (real charts have tens to a few thousand).
    max_archive_entries: int = 10_000
    #: One PAX extended header or GNU long name (Go's archive/tar allows 1 MiB).
    max_tar_header_bytes: int = 1 * MiB
    #: Parsed indexes kept in memory, by estimated size (`--index-cache-bytes`).
    index_cache_bytes: int = 256 * MiB
    #: Files read from chart archives kept in memory, parsed, by estimated size
    #: (`--chart-cache-bytes`).
    chart_cache_bytes: int = 64 * MiB
