"""The SQLite registry: clusters and repositories, private files, surviving a restart."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from capstan_server.errors import AlreadyExists, InvalidArgument, NotFound
from capstan_server.registry import DB_FILE, Registry

KUBECONFIG = "apiVersion: v1\nkind: Config\n"


async def test_clusters_and_repos_survive_a_restart(tmp_path: Path) -> None:
    registry = await Registry.open(tmp_path / "data")
    cluster = await registry.add_cluster("test122", KUBECONFIG, "https://10.0.0.1:6443")
    repo = await registry.add_repo(
        "bitnami-new", "https://charts.example", "external", "u", "s3cret"
    )
    await registry.close()

    registry = await Registry.open(tmp_path / "data")
    try:
        again = await registry.get_cluster("test122")
        assert again == cluster
        assert await registry.get_cluster(cluster.id) == cluster
        assert again.kubeconfig == KUBECONFIG
        stored = await registry.get_repo(repo.id)
        assert stored == repo and stored.auth == ("u", "s3cret")
        assert await registry.get_repo("bitnami-new") == repo
    finally:
        await registry.close()


async def test_files_are_private_to_the_service_user(tmp_path: Path) -> None:
    registry = await Registry.open(tmp_path / "data")
    await registry.close()
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "data" / DB_FILE).stat().st_mode) == 0o600


async def test_secrets_never_show_in_reprs(tmp_path: Path) -> None:
    registry = await Registry.open(tmp_path)
    try:
        cluster = await registry.add_cluster("c1", "token: hush-hush", "https://c1")
        repo = await registry.add_repo("r1", "https://r1", password="hush-hush", username="u")
        assert "hush-hush" not in repr(cluster) and "hush-hush" not in repr(repo)
    finally:
        await registry.close()


async def test_names_are_unique(tmp_path: Path) -> None:
    registry = await Registry.open(tmp_path)
    try:
        await registry.add_cluster("c1", KUBECONFIG, "https://c1")
        with pytest.raises(AlreadyExists):
            await registry.add_cluster("c1", KUBECONFIG, "https://other")
        await registry.add_repo("r1", "https://r1")
        with pytest.raises(AlreadyExists):
            await registry.add_repo("r1", "https://r2")
        with pytest.raises(InvalidArgument):
            await registry.add_repo("r2", "https://r2", "sideways")  # type: ignore[arg-type]
        assert (await registry.list_clusters())[1] == 1
        assert (await registry.list_repos())[1] == 1
    finally:
        await registry.close()


async def test_list_update_and_delete(tmp_path: Path) -> None:
    registry = await Registry.open(tmp_path)
    try:
        for name in ("b", "a", "c"):
            await registry.add_cluster(name, KUBECONFIG, f"https://{name}")
        rows, total = await registry.list_clusters(limit=2, offset=1)
        assert [r.name for r in rows] == ["b", "c"] and total == 3

        a = await registry.get_cluster("a")
        moved = await registry.update_cluster(a.id, kubeconfig="new", server="https://a2")
        assert (moved.kubeconfig, moved.server, moved.created_at) == (
            "new",
            "https://a2",
            a.created_at,
        )
        await registry.delete_cluster(a.id)
        with pytest.raises(NotFound):
            await registry.get_cluster("a")
        assert await registry.find_cluster("a") is None

        repo = await registry.add_repo("r", "https://r", "internal")
        assert [r.name for r in (await registry.list_repos(type="internal"))[0]] == ["r"]
        assert (await registry.list_repos(type="external"))[1] == 0
        assert (await registry.update_repo(repo.id, url="https://r2")).url == "https://r2"
        synced = await registry.mark_repo_synced(repo.id)
        assert synced.synced_at is not None
        await registry.delete_repo(repo.id)
        with pytest.raises(NotFound):
            await registry.get_repo(repo.id)
        with pytest.raises(InvalidArgument):
            await registry.get_repo("")
    finally:
        await registry.close()
