"""An index refused at its cap lets its bytes go at once: the refusal's traceback holds the
frames that held the download, in a cycle only the garbage collector's next full pass breaks,
and a client that retries a bomb in a loop would otherwise pile one cap's worth up per attempt
(`charts/repo_index.fetch_index`)."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from capstan_server.charts.fetch import Fetcher
from capstan_server.charts.limits import MiB, RepoLimits
from capstan_server.charts.repo_index import fetch_index
from capstan_server.errors import InvalidArgument
from repos.hostile_repo import HostileRepo, gzip_bomb


async def test_a_refused_index_keeps_no_bytes_while_its_error_lives() -> None:
    limits = RepoLimits(allowed_hosts=frozenset({"127.0.0.1"}), max_index_bytes=16 * MiB)
    fetcher = Fetcher(limits)
    with HostileRepo() as hostile:
        hostile.index(gzip_bomb(64 * MiB, prefix=b"apiVersion: v1\nentries: {}\n#"),
                      **{"Content-Encoding": "gzip"})
        gc.disable()  # as between two full passes of the collector
        tracemalloc.start()
        try:
            with pytest.raises(InvalidArgument, match="larger than") as refused:
                await fetch_index(fetcher, hostile.url, auth=None, name="bomb",
                                  repo_key="repo:bomb")
            held, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            gc.enable()
            await fetcher.close()
    assert refused.value.__traceback__ is not None  # the error, and its frames, still live
    assert peak > 16 * MiB  # the download did reach the cap ...
    assert held < 4 * MiB  # ... and none of it is kept
