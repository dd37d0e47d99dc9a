"""The manifest policy's judgement (services.admission) on rendered manifests: namespaces,
cluster-scoped kinds and their allow-list, denied kinds, hooks and a chart's `crds/`."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from capstan_server.auth.tenancy import Tenancy
from capstan_server.drivers.base import ClusterTarget, ReleaseRecord, Status
from capstan_server.errors import PermissionDenied
from capstan_server.services.admission import admit, chart_crds

#: What a cluster's discovery says (kind -> namespaced), as HelmDriver.namespaced answers.
SCOPES = {"ConfigMap": True, "NetworkPolicy": True, "ClusterRole": False,
          "ClusterRoleBinding": False, "CustomResourceDefinition": False, "Namespace": False}


class Discovery:
    async def namespaced(self, cluster: ClusterTarget, api_version: str, kind: str
                         ) -> bool | None:
        return SCOPES.get(kind)


TENANCY = Tenancy("team-a", None, ("team-a", "team-a-*"),
                  ("ClusterRole.rbac.authorization.k8s.io",), ("NetworkPolicy",))
CLUSTER = ClusterTarget("c1", "one", "apiVersion: v1\n")


def _record(manifest: str, hooks: tuple[str, ...] = ()) -> ReleaseRecord:
    return ReleaseRecord("r", "team-a", 1, Status.PENDING_INSTALL, "c", "1", "", "", {},
                         manifest, "", None, None, {}, hooks)


def _doc(kind: str, name: str, namespace: str = "", api: str = "v1") -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return f"---\napiVersion: {api}\nkind: {kind}\nmetadata:\n  name: {name}{ns}\n"


async def test_allowed_objects_pass() -> None:
    manifest = (_doc("ConfigMap", "a") + _doc("ConfigMap", "b", "team-a-x")
                + _doc("ClusterRole", "r", api="rbac.authorization.k8s.io/v1")
                + _doc("Widget", "w", api="example.com/v1"))  # unknown kind: namespaced
    await admit(Discovery(), CLUSTER, _record(manifest), TENANCY, what="install")  # type: ignore[arg-type]


async def test_each_offence_is_named() -> None:
    manifest = (_doc("ConfigMap", "ok") + _doc("ConfigMap", "planted", "team-b")
                + _doc("ClusterRoleBinding", "crb", api="rbac.authorization.k8s.io/v1")
                + _doc("NetworkPolicy", "np", api="networking.k8s.io/v1"))
    hook = _doc("ConfigMap", "hooked", "kube-system")
    with pytest.raises(PermissionDenied) as err:
        await admit(Discovery(), CLUSTER, _record(manifest, (hook,)), TENANCY,  # type: ignore[arg-type]
                    what="upgrade")
    text = err.value.message
    assert text.startswith("upgrade refused by the manifest policy of project 'team-a'")
    for named in ("ConfigMap team-b/planted", "ClusterRoleBinding crb", "NetworkPolicy np",
                  "ConfigMap kube-system/hooked"):
        assert named in text
    assert "ConfigMap ok" not in text
    assert [d["name"] for d in err.value.details] == ["planted", "crb", "np", "hooked"]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


async def test_crds_of_a_chart_need_the_allow_list(tmp_path: Path) -> None:
    archive = tmp_path / "c-1.0.0.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        inner = io.BytesIO()
        with tarfile.open(fileobj=inner, mode="w:gz") as sub:
            _add(sub, "deep/Chart.yaml", b"name: deep")
            _add(sub, "deep/crds/deep.yaml", b"{}")
        _add(tar, "c/Chart.yaml", b"name: c")
        for name in ("c/crds/widgets.yaml", "c/charts/sub/crds/gadgets.yaml",
                     "c/templates/crds.yaml"):
            _add(tar, name, b"{}")
        _add(tar, "c/charts/deep-1.0.0.tgz", inner.getvalue())
    assert chart_crds(archive) == ["charts/deep-1.0.0.tgz/crds/deep.yaml",
                                   "charts/sub/crds/gadgets.yaml", "crds/widgets.yaml"]
    with pytest.raises(PermissionDenied, match=r"CustomResourceDefinition crds/widgets\.yaml"):
        await admit(Discovery(), CLUSTER, _record(""), TENANCY, chart=archive,  # type: ignore[arg-type]
                    what="install")
    allowed = Tenancy("p", None, ("*",), ("CustomResourceDefinition",), ())
    await admit(Discovery(), CLUSTER, _record(""), allowed, chart=archive,  # type: ignore[arg-type]
                what="install")
