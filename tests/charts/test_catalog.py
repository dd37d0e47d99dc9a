"""The chart catalog against a real chart repository (the sample charts served over HTTP)."""

from __future__ import annotations

import dataclasses
import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from capstan_server.charts.archive import read_chart_files
from capstan_server.charts.catalog import Catalog, parse_chart_reference
from capstan_server.charts.limits import RepoLimits
from capstan_server.dev.chart_repo import SAMPLE_CHARTS_DIR, ChartRepoServer
from capstan_server.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from capstan_server.registry import Registry, RepoRow

HELM = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm"
#: The test repositories are on 127.0.0.1, which the address policy refuses unless allowed.
LOOPBACK = RepoLimits(allowed_hosts=frozenset({"127.0.0.1"}))
L = RepoLimits()


@pytest.fixture
async def catalog(tmp_path: Path) -> AsyncIterator[Catalog]:
    registry = await Registry.open(tmp_path / "data")
    catalog = Catalog(tmp_path / "data", registry, LOOPBACK)
    yield catalog
    await catalog.close()
    await registry.close()


async def register(
    catalog: Catalog, name: str, url: str, auth: tuple[str, str] | None = None
) -> RepoRow:
    raw, index = await catalog.probe(name, url, auth)
    repo = await catalog.registry.add_repo(name, url, "external", *(auth or ("", "")))
    await catalog.adopt(repo, raw, index)
    return repo


async def test_index_lists_versions_newest_first(
    catalog: Catalog, chart_repo: ChartRepoServer
) -> None:
    repo = await register(catalog, "bitnami-new", chart_repo.url)
    index = await catalog.index(repo)
    assert [e.version for e in index.versions("etcd")] == ["8.11.2", "8.11.1"]
    etcd = index.versions("etcd")[1]
    assert (etcd.app_version, len(etcd.digest)) == ("3.5.8", 64)
    assert "capstan-sample" in etcd.keywords and etcd.created is not None
    assert set(index.entries) == {"etcd", "hooked", "crd-demo", "never-ready", "guarded",
                                  "deep-crd", "big-manifest", "webhooks"}


@pytest.mark.parametrize(
    ("version", "picked"),
    [
        ("", "8.11.2"),
        ("8.11.1", "8.11.1"),
        ("~8.11.0", "8.11.2"),
        ("<8.11.2", "8.11.1"),
        ("^8", "8.11.2"),
    ],
)
async def test_resolve_picks_the_version_helm_would(
    catalog: Catalog, chart_repo: ChartRepoServer, version: str, picked: str
) -> None:
    await register(catalog, "bitnami-new", chart_repo.url)
    resolved = await catalog.resolve("bitnami-new/etcd", version)
    source = resolved.source
    assert (source.name, source.version, source.repo_name) == ("etcd", picked, "bitnami-new")
    assert source.archive.is_file() and source.archive.name == f"{resolved.entry.digest}.tgz"
    assert source.archive.parent == catalog.archives_dir / resolved.repo.id  # per repository
    assert resolved.files.metadata["version"] == picked
    assert source.default_values["image"]["tag"] == "3.5.8-debian-11-r8"
    assert (
        resolved.files.schema is not None and "replicaCount" in resolved.files.schema["properties"]
    )
    assert "etcd" in resolved.files.readme.lower()


async def test_unknown_repo_chart_or_version_is_not_found(
    catalog: Catalog, chart_repo: ChartRepoServer
) -> None:
    await register(catalog, "bitnami-new", chart_repo.url)
    with pytest.raises(NotFound, match="repository 'nope'"):
        await catalog.resolve("nope/etcd")
    with pytest.raises(NotFound, match="chart 'redis'"):
        await catalog.resolve("bitnami-new/redis")
    with pytest.raises(NotFound, match=r"8\.11\.2, 8\.11\.1"):
        await catalog.resolve("bitnami-new/etcd", "9.9.9")
    with pytest.raises(InvalidArgument, match="invalid chart version"):
        await catalog.resolve("bitnami-new/etcd", "newest")


@pytest.mark.parametrize(
    "reference",
    [
        "",
        "etcd",
        "./etcd",
        "../charts/etcd",
        "/tmp/etcd-8.11.1.tgz",
        "~/charts/etcd",
        "file:///tmp/etcd",
        "https://charts.example/etcd-8.11.1.tgz",
        "oci://registry.example/charts/etcd",
        "bitnami-new/etcd/extra",
        "Bitnami/etcd",
        "bitnami-new/",
        "--repo=x/etcd",
    ],
)
def test_references_outside_registered_repositories_are_refused(reference: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_chart_reference(reference)


def test_a_good_reference_splits() -> None:
    assert parse_chart_reference("bitnami-new/etcd") == ("bitnami-new", "etcd")


async def test_the_index_is_cached_under_the_data_dir(
    catalog: Catalog, chart_repo: ChartRepoServer, tmp_path: Path
) -> None:
    repo = await register(catalog, "cached", chart_repo.url)
    assert (tmp_path / "data" / "repos" / repo.id / "index.yaml").is_file()
    # a restarted server: no network needed
    fresh = Catalog(tmp_path / "data", catalog.registry, LOOPBACK)
    index = await fresh.indexes.load(repo.id, name=repo.name)
    assert index is not None and index.versions("etcd")
    await catalog.forget(repo)
    assert not (tmp_path / "data" / "repos" / repo.id).exists()


async def test_sync_fetches_the_index_again(catalog: Catalog, chart_repo: ChartRepoServer) -> None:
    repo = await register(catalog, "synced", chart_repo.url)
    await catalog.sync(repo)
    assert (await catalog.registry.get_repo(repo.id)).synced_at is not None


async def test_unreachable_and_non_repositories(
    catalog: Catalog, chart_repo: ChartRepoServer
) -> None:
    with pytest.raises(Unavailable):
        await catalog.probe("dead", "http://127.0.0.1:9", None)
    with pytest.raises(InvalidArgument, match="not found"):
        await catalog.probe("wrong", chart_repo.url + "/no/such/dir", None)


async def test_basic_auth_repositories(catalog: Catalog) -> None:
    if not HELM.exists():
        pytest.skip("helm is not installed; run `make setup`")
    server = ChartRepoServer(SAMPLE_CHARTS_DIR, HELM, username="capstan", password="s3cret")
    async with server:
        with pytest.raises(InvalidArgument, match="needs credentials"):
            await catalog.probe("private", server.url, None)
        with pytest.raises(InvalidArgument, match="refused the credentials"):
            await catalog.probe("private", server.url, ("capstan", "wrong"))
        repo = await register(catalog, "private", server.url, ("capstan", "s3cret"))
        resolved = await catalog.resolve("private/hooked")
        assert resolved.source.archive.is_file()
        # Credentials that stop working make a registered repository's sync fail clearly.
        await catalog.registry.update_repo(repo.id, password="changed")
        with pytest.raises(FailedPrecondition, match="refused the credentials"):
            await catalog.sync(await catalog.registry.get_repo(repo.id))


async def test_a_digest_mismatch_is_refused(
    catalog: Catalog, chart_repo: ChartRepoServer, tmp_path: Path
) -> None:
    repo = await register(catalog, "tampered", chart_repo.url)
    entry = (await catalog.index(repo)).versions("etcd")[0]
    forged = dataclasses.replace(entry, digest="0" * 64)
    with pytest.raises(FailedPrecondition, match="does not match the digest") as err:
        await catalog.archives.get(
            forged, repo_id=repo.id, repo_url=repo.url, repo_name="t", auth=None
        )
    assert entry.digest not in err.value.message  # what the URL answered is not told
    assert list((catalog.archives_dir / repo.id).iterdir()) == []


def _tarball(path: Path, members: dict[str, bytes], *, symlink: str = "") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink:
            link = tarfile.TarInfo(symlink)
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            tar.addfile(link)
    return path


def test_archives_are_read_without_trusting_them(tmp_path: Path) -> None:
    chart = {
        "evil/Chart.yaml": b"apiVersion: v2\nname: evil\nversion: 1.0.0\n",
        "evil/charts/sub/values.yaml": b"sub: values\n",  # a subchart's file: not ours
    }
    files = read_chart_files(_tarball(tmp_path / "ok.tgz", chart), chart="evil-1.0.0", limits=L)
    assert files.metadata["name"] == "evil"
    assert files.values == {} and files.readme == "" and files.schema is None
    escaping = _tarball(tmp_path / "evil.tgz", {**chart, "evil/../../values.yaml": b"x: 1\n"})
    with pytest.raises(FailedPrecondition, match="parent directory"):
        read_chart_files(escaping, chart="evil-1.0.0", limits=L)
    linked = _tarball(tmp_path / "link.tgz", chart, symlink="evil/README.md")
    with pytest.raises(FailedPrecondition, match="link or special file"):
        read_chart_files(linked, chart="evil-1.0.0", limits=L)

    no_chart = _tarball(tmp_path / "empty.tgz", {"x/values.yaml": b"a: 1\n"})
    with pytest.raises(FailedPrecondition, match=r"no Chart\.yaml"):
        read_chart_files(no_chart, chart="x", limits=L)
    not_tar = tmp_path / "junk.tgz"
    not_tar.write_bytes(b"not a tarball")
    with pytest.raises(FailedPrecondition, match="not gzip"):
        read_chart_files(not_tar, chart="junk", limits=L)
    bad_values = _tarball(
        tmp_path / "bad.tgz",
        {"b/Chart.yaml": b"name: b\nversion: 1.0.0\n", "b/values.yaml": b"- a list\n"},
    )
    with pytest.raises(FailedPrecondition, match="not a YAML mapping"):
        read_chart_files(bad_values, chart="b", limits=L)
