"""Reading a kubeconfig a user registers: which API server its current context points at, and
whether it is safe for the server to use.

A kubeconfig can make its reader run programs (`exec`, `auth-provider`) or read local files
(`client-key: /path`, `tokenFile`, `certificate-authority: /path`). Capstan uses kubeconfigs
sent by API callers, so it accepts only self-contained ones: credentials and certificates
inline (`*-data`, `token`, `username`/`password`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from capstan_server.errors import InvalidArgument
from capstan_server.values import load_yaml

#: Keys that make a kubeconfig reader run a program or read a file of the server.
_UNSAFE_USER_KEYS = ("exec", "auth-provider", "client-certificate", "client-key", "tokenFile")
_UNSAFE_CLUSTER_KEYS = ("certificate-authority",)


@dataclass(frozen=True)
class KubeconfigInfo:
    """What Capstan needs to know about a kubeconfig: its current context and API server."""

    context: str
    cluster: str
    server: str
    #: The context's default namespace ("" when unset).
    namespace: str
    #: The current context's `cluster` and `user` bodies (the user's is empty when the
    #: context names none), for readers that dial the cluster (`drivers/helm/kube.py`).
    cluster_entry: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    user_entry: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _named(config: dict[str, Any], section: str, name: str, field: str) -> dict[str, Any]:
    for item in config.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            body = item.get(field)
            if isinstance(body, dict):
                return body
            raise InvalidArgument(f"kubeconfig {section} entry {name!r} has no {field!r} mapping")
    raise InvalidArgument(f"kubeconfig has no {section} entry named {name!r}")


def _is_http_url(url: str) -> bool:
    """An http(s) URL with a host and, if given, a port in range; no blanks or control
    characters."""
    if not url.isprintable() or " " in url:
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # ValueError when out of range
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def parse_kubeconfig(text: str) -> KubeconfigInfo:
    """Check a kubeconfig and return its current context's cluster; InvalidArgument otherwise."""
    if not text.strip():
        raise InvalidArgument("kubeconfig is required")
    documents = load_yaml(text, what="kubeconfig")
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise InvalidArgument("kubeconfig must be one YAML mapping")
    config: dict[str, Any] = documents[0]
    context_name = config.get("current-context")
    if not context_name or not isinstance(context_name, str):
        raise InvalidArgument("kubeconfig has no current-context")
    context = _named(config, "contexts", context_name, "context")
    cluster_name = context.get("cluster")
    if not cluster_name or not isinstance(cluster_name, str):
        raise InvalidArgument(f"kubeconfig context {context_name!r} names no cluster")
    cluster = _named(config, "clusters", cluster_name, "cluster")
    server = cluster.get("server")
    if not isinstance(server, str) or not _is_http_url(server):
        raise InvalidArgument(f"kubeconfig cluster {cluster_name!r} has no http(s) server URL")
    for key in _UNSAFE_CLUSTER_KEYS:
        if cluster.get(key):
            raise InvalidArgument(
                f"kubeconfig cluster {cluster_name!r} refers to a local file ({key}); "
                f"inline it as {key}-data"
            )
    user_name = context.get("user")
    user: dict[str, Any] = {}
    if user_name:
        user = _named(config, "users", str(user_name), "user")
        for key in _UNSAFE_USER_KEYS:
            if user.get(key):
                raise InvalidArgument(
                    f"kubeconfig user {user_name!r} uses {key!r}, which would run a program or "
                    "read a file on the server; use inline credentials (token, client-*-data)"
                )
    namespace = context.get("namespace") or ""
    return KubeconfigInfo(
        context_name, cluster_name, server, str(namespace), cluster_entry=cluster, user_entry=user
    )
