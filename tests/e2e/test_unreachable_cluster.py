"""An unreachable cluster on the helm driver, end to end: two kubesims (over TLS) registered in
one Capstan server on helm 3, one release in each. With one kubesim stopped, ListReleases lists
the other's release and the stopped one's from the release cache's last state, naming the
stopped cluster with how stale that is (the CLI warns on stderr); a release addressed by name
alone is UNAVAILABLE naming it, and the cluster cannot be deleted; once it is started again
(same port, same objects) the list is live again. Stopped again, it can be deleted with
`force`; its release stays in it, and registering it again shows it, same id.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from capstan.cli.main import run as capstan_cli
from capstan.client import CapstanClient, Unavailable
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle
from kubesim.testing import running_kubesim

pytestmark = pytest.mark.timeout(120)

HELM3 = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "helm3"


def test_a_stopped_cluster_is_named_and_the_others_are_listed(
    capstan_server_factory: Callable[..., ServerHandle], chart_repo: ChartRepoServer
) -> None:
    if not os.access(HELM3, os.X_OK):
        pytest.skip(f"{HELM3} is not installed; run `make setup`")
    server = capstan_server_factory(driver="helm", helm_bin=HELM3)
    with (
        running_kubesim(tls=True) as near_sim,
        running_kubesim(tls=True) as far_sim,
        CapstanClient(server.grpc_target, timeout=60, retries=0) as client,
    ):
        client.create_cluster("near", near_sim.kubeconfig)
        far = client.create_cluster("far", far_sim.kubeconfig)
        client.create_repository("samples", chart_repo.url)
        for cluster in ("near", "far"):
            client.create_release("samples/etcd", cluster=cluster, namespace="default",
                                  release_name=f"etcd-{cluster}", version="8.11.1")
        assert sorted(r.name for r in client.list_releases().releases) == ["etcd-far", "etcd-near"]

        far_sim.stop()

        page = client.list_releases()
        assert (sorted(r.name for r in page.releases), page.total) == (
            ["etcd-far", "etcd-near"], 2)
        (down,) = page.unreachable_clusters
        assert (down.name, down.id) == ("far", far.id)
        assert down.message.startswith("cluster far is unreachable: ")
        assert down.stale_seconds > 0 and down.HasField("last_synced")

        out, err = io.StringIO(), io.StringIO()
        assert capstan_cli(["--endpoint", server.grpc_target, "k8s-release-list"],
                           stdout=out, stderr=err, env={}) == 0
        assert sorted(line.split()[0] for line in out.getvalue().splitlines()[:3]) == [
            "NAME", "etcd-far", "etcd-near"]
        (warning,) = err.getvalue().splitlines()
        assert warning.startswith("Warning: releases of cluster far are listed as they were ")

        with pytest.raises(Unavailable, match="cluster 'far' could not be reached") as caught:
            client.get_release("etcd-near")
        assert "--cluster near" in str(caught.value)
        assert client.get_release("etcd-near", cluster="near").name == "etcd-near"
        only_far = client.list_releases(cluster="far")
        assert [r.name for r in only_far.releases] == ["etcd-far"]
        assert [d.name for d in only_far.unreachable_clusters] == ["far"]
        with pytest.raises(Unavailable, match="cannot be deleted while it is unreachable"):
            client.delete_cluster("far")

        far_sim.start()

        deadline = time.monotonic() + 30
        while (page := client.list_releases()).unreachable_clusters:
            assert time.monotonic() < deadline, "the cluster stayed stale after it came back"
            time.sleep(0.1)
        assert sorted(r.name for r in page.releases) == ["etcd-far", "etcd-near"]
        assert page.total == 2
        assert client.get_release("etcd-far").cluster == "far"

        etcd_far = client.get_release("etcd-far")
        far_sim.stop()
        assert client.delete_cluster("far", force=True).cluster.id == far.id
        page = client.list_releases()
        assert ([r.name for r in page.releases], list(page.unreachable_clusters)) == (
            ["etcd-near"], []
        )

        far_sim.start()
        again = client.create_cluster("far", far_sim.kubeconfig)
        found = client.get_release("etcd-far")
        assert (found.id, found.cluster_id, found.version) == (etcd_far.id, again.id, 1)
