"""The pieces behind issue 15's defences: the address policy, the byte-budget LRU, the tar
reader's header rules (end-to-end attacks are in tests/repos/)."""

from __future__ import annotations

import io
import ipaddress
from pathlib import Path

import pytest
from repos.hostile_repo import CHART_YAML, raw_tgz, tar_header, tgz

from capstan_server.charts.fetch import AddressPolicy, AddressRefused
from capstan_server.charts.limits import RepoLimits
from capstan_server.charts.repo_index import IndexCache, parse_index
from capstan_server.charts.tar import ArchiveError, read_tgz
from capstan_server.lru import ByteLRU


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("169.254.169.254", True),
        ("fe80::1", True), ("0.0.0.0", True), ("0.1.2.3", True), ("::", True),
        ("::ffff:127.0.0.1", True), ("::ffff:169.254.169.254", True), ("224.0.0.1", True),
        ("240.0.0.1", True), ("10.1.2.3", False), ("192.168.1.1", False),
        ("172.16.0.1", False), ("93.184.216.34", False), ("2606:4700::1111", False),
    ],
)
def test_the_address_policy(address: str, refused: bool) -> None:
    policy = AddressPolicy()
    assert (policy.refusal("repo.example", ipaddress.ip_address(address)) is not None) == refused


def test_allowed_hosts_and_dev_loopback() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    assert AddressPolicy(frozenset({"charts.internal"})).refusal("charts.internal", loopback) \
        is None
    assert AddressPolicy(frozenset({"127.0.0.1"})).refusal("localhost", loopback) is None
    assert AddressPolicy(loopback=True).refusal("localhost", loopback) is None
    assert AddressPolicy(loopback=True).refusal(
        "x", ipaddress.ip_address("169.254.169.254")) is not None
    with pytest.raises(AddressRefused):
        AddressPolicy().check_literal("[::1]")
    AddressPolicy().check_literal("charts.example.com")  # names go through the resolver


def test_the_lru_stays_under_its_budget() -> None:
    lru: ByteLRU[str, str] = ByteLRU(100)
    for i in range(10):
        lru.put(f"k{i}", "v", 30)
    assert lru.used <= 100 and len(lru) == 3 and lru.get("k9") == "v" and lru.get("k0") is None
    lru.put("huge", "v", 101)
    assert lru.get("huge") is None
    lru.discard_where(lambda k: k == "k9")
    assert lru.get("k9") is None and lru.used == 60


def test_the_lru_can_count_items_too() -> None:
    lru: ByteLRU[str, str] = ByteLRU(1000, max_items=2)
    for key in ("a", "b", "c"):
        lru.put(key, "v", 1)
    assert len(lru) == 2 and lru.get("a") is None and lru.used == 2


def _read(data: bytes, **limits: int) -> list[str]:
    return [f.name for f in read_tgz(io.BytesIO(data), RepoLimits(**limits), lambda n: True)]


def test_the_reader_names_files_as_helm_does() -> None:
    data = tgz({"c/Chart.yaml": CHART_YAML, "c/templates/a.yaml": b"a", "c/x/../b": b"b"})
    assert _read(data) == ["Chart.yaml", "templates/a.yaml", "b"]
    long_name = "c/" + "d" * 150 + "/values.yaml"  # a GNU long name / PAX path
    assert _read(tgz({long_name: b"x"})) == [long_name[2:]]


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"Chart.yaml": CHART_YAML}, "base directory"),
        ({"c/Chart.yaml": CHART_YAML, "c//etc/passwd": b"x"}, "absolute"),
        ({"c/Chart.yaml": CHART_YAML, "d/values.yaml": b"x"}, "several top-level"),
        ({"c/Chart.yaml": CHART_YAML, "c/./Chart.yaml": b"x"}, "twice"),
    ],
)
def test_the_reader_refuses_what_helm_or_capstan_would_misread(
    members: dict[str, bytes], message: str
) -> None:
    with pytest.raises(ArchiveError, match=message):
        _read(tgz(members))


def test_the_reader_budgets() -> None:
    with pytest.raises(ArchiveError, match="more than 10 bytes"):
        _read(tgz({"c/Chart.yaml": CHART_YAML}), max_unpacked_bytes=10)
    with pytest.raises(ArchiveError, match="larger than 5 bytes"):
        _read(tgz({"c/Chart.yaml": CHART_YAML}), max_file_bytes=5)
    with pytest.raises(ArchiveError, match="more than 2 entries"):
        _read(tgz({f"c/{i}": b"" for i in range(3)}), max_archive_entries=2)
    with pytest.raises(ArchiveError, match="corrupt"):
        _read(raw_tgz(b"x" * 512))
    header = tar_header(b"c/a", 1000)
    with pytest.raises(ArchiveError, match="truncated"):
        _read(raw_tgz(header + b"short"))


async def test_parsed_indexes_stay_under_their_budget(tmp_path: Path) -> None:
    raw = b"apiVersion: v1\nentries:\n  a:\n  - {name: a, version: 1.0.0}\n" + b"#" * 1000
    index = parse_index(raw, source="test")
    cache = IndexCache(tmp_path, RepoLimits(index_cache_bytes=len(raw) * 8 * 2))
    for repo in ("r1", "r2", "r3"):
        await cache.store(repo, raw, index)
    assert cache._parsed.used <= cache.limits.index_cache_bytes and len(cache._parsed) == 2
    reloaded = await cache.load("r1", name="r1")  # evicted: parsed again from the file
    assert reloaded is not None and reloaded.versions("a")


def test_the_reader_keeps_little() -> None:
    with pytest.raises(ArchiveError, match="pass 10 bytes"):
        _read(tgz({"c/Chart.yaml": CHART_YAML}), max_read_bytes=10)
