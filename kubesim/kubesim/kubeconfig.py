"""The kubeconfig that points clients at a kubesim server (bearer token, optional CA)."""

from __future__ import annotations

import base64
from typing import Any

import yaml


def build_kubeconfig(
    url: str,
    token: str,
    ca_pem: bytes | None = None,
    name: str = "kubesim",
    namespace: str = "default",
) -> str:
    cluster: dict[str, Any] = {"server": url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}
        ],
        "current-context": name,
        "preferences": {},
    }
    return str(yaml.safe_dump(config, sort_keys=False))
