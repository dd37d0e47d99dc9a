"""Pure functions: patches, server-side apply ownership, selectors, protobuf decoding."""

from __future__ import annotations

import pytest

from kubesim import managed_fields
from kubesim.errors import ApiError, BadRequest
from kubesim.patch import json_merge_patch, json_patch, strategic_merge_patch
from kubesim.protobuf_codec import (
    decode_k8s_protobuf,
    encode_k8s_protobuf,
    fields,
    openapi_v2_document,
)
from kubesim.selectors import LabelSelector, parse_label_selector

POD_SPEC = {
    "containers": [
        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}],
         "env": [{"name": "A", "value": "1"}], "volumeMounts": [{"name": "d", "mountPath": "/d"}]},
        {"name": "side", "image": "busybox"},
    ],
    "volumes": [{"name": "d", "emptyDir": {}}],
}


def test_json_merge_patch() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}
    assert json_merge_patch(target, {"b": {"c": None, "e": 4}, "l": [3]}) == {
        "a": 1, "b": {"d": 3, "e": 4}, "l": [3]
    }
    assert target["b"] == {"c": 2, "d": 3}, "the target is not modified"


def test_json_patch_operations() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(doc, [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "replace", "path": "/b/c", "value": 2},
        {"op": "copy", "from": "/b", "path": "/d"},
        {"op": "move", "from": "/a/0", "path": "/first"},
        {"op": "remove", "path": "/b"},
        {"op": "test", "path": "/d/c", "value": 2},
        {"op": "add", "path": "/x~1y", "value": True},
    ])
    assert out == {"a": [2, 3], "d": {"c": 2}, "first": 1, "x/y": True}
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "test", "path": "/b/c", "value": 9}])
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "remove", "path": "/nope"}])


def test_strategic_merge_patch_merges_lists_by_key() -> None:
    patch = {"containers": [
        {"name": "web", "image": "nginx:2", "env": [{"name": "B", "value": "2"}],
         "ports": [{"containerPort": 443}]},
        {"name": "new", "image": "alpine"},
    ]}
    out = strategic_merge_patch(POD_SPEC, patch)
    web = out["containers"][0]
    assert web["image"] == "nginx:2"
    assert [e["name"] for e in web["env"]] == ["A", "B"]
    assert [p["containerPort"] for p in web["ports"]] == [80, 443]
    assert [c["name"] for c in out["containers"]] == ["web", "side", "new"]
    assert out["volumes"] == POD_SPEC["volumes"]


def test_strategic_merge_patch_directives() -> None:
    out = strategic_merge_patch(POD_SPEC, {
        "containers": [{"name": "side", "$patch": "delete"}],
        "$setElementOrder/containers": [{"name": "web"}],
        "volumes": [{"name": "other", "emptyDir": {}}, {"$patch": "replace"}],
    })
    assert [c["name"] for c in out["containers"]] == ["web"]
    assert out["volumes"] == [{"name": "other", "emptyDir": {}}]
    out = strategic_merge_patch({"spec": {"a": 1, "b": 2}}, {"spec": {"$patch": "replace", "c": 3}})
    assert out == {"spec": {"c": 3}}
    out = strategic_merge_patch({"metadata": {"finalizers": ["a", "b"]}},
                                {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out == {"metadata": {"finalizers": ["b"]}}
    out = strategic_merge_patch({"metadata": {"finalizers": ["a"]}},
                                {"metadata": {"finalizers": ["b"]}})
    assert out["metadata"]["finalizers"] == ["a", "b"]


def test_apply_create_merge_remove_and_conflict() -> None:
    cfg1 = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1", "y": "2"}}
    live = managed_fields.apply(None, cfg1, "helm", "v1", force=False)
    assert live["metadata"]["managedFields"][0]["manager"] == "helm"
    # another writer changes a field helm does not own, plus one it owns
    other = dict(live, data={**live["data"], "z": "3"})
    managed_fields.record_update(live, other, "kubectl-edit", "v1", "")
    # helm re-applies without y: y is removed, z (owned by kubectl-edit) stays
    cfg2 = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"x": "1"}}
    after = managed_fields.apply(other, cfg2, "helm", "v1", force=False)
    assert after["data"] == {"x": "1", "z": "3"}
    # a different applier setting x to another value conflicts unless forced
    cfg3 = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "9"}}
    with pytest.raises(ApiError) as err:
        managed_fields.apply(after, cfg3, "someone", "v1", force=False)
    assert err.value.code == 409 and "helm" in err.value.message
    forced = managed_fields.apply(after, cfg3, "someone", "v1", force=True)
    assert forced["data"]["x"] == "9"
    owners = {e["manager"]: e["fieldsV1"] for e in forced["metadata"]["managedFields"]}
    assert "f:x" not in owners["helm"].get("f:data", {})


def test_apply_merges_containers_by_name() -> None:
    live = managed_fields.apply(None, {"spec": {"template": {"spec": POD_SPEC}}}, "a", "apps/v1",
                                force=False)
    cfg = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:3"}]}}}}
    merged = managed_fields.apply(live, cfg, "b", "apps/v1", force=True)
    containers = merged["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "side"]
    assert containers[0]["image"] == "nginx:3" and containers[0]["env"]


def test_label_selector_parsing() -> None:
    sel = parse_label_selector("name=r1,owner=helm,status in (deployed, failed),!gone,x")
    assert sel.matches({"name": "r1", "owner": "helm", "status": "deployed", "x": ""})
    assert not sel.matches({"name": "r1", "owner": "helm", "status": "deployed"})
    assert not sel.matches({"name": "r10", "owner": "helm", "status": "deployed", "x": "1"})
    assert not parse_label_selector("").requirements
    for bad in ("a in b", "=x", "a=b,,", "a b"):
        with pytest.raises(BadRequest):
            parse_label_selector(bad)
    expr = LabelSelector.from_dict({"matchLabels": {"a": "1"},
                                    "matchExpressions": [{"key": "b", "operator": "DoesNotExist"}]})
    assert expr.matches({"a": "1"}) and not expr.matches({"a": "1", "b": "2"})


def test_protobuf_secret_roundtrip() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sh.helm.release.v1.r.v1", "namespace": "ns",
                     "labels": {"name": "r", "owner": "helm"},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "n",
                                          "uid": "u", "controller": True}],
                     "finalizers": ["f"], "resourceVersion": "12"},
        "data": {"release": "SDRzSQ=="},
        "type": "helm.sh/release.v1",
        "immutable": False,
    }
    assert decode_k8s_protobuf(encode_k8s_protobuf(secret)) == secret
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"a": "b"}, "binaryData": {"bin": "AAE="}}
    assert decode_k8s_protobuf(encode_k8s_protobuf(cm)) == cm


def test_openapi_document_is_a_protobuf_message() -> None:
    parsed = fields(openapi_v2_document())
    assert parsed[0][2] == b"2.0"
    info = fields(parsed[1][2])
    assert info[0][2] == b"Kubernetes"
