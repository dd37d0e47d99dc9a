"""Helm's release records, written by the real helm 3 and helm 4 into kubesim, decoded by the
driver without running helm: Secrets and ConfigMaps, gzip and plain, helm 4's omitted times."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from capstan_server.drivers.base import ClusterTarget, ReleaseRef, Status
from capstan_server.drivers.helm import records
from capstan_server.drivers.helm.driver import HelmDriver
from capstan_server.errors import NotFound
from kubesim.testing import KubeSimThread

LABELS = {"capstan.io/release-id": "5d0c6a4e-8d5f-4a43-b7b9-0f1f9c5e1a21",
          "capstan.io/type": "external"}


@pytest.fixture
def cluster(kubesim: KubeSimThread) -> ClusterTarget:
    return ClusterTarget(id="c-records", name="test122", kubeconfig=kubesim.kubeconfig)


@pytest.fixture
async def driver(tmp_path: Path) -> HelmDriver:
    d = HelmDriver(data_dir=tmp_path / "data")
    yield d  # type: ignore[misc]
    await d.close()


# -- pure decoding ------------------------------------------------------------------------------


def release_doc(name: str = "demo", namespace: str = "default", version: int = 1,
                status: str = "deployed", **info: object) -> dict[str, object]:
    return {"name": name, "namespace": namespace, "version": version, "manifest": "",
            "config": {"image": {"tag": "r9"}},
            "chart": {"metadata": {"name": "etcd", "version": "8.11.1", "appVersion": "3.5.8"}},
            "info": {"status": status, "description": "Install complete", **info}}


def test_payload_round_trip_gzip_and_plain() -> None:
    doc = release_doc()
    gz = records.encode_payload(doc)
    assert base64.b64decode(gz)[:3] == b"\x1f\x8b\x08"
    assert records.decode_payload(gz) == doc
    plain = records.encode_payload(doc, compress=False)
    assert json.loads(base64.b64decode(plain)) == doc
    assert records.decode_payload(plain) == doc


def test_secret_data_is_base64_twice() -> None:
    secret = records.record_object(release_doc(), labels=LABELS)
    wire = secret["data"]["release"]
    inner = base64.b64decode(wire)  # Kubernetes' layer
    assert gzip.decompress(base64.b64decode(inner))  # helm's layer
    stored = records.stored_from_object(secret, "secret")
    assert stored.record.config == {"image": {"tag": "r9"}}
    assert stored.record.labels == LABELS  # helm's system labels are not the release's
    configmap = records.record_object(release_doc(), storage="configmap")
    assert records.stored_from_object(configmap, "configmap").record.chart_version == "8.11.1"


def test_times() -> None:
    assert records.parse_time("2026-11-25T09:47:09.658104349Z") == datetime(
        2026, 11, 25, 9, 47, 9, 658104, tzinfo=UTC)
    assert records.parse_time("2026-11-25T17:47:09+08:00") == datetime(
        2026, 11, 25, 9, 47, 9, tzinfo=UTC)
    assert records.parse_time("0001-01-01T00:00:00Z") is None  # Go's zero time
    assert records.parse_time("") is None  # helm 3's zero time
    assert records.parse_time(None) is None  # helm 4 omits zero times
    rec = records.record_from_release(release_doc())  # no first/last_deployed at all
    assert rec.first_deployed is None and rec.last_deployed is None
    assert records.record_from_release({"info": {"status": "weird"}}).status is Status.UNKNOWN


def test_latest_per_release() -> None:
    objs = [records.record_object(release_doc("a", version=v, status=s))
            for v, s in ((1, "superseded"), (2, "deployed"), (3, "failed"))]
    objs.append(records.record_object(release_doc("b", version=1)))
    latest = records.latest_per_release(objs)
    assert sorted((o["metadata"]["labels"]["name"], o["metadata"]["labels"]["version"])
                  for o in latest) == [("a", "3"), ("b", "1")]


def _object(name: str, manifest_bytes: int) -> dict[str, Any]:
    doc = {**release_doc(name), "manifest": "x" * manifest_bytes}
    obj = records.record_object(doc)
    obj["metadata"].update(uid=f"uid-{name}", resourceVersion="7")
    return obj


def test_record_cache_is_bounded_by_bytes_and_keeps_the_recently_used() -> None:
    cache = records.RecordCache(max_entries=100, max_bytes=40_000)
    objs = [_object(f"r{i}", 9_000) for i in range(6)]
    first = cache.decode(objs[0], "secret")
    assert cache.decode(objs[0], "secret") is first  # a hit: the same decoded record
    second = cache.decode(objs[1], "secret")
    for obj in objs[2:4]:
        cache.decode(obj, "secret")
    cache.decode(objs[0], "secret")  # used again: r1 is now the least recently used
    cache.decode(objs[4], "secret")
    assert cache.bytes <= 40_000 and len(cache) == 4
    assert cache.decode(objs[0], "secret") is first
    assert cache.decode(objs[1], "secret") is not second  # r1 was the one let go
    # a record bigger than a quarter of the budget is decoded but never kept
    big = _object("big", 20_000)
    assert cache.decode(big, "secret") is not cache.decode(big, "secret")
    assert cache.bytes <= 40_000


def test_record_cache_is_bounded_by_entries() -> None:
    cache = records.RecordCache(max_entries=3)
    for i in range(5):
        cache.decode(_object(f"e{i}", 10), "secret")
    assert len(cache) == 3
    assert cache.bytes == sum(records.footprint(cache.decode(_object(f"e{i}", 10), "secret")
                                                .record) for i in (2, 3, 4))


# -- records written by the real helm -----------------------------------------------------------


@pytest.mark.parametrize("storage", ["secret", "configmap"])
async def test_real_records(helm_cli: Any, charts: dict[str, Path], storage: str,
                            unique_namespace: str, cluster: ClusterTarget,
                            driver: HelmDriver) -> None:
    ns, name = unique_namespace, "etcd-release"
    labels = ",".join(f"{k}={v}" for k, v in LABELS.items())
    helm_cli("install", name, str(charts["etcd-8.11.1"]), "-n", ns, f"--labels={labels}",
             storage=storage)
    helm_cli("upgrade", name, str(charts["etcd-8.11.2"]), "-n", ns,
             "--set", "image.tag=3.5.8-debian-11-r9", storage=storage)
    ref = ReleaseRef(cluster=cluster, namespace=ns, name=name)

    history = await driver.history(ref)
    expected = json.loads(helm_cli("history", name, "-n", ns, "-o", "json",
                                   storage=storage).stdout)
    assert [(h.revision, h.status.value, f"{h.chart_name}-{h.chart_version}", h.description)
            for h in history] == [
        (e["revision"], e["status"], e["chart"], e["description"]) for e in expected]
    latest = await driver.get(ref)
    assert latest.revision == 2 and latest.status is Status.DEPLOYED
    assert latest.chart_name == "etcd" and latest.chart_version == "8.11.2"
    assert latest.app_version == "3.5.9"
    assert latest.config == json.loads(helm_cli("get", "values", name, "-n", ns, "-o", "json",
                                                storage=storage).stdout)
    assert latest.manifest.strip() == helm_cli("get", "manifest", name, "-n", ns,
                                               storage=storage).stdout.strip()
    assert "etcd" in latest.notes
    assert latest.labels == LABELS  # helm carried the install's labels to revision 2
    assert latest.first_deployed and latest.last_deployed
    assert latest.last_deployed >= latest.first_deployed
    assert (await driver.get(ref, 1)).chart_version == "8.11.1"

    listed = await driver.list(cluster, ns)
    assert [(r.name, r.revision) for r in listed] == [(name, 2)]
    assert await driver.list(cluster, ns, labels={"capstan.io/type": "internal"}) == []
    assert len(await driver.list(cluster, ns, labels={"capstan.io/type": "external"})) == 1
    with pytest.raises(NotFound):
        await driver.get(ref, 7)


async def test_records_helm_4_and_3_write_alike(helm_cli: Any, charts: dict[str, Path],
                                               unique_namespace: str,
                                               kubesim: KubeSimThread) -> None:
    """The raw record: gzip inside, helm's labels outside, helm 4 omitting zero times."""
    helm_cli("install", "raw", str(charts["etcd-8.11.1"]), "-n", unique_namespace)
    secret = kubesim.store.get("secrets", "sh.helm.release.v1.raw.v1", unique_namespace)
    assert secret["type"] == "helm.sh/release.v1"
    assert {"name": "raw", "owner": "helm", "status": "deployed",
            "version": "1"}.items() <= secret["metadata"]["labels"].items()
    payload = base64.b64decode(secret["data"]["release"])
    assert base64.b64decode(payload)[:3] == b"\x1f\x8b\x08"
    doc = records.decode_payload(payload)
    if helm_cli.binary.name == "helm3":
        assert doc["info"]["deleted"] == ""  # helm 3's own time type writes zero times as ""
    else:
        assert "deleted" not in doc["info"]  # helm 4 omits them


async def test_plain_json_record_is_read_by_helm_and_driver(
        helm_cli: Any, unique_namespace: str, kubesim: KubeSimThread,
        cluster: ClusterTarget, driver: HelmDriver) -> None:
    """A record that is not gzipped (helm accepts those) and has no timestamps."""
    doc = release_doc("plain", unique_namespace)
    doc["info"]["last_deployed"] = "2026-01-02T03:04:05Z"  # type: ignore[index]
    kubesim.store.create("secrets", records.record_object(doc, compress=False, labels=LABELS),
                         unique_namespace)
    listed = json.loads(helm_cli("list", "-n", unique_namespace, "-o", "json").stdout)
    assert [(r["name"], r["chart"]) for r in listed] == [("plain", "etcd-8.11.1")]
    rec = await driver.get(ReleaseRef(cluster=cluster, namespace=unique_namespace,
                                      name="plain"))
    assert rec.config == {"image": {"tag": "r9"}} and rec.first_deployed is None
    assert rec.last_deployed == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert rec.labels == LABELS


async def test_list_reads_only_latest_records(unique_namespace: str, kubesim: KubeSimThread,
                                              cluster: ClusterTarget,
                                              driver: HelmDriver) -> None:
    """Superseded revisions are never fetched; a failed or pending latest one is listed."""
    ns = unique_namespace
    for name, statuses in (("ok", ["superseded", "superseded", "deployed"]),
                           ("broken", ["superseded", "deployed", "failed"]),
                           ("busy", ["deployed", "pending-upgrade"])):
        for revision, status in enumerate(statuses, 1):
            kubesim.store.create("secrets", records.record_object(
                release_doc(name, ns, revision, status)), ns)
    # A superseded record with garbage data: listing would fail if it decoded it.
    bad = records.record_object(release_doc("ok", ns, 9, "superseded"))
    bad["metadata"]["name"] = f"sh.helm.release.v1.ok.v0-{uuid.uuid4().hex[:4]}"
    bad["data"]["release"] = base64.b64encode(b"not a record").decode()
    kubesim.store.create("secrets", bad, ns)
    listed = {r.name: (r.revision, r.status.value) for r in await driver.list(cluster, ns)}
    assert listed == {"ok": (3, "deployed"), "broken": (3, "failed"),
                      "busy": (2, "pending-upgrade")}
