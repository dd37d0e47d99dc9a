"""The RBAC of docs/tenancy.md applied to a kubesim: namespaces team-a and team-b, and each
project's RoleBinding (team-a `admin`, team-b `edit`) and CRD ClusterRole, as an operator
would create them for the default identities `capstan:project:<project>`."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from kubesim.testing import KubeSimThread

DOC = Path(__file__).resolve().parents[2] / "docs" / "tenancy.md"
NAMESPACES = ("team-a", "team-b", "capstan-system")


def apply_tenancy_doc(sim: KubeSimThread) -> None:
    for ns in NAMESPACES:
        sim.store.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": ns}})
    text = "\n---\n".join(re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S))
    for obj in yaml.safe_load_all(text):
        group = obj["apiVersion"].rpartition("/")[0]
        resource = f"{obj['kind'].lower()}s.{group}"
        sim.store.create(resource, obj, obj["metadata"].get("namespace"))
