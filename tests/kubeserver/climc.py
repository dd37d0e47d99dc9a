"""A climc-compatible test client, written from `shared/kubeserver-wire.md`'s wire table.

Each method sends exactly the request the unmodified Cloudpods `climc` sends for one `k8s-*`
command (method, path, sorted query keys, booleans as true/false, the wrapped body, climc's
headers) and reads exactly the keys climc reads from the answer, failing the way climc fails
(`key:release: key not found`, ...) when a key is missing. No Capstan code is used.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

#: The headers of every k8s request climc sends (plus X-Auth-Token and, with a body,
#: Content-Length).
HEADERS = {
    "User-Agent": "yunioncloud-go/201708",
    "Accept": "*/*",
    "Accept-Encoding": "*",
    "Content-Type": "application/json",
}
#: climc's list defaults: `details=false&limit=20&offset=0&summary_stats=false`.
LIST_DEFAULTS = {"details": False, "limit": 20, "offset": 0, "summary_stats": False}


class ClimcError(Exception):
    """What climc would print and exit 1 on: an HTTP error or a missing key."""

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Sent:
    """The last request, as sent (for asserting the wire form)."""

    method: str
    path: str
    body: Any


def _query(params: dict[str, Any]) -> str:
    # climc sorts the keys and sends booleans as true/false.
    items = []
    for key in sorted(params):
        value = params[key]
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        items.append((key, str(value)))
    return urllib.parse.urlencode(items)


class Climc:
    """`k8s-*` commands against a k8s endpoint (the catalog's `k8s` URL, ending in `/api`)."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.last: Sent | None = None

    # -- transport (modulebase) --

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                body: Any = None) -> tuple[int, Any]:
        query = _query(params or {})
        url = self.endpoint + path + (f"?{query}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {**HEADERS, "X-Auth-Token": self.token}
        self.last = Sent(method, path + (f"?{query}" if query else ""), body)
        request = urllib.request.Request(url, method=method, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw.strip() else {}
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = raw.decode(errors="replace")
            raise ClimcError(f"HTTP {error.code}: {answer}", error.code, answer) from None

    def _list(self, path: str, plural: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        _, body = self.request("GET", path, {**LIST_DEFAULTS, **params})
        if not isinstance(body, dict):
            raise ClimcError("out of key range")
        if plural not in body:
            raise ClimcError(f"key:{plural}: Get: key not found")
        rows = body[plural]
        if not isinstance(rows, list):
            raise ClimcError(f"key:{plural}: unsupported operation")
        for key in ("total", "limit", "offset"):
            if key in body and not isinstance(body[key], int):
                raise ClimcError(f"{key}: not an integer")
        return rows

    def _submit(self, method: str, path: str, keyword: str, body: Any = None,
                params: dict[str, Any] | None = None, *, want_dict: bool = True) -> Any:
        _, answer = self.request(method, path, params, body)
        if not isinstance(answer, dict) or keyword not in answer:
            raise ClimcError(f"key:{keyword}: key not found")
        value = answer[keyword]
        if want_dict and not isinstance(value, dict):
            raise ClimcError(f"key:{keyword}: unsupported operation")
        return value

    # -- commands --

    def cluster_list(self) -> list[dict[str, Any]]:
        return self._list("/kubeclusters", "kubeclusters", {})

    def namespace_list(self, cluster: str) -> list[dict[str, Any]]:
        rows = self._list("/namespaces", "namespaces", {"cluster": cluster})
        for row in rows:  # cols Name Id Status creationTimestamp Created_At Cluster_ID Cluster
            assert {"name", "id", "status", "creationTimestamp", "created_at", "cluster_id",
                    "cluster"} <= row.keys(), row
        return rows

    def repo_list(self) -> list[dict[str, Any]]:
        rows = self._list("/repos", "repos", {})
        for row in rows:  # cols Name Id Status Url Is_Public Source Type Backend
            assert {"name", "id", "url", "type"} <= row.keys(), row
        return rows

    def repo_create(self, name: str, url: str, type: str = "external") -> dict[str, Any]:
        body = {"repo": {"name": name, "type": type, "url": url}}
        value: dict[str, Any] = self._submit("POST", "/repos", "repo", body)
        return value

    def chart_list(self) -> list[str]:
        """RepoWithName of every row: `repo/chart.name` (climc reads the nested `chart`)."""
        rows = self._list("/charts", "charts", {})
        names = []
        for row in rows:
            chart = row.get("chart")
            if not isinstance(chart, dict) or "name" not in chart:
                raise ClimcError("key:chart: key not found")
            names.append(f"{row['repo']}/{chart['name']}")
        return names

    def chart_show(self, repo: str, chart: str, version: str = "") -> Any:
        params: dict[str, Any] = {"repo": repo}
        if version:
            params["version"] = version
        return self._submit("GET", f"/charts/{chart}", "chart", params=params, want_dict=False)

    def release_create(self, chart: str, *, cluster: str, namespace: str, name: str,
                       version: str = "", values_json: Any = None) -> dict[str, Any]:
        release: dict[str, Any] = {"chart_name": chart, "cluster": cluster,
                                   "namespace": namespace, "release_name": name,
                                   "timeout": 600}
        if version:
            release["version"] = version
        if values_json is not None:
            release["values_json"] = values_json
        value: dict[str, Any] = self._submit("POST", "/releases", "release",
                                             {"release": release})
        return value

    def release_list(self, **filters: Any) -> list[dict[str, Any]]:
        rows = self._list("/releases", "releases", {"all": True, **filters})
        for row in rows:
            # cols ... Namespace Chart Chart_Version Type Repo_Id Repo Cluster_ID Cluster; climc's
            # case-insensitive lookup of `cluster` fails when `clusterID` is there too.
            if "clusterID" in row:
                raise ClimcError("column Cluster: ambiguous key clusterID")
        return rows

    def release_show(self, name: str, **scope: str) -> dict[str, Any]:
        """Only `release.resources`; on a 404 climc retries with the list by `name`."""
        try:
            release = self._submit("GET", f"/releases/{name}", "release", params=scope)
        except ClimcError as exc:
            if exc.status != 404:
                raise
            rows = self._list("/releases", "releases", {"name": name, **scope})
            matches = [row for row in rows if row.get("name") == name]
            if len(matches) != 1:
                raise ClimcError(f"release {name} not found") from None
            release = matches[0]
        if "resources" not in release:
            raise ClimcError("key:resources: key not found")
        resources: dict[str, Any] = release["resources"]
        return resources

    def release_upgrade(self, name: str, *, values_json: Any = None, version: str = "",
                        **extra: Any) -> dict[str, Any]:
        release: dict[str, Any] = {"release_name": name, "timeout": 600, **extra}
        if values_json is not None:
            release["values_json"] = values_json
        if version:
            release["version"] = version
        value: dict[str, Any] = self._submit("POST", f"/releases/{name}/upgrade", "release",
                                             {"release": release})
        return value

    def release_history(self, name: str, **params: Any) -> Any:
        return self._submit("GET", f"/releases/{name}/history", "release", params=params,
                            want_dict=False)

    def release_rollback(self, name: str, revision: int, **extra: Any) -> Any:
        return self._submit("POST", f"/releases/{name}/rollback", "release",
                            {"release": {"revision": revision, **extra}}, want_dict=False)

    def release_delete(self, name: str, **scope: str) -> dict[str, Any]:
        # The scope goes only in the body, never in the query.
        value: dict[str, Any] = self._submit("DELETE", f"/releases/{name}", "release",
                                             {"release": dict(scope)})
        return value


# -- test set-up (not climc) --

#: The values file `$V` of the wire table.
VALUES = {"image": {"tag": "3.5.8-debian-11-r9"}}


def register_cluster(server: Any, name: str, kubeconfig: str, token: str = "") -> dict[str, Any]:
    """Register a cluster through the REST API (climc has no cluster-create in the table)."""
    request = urllib.request.Request(
        server.http_url + "/api/clusters", method="POST",
        data=json.dumps({"name": name, "kubeconfig": kubeconfig}).encode(),
        headers={"Content-Type": "application/json",
                 **({"X-Auth-Token": token} if token else {})},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer.get("kubecluster", answer)


def keystone_login(auth_url: str, user: str, password: str, project: str,
                   region: str = "region0", interface: str = "internalURL") -> tuple[str, str]:
    """climc's first step: `POST $OS_AUTH_URL/auth/tokens` (password, project scope); the token
    (`X-Subject-Token`) and the k8s endpoint of the catalog (`interface` a prefix of
    `OS_ENDPOINT_TYPE`, `region_id` = `OS_REGION_NAME`)."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}}
    request = urllib.request.Request(auth_url.rstrip("/") + "/auth/tokens", method="POST",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        token = response.headers["X-Subject-Token"]
        answer = json.loads(response.read())
    for service in answer["token"]["catalog"]:
        if service["type"] != "k8s":
            continue
        for endpoint in service["endpoints"]:
            if interface.startswith(endpoint["interface"]) and endpoint["region_id"] == region:
                return token, endpoint["url"]
    raise ClimcError("no k8s endpoint in the catalog")
