"""`capstan-server --dev`: an embedded kubesim cluster and a repository of the sample charts.

kubesim runs on a thread of its own (its simulated controllers keep working while the server's
loop is busy); the chart repository is served from the server's loop. Both are registered
through the server's own gRPC API: the cluster as `default`, the repository as `samples` and
again as `bitnami-new`, so that the commands of the seed document work verbatim.

Restarting with the same data dir keeps everything: kubesim persists every write (the Helm
releases among them) before answering it, in `<data-dir>/dev/kubesim-state.json` and its
journal (`kubesim.persistence`), so even a kill -9 of the server loses nothing; the ports and
token are reused when possible. If a port has to change, the registrations are updated in place, so
clusters and repositories keep their UUIDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import grpc.aio

from capstan.v1 import chart_pb2, chart_pb2_grpc, cluster_pb2, cluster_pb2_grpc
from capstan_server.dev.chart_repo import SAMPLE_CHARTS_DIR, ChartRepoServer
from capstan_server.errors import FailedPrecondition

if TYPE_CHECKING:
    from capstan_server.services import Services
    from kubesim.persistence import State
    from kubesim.testing import KubeSimThread

log = logging.getLogger("capstan.dev")

CLUSTER_NAME = "default"
#: `samples` is the project's name for the repository; `bitnami-new` is the seed document's.
REPO_NAMES = ("samples", "bitnami-new")
STATE_FILE = "kubesim-state.json"
SETTINGS_FILE = "settings.json"


@dataclass
class _Settings:
    """What makes the kubeconfig and repository URL the same after a restart."""

    kubesim_port: int = 0
    kubesim_token: str = ""
    chart_repo_port: int = 0

    @classmethod
    def load(cls, path: Path) -> _Settings:
        try:
            data = json.loads(path.read_text())
            return cls(
                kubesim_port=int(data.get("kubesim_port", 0)),
                kubesim_token=str(data.get("kubesim_token", "")),
                chart_repo_port=int(data.get("chart_repo_port", 0)),
            )
        except (OSError, ValueError, AttributeError):
            return cls()

    def save(self, path: Path) -> None:
        # The token is a credential for the embedded cluster: keep the file private.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.__dict__, out)


class DevEnvironment:
    """The running embedded cluster and chart repository; `start()` it, later `stop()` it."""

    def __init__(self, directory: Path, sim: KubeSimThread, state: State,
                 repo: ChartRepoServer) -> None:
        self.directory = directory
        self.sim = sim
        self.state = state
        self.repo = repo

    @classmethod
    async def start(
        cls,
        services: Services,
        *,
        data_dir: Path,
        helm_bin: Path | None,
        channel: grpc.aio.Channel,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> DevEnvironment:
        """Start kubesim and the chart repository and register them with the server behind
        `channel` (which must already serve), sending `metadata` (the server's credential)."""
        directory, settings = await asyncio.to_thread(_prepare, data_dir, helm_bin)
        assert helm_bin is not None
        sim, state = await asyncio.to_thread(_start_kubesim, directory, settings)
        try:
            repo = await _start_chart_repo(directory, helm_bin, settings)
        except BaseException:
            await asyncio.to_thread(_stop_kubesim, sim, state)
            raise
        env = cls(directory, sim, state, repo)
        settings.kubesim_port = sim.server.port
        settings.chart_repo_port = repo.port
        await asyncio.to_thread(settings.save, directory / SETTINGS_FILE)
        try:
            await env._register(services, channel, tuple(metadata))
        except BaseException:
            await env.stop()
            raise
        log.info(
            "dev environment ready",
            extra={"fields": {"cluster": CLUSTER_NAME, "kube_api": sim.url, "repo": repo.url,
                              "repos": ",".join(REPO_NAMES)}},
        )
        return env

    async def _register(
        self, services: Services, channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...]
    ) -> None:
        clusters = cluster_pb2_grpc.ClusterServiceStub(channel)
        charts = chart_pb2_grpc.ChartServiceStub(channel)
        registry = services.registry
        kubeconfig = self.sim.kubeconfig
        cluster = await registry.find_cluster(CLUSTER_NAME)
        if cluster is None:
            await clusters.CreateCluster(
                cluster_pb2.CreateClusterRequest(name=CLUSTER_NAME, kubeconfig=kubeconfig),
                metadata=metadata,
            )
        elif cluster.kubeconfig != kubeconfig:
            # The port changed since the last run: same cluster, new address.
            await registry.update_cluster(
                cluster.id, kubeconfig=kubeconfig, server=self.sim.url
            )
        for name in REPO_NAMES:
            repo = await registry.find_repo(name)
            if repo is None:
                await charts.CreateRepository(
                    chart_pb2.CreateRepositoryRequest(name=name, url=self.repo.url,
                                                      type="external"),
                    metadata=metadata,
                )
            elif repo.url != self.repo.url:
                await registry.update_repo(repo.id, url=self.repo.url)
            # The cached index names chart archives by absolute URL: refresh it every start.
            await charts.SyncRepository(
                chart_pb2.SyncRepositoryRequest(id=name), metadata=metadata
            )

    async def stop(self) -> None:
        """Stop the chart repository and kubesim (its state compacted for the next run)."""
        try:
            await self.repo.stop()
        finally:
            await asyncio.to_thread(_stop_kubesim, self.sim, self.state)


def _prepare(data_dir: Path, helm_bin: Path | None) -> tuple[Path, _Settings]:
    if helm_bin is None or not helm_bin.exists():
        raise FailedPrecondition(
            "--dev needs helm to package the sample charts: run `make setup` (it installs "
            "the pinned helm into .tools/) or pass --helm-bin"
        )
    directory = data_dir / "dev"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings = _Settings.load(directory / SETTINGS_FILE)
    settings.kubesim_token = settings.kubesim_token or secrets.token_urlsafe(24)
    return directory, settings


def _start_kubesim(directory: Path, settings: _Settings) -> tuple[KubeSimThread, State]:
    from kubesim.persistence import JOURNAL_SUFFIX, StateError, open_state
    from kubesim.store import Store
    from kubesim.testing import KubeSimThread

    path = directory / STATE_FILE
    store = Store()
    try:
        state = open_state(store, path)
    except StateError as exc:
        # Keep the unreadable files for a human to look at; start from an empty cluster.
        log.warning("kubesim state is unreadable (%s); moved aside as *.unreadable", exc)
        for old in (path, path.with_name(path.name + JOURNAL_SUFFIX)):
            if old.exists():
                old.replace(old.with_name(old.name + ".unreadable"))
        store = Store()
        state = open_state(store, path)
    for port in dict.fromkeys((settings.kubesim_port, 0)):
        sim = KubeSimThread(directory / "kubesim", store=store, token=settings.kubesim_token,
                            port=port)
        try:
            return sim.start(), state
        except OSError as exc:
            sim.close()
            if port == 0:
                state.close()
                raise
            log.info("kubesim port %d is taken (%s); using another one", port, exc)
    raise AssertionError("unreachable")


def _stop_kubesim(sim: KubeSimThread, state: State) -> None:
    try:
        sim.stop()
    finally:
        state.close()
        with contextlib.suppress(Exception):
            sim.close()


async def _start_chart_repo(
    directory: Path, helm_bin: Path, settings: _Settings
) -> ChartRepoServer:
    for port in dict.fromkeys((settings.chart_repo_port, 0)):
        repo = ChartRepoServer(SAMPLE_CHARTS_DIR, helm_bin, out_dir=directory / "charts",
                               port=port)
        try:
            await repo.start()
            return repo
        except OSError as exc:
            if port == 0:
                raise
            log.info("chart repository port %d is taken (%s); using another one", port, exc)
    raise AssertionError("unreachable")
