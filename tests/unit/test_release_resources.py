"""`Release.resources` and `manifest` as answers carry them (issue 9 C2-C4, issue 7 redaction):
flat summaries that protobuf carries whatever the object's depth, the whole object as JSON text
on request, every manifest document parsed as helm parses it or reported with its error, and
Secret values never shown."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from capstan.client import to_dict
from capstan.v1 import release_pb2
from capstan_server.drivers.base import LiveObject, ReleaseRecord, Status
from capstan_server.drivers.helm.manifest import parse_manifest
from capstan_server.redaction import redact_manifest, redact_text
from capstan_server.registry import ClusterRow
from capstan_server.services.messages import MANIFEST_MAX, release_message
from capstan_server.values import load_yaml

CLUSTER = ClusterRow(id="c1", name="c", server="https://c", kubeconfig="",
                     created_at=datetime.now(UTC))


def record(manifest: str = "") -> ReleaseRecord:
    return ReleaseRecord(name="r", namespace="ns", revision=1, status=Status.DEPLOYED,
                         chart_name="x", chart_version="1.0.0", app_version="", description="",
                         config={"port": 2379}, manifest=manifest, notes="",
                         first_deployed=None, last_deployed=None, labels={})


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        node = {"properties": {"x": node}}
    return node


def test_an_object_deeper_than_protobuf_allows_travels_and_is_inlined() -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "deep.capstan.io", "uid": "u1",
                        "creationTimestamp": "2026-12-01T10:00:00Z",
                        "managedFields": [{"manager": "helm"}]},
           "spec": nested(80)}
    live = LiveObject("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", crd["metadata"][
        "name"], crd)
    for objects in (False, True):
        message = release_message(record(), CLUSTER, resources=[live], objects=objects)
        # The round trip through the wire format is what failed with Struct past 100 levels.
        again = release_pb2.Release.FromString(message.SerializeToString())
        (item,) = to_dict(again)["resources"]["customresourcedefinition"]
        assert (item["name"], item["uid"], item["created_at"]) == (
            "deep.capstan.io", "u1", "2026-12-01T10:00:00Z")
        assert (item["ready"], item["status"], item["missing"]) == (True, "exists", False)
        if objects:
            assert item["object"]["spec"] == nested(80)
            assert "managedFields" not in item["object"]["metadata"]
        else:
            assert item["object"] is None


def test_manifest_documents_are_parsed_as_helm_parses_them() -> None:
    manifest = """---
# Source: x/templates/crd.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: ops.capstan.io
spec:
  enum:
    - =
    - "!="
  ports: 22:22
---
# Source: x/templates/broken.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: broken
data: {a: [b}
---
# Source: x/templates/ok.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: ok
"""
    assert load_yaml("- =\n- 1:20\n") == [["=", "1:20"]]
    objects = parse_manifest(manifest)
    assert [(o.kind, o.name, bool(o.error)) for o in objects] == [
        ("CustomResourceDefinition", "ops.capstan.io", False), ("ConfigMap", "broken", True),
        ("ConfigMap", "ok", False)]
    assert "document 2" in objects[1].error
    # An object whose document cannot be parsed is reported with its error, never dropped.
    broken = LiveObject("v1", "ConfigMap", "ns", "broken", None, error=objects[1].error)
    message = release_message(record(), CLUSTER, resources=[broken])
    (item,) = to_dict(message)["resources"]["configmap"]
    assert (item["name"], item["missing"], item["status"]) == ("broken", False, "unparsed")
    assert "document 2" in item["error"]


SECRET = "Known-Secret-Value"
SECRET_B64 = base64.b64encode(SECRET.encode()).decode()


def test_secret_values_are_redacted_in_resources_and_manifests() -> None:
    manifest = f"""---
# Source: x/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: s
data:
  password: {SECRET_B64}
stringData:
  plain: {SECRET}
---
# Source: x/templates/list.yaml
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Secret
    metadata: {{name: t}}
    stringData: {{plain: {SECRET}}}
---
# Source: x/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: c
data:
  kept: visible
"""
    shown = redact_manifest(manifest)
    assert SECRET not in shown and SECRET_B64 not in shown
    assert "# Source: x/templates/secret.yaml" in shown
    assert "password: '<redacted: 18 bytes>'" in shown and "kept: visible" in shown
    assert [o.name for o in parse_manifest(shown)] == ["s", "t", "c"]

    live = {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "uid": "u", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": f'{{"data":"{SECRET_B64}"}}'}},
            "data": {"password": SECRET_B64}}
    message = release_message(record(manifest), CLUSTER, details=True, objects=True,
                              resources=[LiveObject("v1", "Secret", "ns", "s", live)])
    text = str(to_dict(message))
    assert SECRET not in text and SECRET_B64 not in text
    (item,) = to_dict(message)["resources"]["secret"]
    assert item["secret_data"] == {"password": len(SECRET)}
    assert to_dict(message)["config"] == {"port": 2379}


def test_a_huge_manifest_is_cut_at_a_document_boundary() -> None:
    doc = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{}\ndata:\n  x: {}\n"
    manifest = "".join(doc.format(i, "y" * 100_000) for i in range(30))
    message = release_message(record(manifest), CLUSTER, details=True)
    assert message.manifest_truncated
    assert len(message.manifest.encode()) <= MANIFEST_MAX
    assert message.manifest.endswith("y\n") and message.manifest.startswith("---\n")
    small = release_message(record(doc.format(0, "z")), CLUSTER, details=True)
    assert (small.manifest_truncated, small.manifest) == (False, doc.format(0, "z"))


def test_notes_lose_every_secret_value_of_the_manifest() -> None:
    encoded = base64.b64encode(b"s3cret-generated").decode()
    manifest = (
        "---\n# Source: c/templates/secret.yaml\napiVersion: v1\nkind: Secret\n"
        f"metadata:\n  name: s\ndata:\n  password: {encoded}\n  flag: dHJ1ZQ==\n"
        "  user: YWRtaW4=\n"
        "stringData:\n  token: plain-token-value\n"
        "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n"
        "  metadata:\n    name: t\n  stringData:\n    key: listed-value\n"
    )
    notes = ("Password: s3cret-generated\nBase64: " + encoded + "\nToken: plain-token-value\n"
             "Listed: listed-value\nTLS is true, user admin\n")

    shown = redact_text(notes, manifest)

    assert shown == ("Password: <redacted>\nBase64: <redacted>\nToken: <redacted>\n"
                     "Listed: <redacted>\nTLS is true, user admin\n")  # too short to blank
    assert redact_text(notes, "apiVersion: v1\nkind: ConfigMap\n") == notes
    assert redact_text("", manifest) == ""
