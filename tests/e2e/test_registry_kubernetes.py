"""`--registry kubernetes`: two `capstan-server` processes share clusters and repositories kept
as Secrets in one kubesim namespace (`registry_kube.py`), on helm 3.

A cluster and a repository registered through A are listed by B within a second with the same
ids; a release created through A is upgraded through B, then through A again, without naming
the chart (its `capstan.io/repo-id` names the same repository on both); `external_id` and
`repo_id` agree on both. A cluster Secret applied by an admin (the documented shape) is seen
by both.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from replica_procs import TOOLS, Replica, replicas, require, within

from capstan_server.dev.chart_repo import ChartRepoServer
from kubesim.testing import running_kubesim

pytestmark = pytest.mark.timeout(180)

HELM3 = TOOLS / "helm3"


def test_two_replicas_share_one_registry(tmp_path: Path, chart_repo: ChartRepoServer) -> None:
    require(HELM3)
    with running_kubesim(tls=True) as sim:
        sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": "capstan"}})
        # One key file for both replicas: credentials are sealed, and each reads the other's.
        key_file = tmp_path / "secret.key"
        key_file.write_text(Fernet.generate_key().decode() + "\n")
        key_file.chmod(0o600)
        extra = ["--registry", "kubernetes", "--registry-namespace", "capstan",
                 "--registry-kubeconfig", str(sim.kubeconfig_path),
                 "--secret-key-file", str(key_file)]
        with replicas(tmp_path, HELM3, ["A", "B"], extra) as (a, b):
            cluster = a.client.create_cluster("sim", sim.kubeconfig)
            # Within a second (the watch normally delivers in milliseconds; measured: ~10 ms).
            started = time.monotonic()
            seen = within(3.0, lambda: next(
                (c for c in b.client.list_clusters().clusters if c.name == "sim"), None))
            assert time.monotonic() - started < 1.0
            assert seen.id == cluster.id
            stored = sim.store.get("secrets", "capstan-cluster-sim", "capstan")
            assert base64.b64decode(stored["data"]["kubeconfig"]).startswith(b"fernet:")
            repo = a.client.create_repository("samples", chart_repo.url)
            seen_repo = within(3.0, lambda: next(
                (r for r in b.client.list_repositories().repos if r.name == "samples"),
                None))
            assert seen_repo.id == repo.id
            assert time.monotonic() - started < 3.0

            a.client.create_release("samples/never-ready", cluster="sim", namespace="default",
                                    release_name="shared", values="neverReady: false\n")
            b.client.upgrade_release("shared", cluster="sim", namespace="default",
                                     values="neverReady: false\nround: 2\n")
            last = a.client.upgrade_release("shared", cluster="sim", namespace="default",
                                            values="neverReady: false\nround: 3\n")
            assert last.version == 3
            on_a = a.client.get_release("shared", cluster="sim", namespace="default")
            on_b = b.client.get_release("shared", cluster="sim", namespace="default")
            assert (on_a.id, on_a.external_id, on_a.repo_id, on_a.cluster_id) == (
                on_b.id, on_b.external_id, on_b.repo_id, on_b.cluster_id)
            assert on_a.repo_id == repo.id

            # Declarative: an admin applies a cluster Secret of the documented shape.
            sim.store.create("secrets", {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "prod", "namespace": "capstan",
                             "labels": {"capstan.io/registry": "cluster"},
                             "annotations": {"capstan.io/id":
                                             "0b4e7a54-3d52-4f37-9a53-3c4c4f1f2b6e"}},
                "data": {k: base64.b64encode(v.encode()).decode()
                         for k, v in {"name": "prod", "kubeconfig": sim.kubeconfig}.items()}})
            for replica in (a, b):
                prod = within(3.0, lambda r=replica: next(  # type: ignore[misc]
                    (c for c in r.client.list_clusters().clusters if c.name == "prod"), None))
                assert prod.id == "0b4e7a54-3d52-4f37-9a53-3c4c4f1f2b6e"
            assert b.client.list_releases(cluster="prod").releases[0].name == "shared"

            a.client.delete_cluster("prod", force=True)
            within(3.0, lambda: None if any(
                c.name == "prod" for c in b.client.list_clusters().clusters) else True)
            # B stops the release cache it kept for prod once its readiness sync sees it gone
            # (A, which deleted it, stopped its own at once).
            assert "prod" not in _ready_caches(b)
            assert "prod" not in _ready_caches(a)


def _ready_caches(replica: Replica) -> dict[str, str]:
    """The release caches a replica's `/readyz` reports, by cluster name."""
    try:
        with urllib.request.urlopen(f"{replica.http_url}/readyz", timeout=10) as answer:
            body = answer.read()
    except urllib.error.HTTPError as not_ready:  # 503: the body says why, just the same
        body = not_ready.read()
    caches: dict[str, str] = json.loads(body)["checks"]["release_caches"]
    return caches
