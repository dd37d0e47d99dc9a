"""The registry behind one small interface, and the choice of backend (`--registry`).

- `sqlite` (default): `registry.Registry`, one file under `--data-dir`, per replica;
- `kubernetes`: `registry_kube.KubeRegistry`, labelled Secrets in `--registry-namespace` of
  the cluster Capstan runs in (`--registry-kubeconfig FILE`, or the in-cluster config), shared
  by every replica.

The services, the catalog and the resolver only see `RegistryStore`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from capstan_server.charts.oci import OciOptions
from capstan_server.errors import CapstanError, InvalidArgument
from capstan_server.registry import ClusterRow, Registry, RepoRow, RepoType

RegistryBackend = Literal["sqlite", "kubernetes"]
REGISTRY_BACKENDS: tuple[RegistryBackend, ...] = ("sqlite", "kubernetes")


class RegistryStore(Protocol):
    """Registered clusters and repositories (see `registry.Registry` for each method)."""

    async def close(self) -> None: ...
    async def add_cluster(self, name: str, kubeconfig: str, server: str, *,
                          cluster_id: str = "") -> ClusterRow: ...
    async def find_cluster(self, id_or_name: str) -> ClusterRow | None: ...
    async def get_cluster(self, id_or_name: str) -> ClusterRow: ...
    async def list_clusters(self, limit: int = -1, offset: int = 0
                            ) -> tuple[list[ClusterRow], int]: ...
    async def update_cluster(self, cluster_id: str, *, kubeconfig: str | None = None,
                             server: str | None = None) -> ClusterRow: ...
    async def delete_cluster(self, cluster_id: str) -> None: ...
    async def add_repo(self, name: str, url: str, type: RepoType = "external",
                       username: str = "", password: str = "") -> RepoRow: ...
    async def find_repo(self, id_or_name: str) -> RepoRow | None: ...
    async def get_repo(self, id_or_name: str) -> RepoRow: ...
    async def list_repos(self, limit: int = -1, offset: int = 0, type: str = ""
                         ) -> tuple[list[RepoRow], int]: ...
    async def update_repo(self, repo_id: str, *, url: str | None = None,
                          username: str | None = None, password: str | None = None
                          ) -> RepoRow: ...
    async def mark_repo_synced(self, repo_id: str, when: datetime | None = None) -> RepoRow: ...
    async def set_oci_options(self, repo_id: str, options: OciOptions) -> None: ...
    async def oci_options(self, repo_id: str) -> OciOptions: ...
    async def delete_repo(self, repo_id: str) -> None: ...


@dataclass(frozen=True)
class RegistryOptions:
    backend: RegistryBackend = "sqlite"
    #: kubernetes: the namespace of the Secrets.
    namespace: str = "capstan"
    #: kubernetes: a kubeconfig file for the cluster Capstan runs in (None: in-cluster config).
    kubeconfig: Path | None = None


async def open_registry(data_dir: Path, options: RegistryOptions, *,
                        secret_key_file: Path | None = None) -> RegistryStore:
    """The registry `options` ask for. Secrets are sealed with `secret_key_file`: for sqlite
    it defaults to `<data_dir>/secret.key` (made if missing); for kubernetes only a key file
    given explicitly is used, since every replica must hold the same key (a key generated
    per replica would make the others' credentials unreadable)."""
    if options.backend == "sqlite":
        return await Registry.open(data_dir, secret_key_file=secret_key_file)
    from capstan_server.registry_kube import KubeRegistry, in_cluster_kubeconfig
    from capstan_server.secret_box import SecretBox

    box = SecretBox.from_file(secret_key_file) if secret_key_file is not None else None

    if options.kubeconfig is None:
        text = in_cluster_kubeconfig()
    else:
        try:
            text = options.kubeconfig.read_text()
        except OSError as e:
            raise InvalidArgument(f"cannot read --registry-kubeconfig: {e}") from e
    try:
        return await KubeRegistry.open(text, options.namespace, box)
    except CapstanError as e:
        raise InvalidArgument(f"the registry namespace {options.namespace!r} cannot be read: "
                              f"{e.message}") from e


__all__ = ["REGISTRY_BACKENDS", "RegistryOptions", "RegistryStore", "open_registry"]
