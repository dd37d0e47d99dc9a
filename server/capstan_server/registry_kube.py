"""The `kubernetes` registry backend: clusters and repositories as labelled Secrets in one
namespace of the cluster Capstan runs in (`--registry kubernetes --registry-namespace NS`), so
that every replica shares them (as Argo CD keeps its clusters and repositories).

Each replica lists the Secrets once, then watches them and answers every read from what it
has seen (a change through any replica, or `kubectl apply` by an admin, is seen within the
watch's latency, well under a second). A write goes to the API first (name uniqueness comes
from the Secret's name, so two replicas cannot register one name twice) and is applied to the
local view at once (read-your-writes).

The shape of a cluster (an admin may apply it to register a cluster declaratively):

    apiVersion: v1
    kind: Secret
    metadata:
      name: capstan-cluster-<name>            # any name works; this is what Capstan creates
      namespace: <registry namespace>
      labels: {capstan.io/registry: cluster}
      annotations: {capstan.io/id: <uuid>}     # optional: without it the id is derived
    type: Opaque
    stringData:
      name: <cluster name>
      kubeconfig: <self-contained kubeconfig YAML>
      server: <API server URL>                # optional: read from the kubeconfig
      createdAt: <RFC 3339>                   # optional: the Secret's creationTimestamp

A repository: label `capstan.io/registry: repository`, Secret `capstan-repo-<name>`, keys
`name`, `url`, `type` (`external` default, or `internal`), `username`, `password`, optional
`createdAt`, `syncedAt`, and `oci` (JSON `{"plain_http": bool, "ca_pem": str, "charts":
[...]}`) for `oci://` URLs.

Ids: `capstan.io/id` when present, else uuid5 of the Secret's uid, which every replica reads
the same. Kubeconfigs and passwords go through a `Sealer` (the sqlite backend's encryption at
rest, `secret_box.SecretBox`, when every replica is given the same `--secret-key-file`;
`PlainText` otherwise), and are read back plain too, so an admin's declarative Secret may hold
them unencrypted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from capstan_server.charts.oci import OciOptions
from capstan_server.drivers.helm.kube import KubeClient, load_kubeconfig
from capstan_server.errors import (
    Aborted,
    AlreadyExists,
    CapstanError,
    InvalidArgument,
    NotFound,
)
from capstan_server.kubeconfig import parse_kubeconfig
from capstan_server.registry import REPO_TYPES, ClusterRow, RepoRow, RepoType

log = logging.getLogger("capstan.registry")

KIND_LABEL = "capstan.io/registry"
ID_ANNOTATION = "capstan.io/id"
SELECTOR = f"{KIND_LABEL} in (cluster,repository)"
_ID_NAMESPACE = uuid.UUID("6f1c1f7e-5b8e-4e4a-9c3a-2b1d0c0e7a11")
IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

Obj = dict[str, Any]
_R = TypeVar("_R")


def in_cluster_kubeconfig(directory: Path = IN_CLUSTER_DIR) -> str:
    """A kubeconfig for the pod's own service account (the in-cluster config)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    try:
        token = (directory / "token").read_text().strip()
        ca = base64.b64encode((directory / "ca.crt").read_bytes()).decode()
    except OSError as e:
        raise InvalidArgument(f"no in-cluster config ({e}); pass --registry-kubeconfig") from e
    if not host:
        raise InvalidArgument("no in-cluster config (KUBERNETES_SERVICE_HOST is not set); "
                              "pass --registry-kubeconfig")
    server = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "in-cluster",
        "clusters": [{"name": "in-cluster",
                      "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "sa"}}]})


def _decoded(obj: Obj, box: Sealer) -> dict[str, str]:
    out = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    for key in _SEALED_KEYS:
        if out.get(key):
            out[key] = box.open(out[key])
    return out


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return None


def _id_of(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    given = (meta.get("annotations") or {}).get(ID_ANNOTATION)
    return str(given) if given else str(uuid.uuid5(_ID_NAMESPACE, str(meta.get("uid", ""))))


class Sealer(Protocol):
    """Encryption at rest of kubeconfigs and passwords inside the Secrets (the sqlite
    backend's `SecretBox`); `open` must accept plain values too (declarative Secrets)."""

    def seal(self, plain: str) -> str: ...
    def open(self, stored: str) -> str: ...


class PlainText:
    """No encryption beyond the cluster's own encryption of Secrets at rest."""

    def seal(self, plain: str) -> str:
        return plain

    def open(self, stored: str) -> str:
        return stored


_SEALED_KEYS = ("kubeconfig", "password")


def _cluster_of(obj: Obj, box: Sealer) -> ClusterRow | None:
    data = _decoded(obj, box)
    meta = obj.get("metadata") or {}
    if not data.get("name") or not data.get("kubeconfig"):
        return None
    server = data.get("server", "")
    if not server:
        with contextlib.suppress(CapstanError):
            server = parse_kubeconfig(data["kubeconfig"]).server
    created = _time(data.get("createdAt")) or _time(meta.get("creationTimestamp"))
    return ClusterRow(_id_of(obj), data["name"], server, created or datetime.now(UTC),
                      data["kubeconfig"])


def _repo_of(obj: Obj, box: Sealer) -> tuple[RepoRow, OciOptions] | None:
    data = _decoded(obj, box)
    meta = obj.get("metadata") or {}
    if not data.get("name") or not data.get("url"):
        return None
    kind = data.get("type") or "external"
    repo_type: RepoType = "internal" if kind == "internal" else "external"
    created = _time(data.get("createdAt")) or _time(meta.get("creationTimestamp"))
    oci = OciOptions()
    if data.get("oci"):
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            doc = json.loads(data["oci"])
            oci = OciOptions(bool(doc.get("plain_http")), str(doc.get("ca_pem", "")),
                             tuple(str(c) for c in doc.get("charts") or ()))
    row = RepoRow(_id_of(obj), data["name"], data["url"], repo_type, data.get("username", ""),
                  created or datetime.now(UTC), _time(data.get("syncedAt")),
                  data.get("password", ""))
    return row, oci


def _version(obj: Obj) -> int:
    # resourceVersions are opaque to clients, but etcd's (and kubesim's) are integers.
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _read(parse: Callable[[Obj, Sealer], _R | None], obj: Obj, box: Sealer) -> _R | None:
    """One registry object, or None (logged) when it cannot be read: a Secret that is not
    base64, or sealed with a key this replica does not have, must not hide the others."""
    try:
        return parse(obj, box)
    except Exception as e:
        name = (obj.get("metadata") or {}).get("name")
        log.warning("registry Secret %s skipped: %s", name, e)
        return None


def _encode(values: Mapping[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


class KubeRegistry:
    """The registry in Kubernetes Secrets (see the module docstring); same methods as
    `registry.Registry`. Open with `await KubeRegistry.open(kubeconfig, namespace)`."""

    def __init__(self, client: KubeClient, namespace: str, box: Sealer | None = None) -> None:
        self.namespace = namespace
        self._box: Sealer = box or PlainText()
        self._client = client
        self._objects: dict[str, Obj] = {}  # by Secret name
        #: `_clusters()` and `_repos()` as of the current `_objects`: every read of the
        #: registry (each ListReleases lists the clusters) would otherwise decode, decrypt and
        #: parse every Secret again. Dropped by every change of `_objects` (`_touched`).
        self._rows: tuple[list[tuple[str, ClusterRow]], list[tuple[str, RepoRow, OciOptions]]
                          ] | None = None
        self._version = ""
        self._watcher: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    @classmethod
    async def open(cls, kubeconfig: str, namespace: str,
                   box: Sealer | None = None) -> KubeRegistry:
        client = KubeClient(load_kubeconfig(kubeconfig), cluster_name="registry")
        registry = cls(client, namespace, box)
        try:
            await registry._relist()
        except BaseException:
            await client.close()
            raise
        registry._watcher = asyncio.create_task(registry._watch(), name="capstan-registry")
        return registry

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._client.close()

    # -- the shared view --------------------------------------------------------------------------

    def _path(self, name: str = "") -> str:
        base = f"/api/v1/namespaces/{self.namespace}/secrets"
        return f"{base}/{name}" if name else base

    async def _relist(self) -> None:
        items, version = await self._client.list_objects(self._path(), label_selector=SELECTOR)
        self._objects = {str((o.get("metadata") or {}).get("name")): o for o in items}
        self._version = version
        self._touched()

    def _touched(self) -> None:
        """`_objects` changed: the rows read from them are read again."""
        self._rows = None

    def _apply(self, event: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        if event == "DELETED":
            self._objects.pop(name, None)
            self._touched()
        elif event in ("ADDED", "MODIFIED"):
            old = self._objects.get(name)
            # An event older than what a write already applied must not undo it.
            if _version(obj) >= _version(old or {}):
                self._objects[name] = obj
                self._touched()
        self._version = str(meta.get("resourceVersion") or self._version)

    async def _watch(self) -> None:
        while True:
            try:
                async for event, obj in self._client.watch(
                        self._path(), resource_version=self._version, seconds=60,
                        label_selector=SELECTOR):
                    if event == "ERROR":  # e.g. 410 Gone: start again from a fresh list
                        await self._relist()
                        break
                    if event != "BOOKMARK":
                        self._apply(event, obj)
                    else:
                        self._version = str((obj.get("metadata") or {}).get(
                            "resourceVersion") or self._version)
            except Exception as e:
                log.warning("registry watch failed: %s; listing again", e)
                await asyncio.sleep(1.0)
                with contextlib.suppress(CapstanError):
                    await self._relist()

    def _clusters(self) -> list[tuple[str, ClusterRow]]:
        return self._read_rows()[0]

    def _repos(self) -> list[tuple[str, RepoRow, OciOptions]]:
        return self._read_rows()[1]

    def _read_rows(self) -> tuple[list[tuple[str, ClusterRow]],
                                  list[tuple[str, RepoRow, OciOptions]]]:
        if self._rows is not None:
            return self._rows
        clusters, repos = [], []
        for name, obj in self._objects.items():
            kind = ((obj.get("metadata") or {}).get("labels") or {}).get(KIND_LABEL)
            if kind == "cluster":
                row = _read(_cluster_of, obj, self._box)
                if row is not None:
                    clusters.append((name, row))
            elif kind == "repository":
                found = _read(_repo_of, obj, self._box)
                if found is not None:
                    repos.append((name, *found))
        self._rows = (sorted(clusters, key=lambda p: p[1].name),
                      sorted(repos, key=lambda p: p[1].name))
        return self._rows

    def _sealed(self, values: Mapping[str, str]) -> dict[str, str]:
        return {k: self._box.seal(v) if k in _SEALED_KEYS and v else v
                for k, v in values.items()}

    async def _create(self, secret_name: str, kind: str, object_id: str,
                      data: Mapping[str, str], what: str) -> Obj:
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": secret_name, "namespace": self.namespace,
                             "labels": {KIND_LABEL: kind},
                             "annotations": {ID_ANNOTATION: object_id}},
                "data": _encode(self._sealed(data))}
        try:
            obj = await self._client.request("POST", self._path(), body=body)
        except CapstanError as e:
            if isinstance(e, Aborted):  # 409: the Secret exists
                raise AlreadyExists(f"{what} is already registered") from None
            raise
        self._apply("ADDED", obj)
        return obj

    async def _change(self, secret_name: str, changes: Mapping[str, str]) -> None:
        if not changes:
            return
        for attempt in range(3):  # a concurrent change of the same Secret: read it again
            current = await self._client.get(self._path(secret_name))
            if current is None:
                raise NotFound(f"{secret_name} was deleted")
            body = {**current, "data": {**(current.get("data") or {}),
                                        **_encode(self._sealed(changes))}}
            try:
                obj = await self._client.replace(self._path(secret_name), body)
            except Aborted:
                if attempt == 2:
                    raise
                continue
            self._apply("MODIFIED", obj)
            return

    async def _delete(self, secret_name: str) -> None:
        with contextlib.suppress(NotFound):
            await self._client.request("DELETE", self._path(secret_name))
        self._objects.pop(secret_name, None)
        self._touched()

    # -- clusters ---------------------------------------------------------------------------------

    def _taken(self, kind: str, name: str) -> bool:
        rows = self._clusters() if kind == "cluster" else self._repos()
        return any(p[1].name == name for p in rows)

    async def add_cluster(self, name: str, kubeconfig: str, server: str, *,
                          cluster_id: str = "") -> ClusterRow:
        if self._taken("cluster", name):
            raise AlreadyExists(f"cluster {name!r} is already registered")
        obj = await self._create(
            f"capstan-cluster-{name}", "cluster", cluster_id or str(uuid.uuid4()),
            {"name": name, "kubeconfig": kubeconfig, "server": server,
             "createdAt": datetime.now(UTC).isoformat()}, f"cluster {name!r}")
        row = _cluster_of(obj, self._box)
        assert row is not None
        return row

    def _find_cluster(self, id_or_name: str) -> tuple[str, ClusterRow] | None:
        rows = self._clusters()
        return (next((p for p in rows if p[1].id == id_or_name), None)
                or next((p for p in rows if p[1].name == id_or_name), None))

    async def find_cluster(self, id_or_name: str) -> ClusterRow | None:
        found = self._find_cluster(id_or_name)
        return found[1] if found else None

    async def get_cluster(self, id_or_name: str) -> ClusterRow:
        if not id_or_name:
            raise InvalidArgument("cluster is required")
        row = await self.find_cluster(id_or_name)
        if row is None:
            raise NotFound(f"cluster {id_or_name!r} is not registered",
                           details=[{"resource": "cluster", "name": id_or_name}])
        return row

    async def list_clusters(self, limit: int = -1, offset: int = 0
                            ) -> tuple[list[ClusterRow], int]:
        rows = [p[1] for p in self._clusters()]
        end = None if limit < 0 else offset + limit
        return rows[offset:end], len(rows)

    async def update_cluster(self, cluster_id: str, *, kubeconfig: str | None = None,
                             server: str | None = None) -> ClusterRow:
        found = self._find_cluster(cluster_id)
        if found is None:
            raise NotFound(f"cluster {cluster_id!r} is not registered")
        await self._change(found[0], {k: v for k, v in (("kubeconfig", kubeconfig),
                                                         ("server", server)) if v is not None})
        return await self.get_cluster(cluster_id)

    async def delete_cluster(self, cluster_id: str) -> None:
        found = self._find_cluster(cluster_id)
        if found is not None:
            await self._delete(found[0])

    # -- repositories -----------------------------------------------------------------------------

    async def add_repo(self, name: str, url: str, type: RepoType = "external",
                       username: str = "", password: str = "") -> RepoRow:
        if type not in REPO_TYPES:
            raise InvalidArgument(f"repository type must be 'internal' or 'external', not {type!r}")
        if self._taken("repository", name):
            raise AlreadyExists(f"repository {name!r} is already registered")
        obj = await self._create(
            f"capstan-repo-{name}", "repository", str(uuid.uuid4()),
            {"name": name, "url": url, "type": type, "username": username, "password": password,
             "createdAt": datetime.now(UTC).isoformat()}, f"repository {name!r}")
        found = _repo_of(obj, self._box)
        assert found is not None
        return found[0]

    def _find_repo(self, id_or_name: str) -> tuple[str, RepoRow, OciOptions] | None:
        rows = self._repos()
        return (next((p for p in rows if p[1].id == id_or_name), None)
                or next((p for p in rows if p[1].name == id_or_name), None))

    async def find_repo(self, id_or_name: str) -> RepoRow | None:
        found = self._find_repo(id_or_name)
        return found[1] if found else None

    async def get_repo(self, id_or_name: str) -> RepoRow:
        if not id_or_name:
            raise InvalidArgument("repository is required")
        row = await self.find_repo(id_or_name)
        if row is None:
            raise NotFound(f"repository {id_or_name!r} is not registered",
                           details=[{"resource": "repository", "name": id_or_name}])
        return row

    async def list_repos(self, limit: int = -1, offset: int = 0, type: str = ""
                         ) -> tuple[list[RepoRow], int]:
        rows = [p[1] for p in self._repos() if not type or p[1].type == type]
        end = None if limit < 0 else offset + limit
        return rows[offset:end], len(rows)

    def _repo_secret(self, repo_id: str) -> str:
        found = self._find_repo(repo_id)
        if found is None:
            raise NotFound(f"repository {repo_id!r} is not registered")
        return found[0]

    async def update_repo(self, repo_id: str, *, url: str | None = None,
                          username: str | None = None, password: str | None = None) -> RepoRow:
        await self._change(self._repo_secret(repo_id), {
            k: v for k, v in (("url", url), ("username", username), ("password", password))
            if v is not None})
        return await self.get_repo(repo_id)

    async def mark_repo_synced(self, repo_id: str, when: datetime | None = None) -> RepoRow:
        await self._change(self._repo_secret(repo_id),
                           {"syncedAt": (when or datetime.now(UTC)).isoformat()})
        return await self.get_repo(repo_id)

    async def set_oci_options(self, repo_id: str, options: OciOptions) -> None:
        await self._change(self._repo_secret(repo_id), {"oci": json.dumps({
            "plain_http": options.plain_http, "ca_pem": options.ca_pem,
            "charts": list(options.charts)})})

    async def oci_options(self, repo_id: str) -> OciOptions:
        found = self._find_repo(repo_id)
        return found[2] if found else OciOptions()

    async def delete_repo(self, repo_id: str) -> None:
        found = self._find_repo(repo_id)
        if found is not None:
            await self._delete(found[0])


__all__ = ["KubeRegistry", "in_cluster_kubeconfig"]
