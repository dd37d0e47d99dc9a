"""kubeserver's wire forms on the REST gateway: what the Cloudpods `climc` sends and reads.

Two halves, both derived from the same route table (no second API):

- `adapt_request` runs in **both** REST dialects. It accepts kubeserver's request forms beside
  the documented ones: a body wrapped in its keyword (`{"release": {...}}`) is unwrapped;
  kubeserver's field names (`cluster_id`, `namespace_id`, `name`, `repo` + `chart`, `sets`)
  become Capstan's; kubeserver's standard list options (`details`, `summary_stats`, `scope`,
  ...) that the RPC has no field for are dropped (an RPC with such a field, e.g. ListReleases'
  `details`/`all`/`limit`, uses it); and a body sent to a body-less route (climc's DELETE
  carries its scope in the body) is read as query parameters.
- `KubeserverAnswers` runs only under `--rest-dialect kubeserver`. It wraps answers as
  kubeserver does (`{"release": {...}}`, `{"releases": [...], "total": N}`, history as
  `{"release": [...]}`), shapes the rows climc's tables read (release rows carry the
  repository's name as `repo` and no `clusterID`; chart rows are `{"repo", "type", "chart":
  {...}}`), and `kubeserver_errors` gives errors kubeserver's body
  `{"error": {"code", "class", "details"}}`.

The keyword of a route is its collection: the first path segment after `/api/`, singular
(`/api/releases/{id}/history` -> `release`; `/api/kubeclusters` -> `kubecluster`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
import grpc.aio
import yaml
from aiohttp import web
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from capstan.v1 import chart_pb2
from capstan_server.gateway.routes import Route

#: The REST dialects of `--rest-dialect`.
CAPSTAN, KUBESERVER = "capstan", "kubeserver"
DIALECTS = (CAPSTAN, KUBESERVER)

#: kubeserver's standard list options (its `BaseListOptions` and climc's always-sent ones).
#: Accepted on every route; dropped where the RPC has no field of that name.
LIST_OPTIONS = frozenset(
    {
        "admin",
        "all",
        "delete",
        "details",
        "export_keys",
        "field",
        "filter",
        "filter_any",
        "is_emulated",
        "joint_filter",
        "limit",
        "meta",
        "offset",
        "order",
        "order_by",
        "paging_marker",
        "pending_delete",
        "pending_delete_all",
        "project_domain",
        "scope",
        "search",
        "show_emulated",
        "show_fail_reason",
        "summary_stats",
        "system",
        "tenant",
        "user",
    }
)
#: kubeserver's field names -> Capstan's, renamed when the request has the latter only.
FIELD_ALIASES = {"cluster_id": "cluster", "namespace_id": "namespace", "name": "release_name"}

#: gRPC code -> kubeserver's error class (yunion httperrors).
ERROR_CLASSES = {
    "INVALID_ARGUMENT": "InputParameterError",
    "OUT_OF_RANGE": "InputParameterError",
    "UNAUTHENTICATED": "UnauthorizedError",
    "PERMISSION_DENIED": "ForbiddenError",
    "NOT_FOUND": "NotFoundError",
    "ALREADY_EXISTS": "DuplicateNameError",
    "FAILED_PRECONDITION": "NotAcceptableError",
    "ABORTED": "ConflictError",
    "RESOURCE_EXHAUSTED": "TooManyRequestsError",
    "UNIMPLEMENTED": "NotImplementedError",
    "UNAVAILABLE": "ServiceUnavailableError",
    "DEADLINE_EXCEEDED": "TimeoutError",
}


def keyword(route: Route) -> tuple[str, str]:
    """(singular, plural) keyword of the route's collection, e.g. ("release", "releases")."""
    segments = [s for s in route.template.split("/") if s]
    plural = segments[1] if len(segments) > 1 and segments[0] == "api" else segments[0]
    return (plural[:-1] if plural.endswith("s") else plural), plural


# -- requests (both dialects) --------------------------------------------------------------


def adapt_request(
    route: Route, query: Iterable[tuple[str, str]], body: bytes, *, lenient: bool = False
) -> tuple[list[tuple[str, str]], bytes]:
    """kubeserver's request forms turned into the documented ones (see the module docstring).

    `lenient` (the kubeserver dialect) also drops unknown top-level body fields, as kubeserver
    ignores them; the documented dialect keeps refusing them.
    """
    descriptor = route.method.input_type
    fields = descriptor.fields_by_name
    items = []
    for key, value in query:
        key = _alias(key, fields)
        if key in LIST_OPTIONS and key not in fields:
            continue
        items.append((key, value))
    if not body.strip():
        return items, body
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return items, body  # transcode reports it (bad JSON, too deep)
    if not isinstance(data, dict):
        return items, body
    data = _normalize_body(route, descriptor, data, lenient=lenient)
    if route.body:
        return items, json.dumps(data).encode()
    given = {key for key, _ in items} | route.bound_fields
    for key, value in data.items():
        if key in fields and key not in given and isinstance(value, (str, int, float, bool)):
            items.append((key, _text(value)))
    return items, b""


def _alias(key: str, fields: Mapping[str, FieldDescriptor]) -> str:
    target = FIELD_ALIASES.get(key)
    return target if target and key not in fields and target in fields else key


def _normalize_body(
    route: Route, descriptor: Descriptor, data: dict[str, Any], *, lenient: bool
) -> dict[str, Any]:
    fields = descriptor.fields_by_name
    singular, _ = keyword(route)
    if len(data) == 1:
        ((key, inner),) = data.items()
        wrappers = (singular, "release", "repo", "cluster", "kubecluster")
        if key not in fields and key in wrappers and isinstance(inner, dict):
            data = dict(inner)
    data = {_alias(key, fields): value for key, value in data.items()}
    if "chart_name" in fields and "repo" not in fields and "chart" in data:
        # kubeserver's current form: `repo` + `chart` -> `<repo>/<chart>`.
        repo, chart = data.pop("repo", ""), data.pop("chart")
        data.setdefault("chart_name", f"{repo}/{chart}" if repo else chart)
    if "values_json" in fields and "sets" not in fields and "sets" in data:
        sets = data.pop("sets") or {}
        if isinstance(sets, dict):
            values = data.get("values_json") or {}
            for path, raw in sets.items():
                _set_path(values, str(path), raw)
            data["values_json"] = values
    if lenient:
        data = {
            key: value
            for key, value in data.items()
            if key in fields or any(f.json_name == key for f in descriptor.fields)
        }
    return data


def _set_path(values: dict[str, Any], path: str, raw: Any) -> None:
    """One kubeserver `sets` entry (`a.b.c: "1"`) into nested values, typed as YAML reads it."""
    *parents, last = path.split(".")
    target = values
    for name in parents:
        nested = target.get(name)
        if not isinstance(nested, dict):
            nested = target[name] = {}
        target = nested
    if isinstance(raw, str):
        with contextlib.suppress(yaml.YAMLError):
            raw = yaml.safe_load(raw) if raw else ""
    target[last] = raw


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- answers (kubeserver dialect) ---------------------------------------------------------

_Metadata = Sequence[tuple[str, str]]


class KubeserverAnswers:
    """Reshapes the documented answers into kubeserver's for one gateway."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._list_repos = channel.unary_unary(
            "/capstan.v1.ChartService/ListRepositories",
            request_serializer=chart_pb2.ListRepositoriesRequest.SerializeToString,
            response_deserializer=chart_pb2.ListRepositoriesResponse.FromString,
        )

    async def answer(self, route: Route, data: Any, metadata: _Metadata) -> Any:
        """The kubeserver form of `data`, the documented JSON answer of `route`."""
        singular, plural = keyword(route)
        repos = await self._repos(metadata) if singular in ("release", "chart") else {}
        if route.method.name.startswith("List") and isinstance(data, dict):
            rows_field = _rows_field(route.method.output_type)
            rows = [_row(singular, row, repos) for row in data.get(rows_field, [])]
            wrapped: dict[str, Any] = {plural: rows}
            for key, value in data.items():
                if key != rows_field and value not in (0, [], None):
                    wrapped[key] = value
            return wrapped
        if isinstance(data, dict) and set(data) == {singular}:
            data = data[singular]  # e.g. GetChartResponse, DeleteReleaseResponse
        if isinstance(data, dict) and singular == "release":
            data = _release_row(data, repos)
        return {singular: data}

    async def _repos(self, metadata: _Metadata) -> dict[str, tuple[str, str]]:
        """Repository id -> (name, type), for the rows' `repo` and `type`."""
        try:
            answer = await self._list_repos(
                chart_pb2.ListRepositoriesRequest(limit=1000), metadata=tuple(metadata)
            )
        except grpc.aio.AioRpcError:
            return {}
        return {repo.id: (repo.name, repo.type) for repo in answer.repos}


def _rows_field(output: Descriptor) -> str:
    return next(
        f.name for f in output.fields if f.is_repeated and f.message_type is not None
    )


def _row(singular: str, row: dict[str, Any], repos: Mapping[str, tuple[str, str]]) -> Any:
    if singular == "release":
        return _release_row(row, repos)
    if singular == "chart":
        return _chart_row(row, repos)
    if singular == "namespace" and "created_at" in row:
        # climc's namespace table has a creationTimestamp column (Kubernetes' name).
        return {**row, "creationTimestamp": row["created_at"]}
    return row


def _release_row(row: dict[str, Any], repos: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """A release as kubeserver shows it: `repo` (the name) beside `repo_id`, no `clusterID`
    (climc's case-insensitive column lookup of `cluster` would find it first)."""
    row = dict(row)
    row.pop("clusterID", None)
    row.setdefault("creationTimestamp", row.get("created_at"))
    row["repo"] = repos.get(str(row.get("repo_id", "")), ("", ""))[0]
    return row


def _chart_row(row: dict[str, Any], repos: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """A chart list row as kubeserver shows it: `{"repo", "type", "chart": {Chart.yaml}}`."""
    chart = {
        "name": row.get("name", ""),
        "version": row.get("version", ""),
        "appVersion": row.get("app_version", ""),
        "description": row.get("description", ""),
        "icon": row.get("icon", ""),
        "keywords": row.get("keywords", []),
        "deprecated": row.get("deprecated", False),
        "created": row.get("created"),
        "digest": row.get("digest", ""),
    }
    repo_type = repos.get(str(row.get("repo_id", "")), ("", ""))[1]
    return {
        "repo": row.get("repo", ""),
        "repo_id": row.get("repo_id", ""),
        "type": repo_type,
        "chart": chart,
    }


def error_body(http_code: int, status: str, message: str) -> dict[str, Any]:
    """kubeserver's error body, as climc prints it."""
    return {
        "error": {
            "code": http_code,
            "class": ERROR_CLASSES.get(status, "InternalServerError"),
            "details": message,
        }
    }


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def kubeserver_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Rewrite the gateway's error bodies (`{code, status, message}`) into kubeserver's."""
    response = await handler(request)
    if response.status < 400 or not isinstance(response, web.Response):
        return response
    try:
        body = json.loads(response.body or b"")  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return response
    if not isinstance(body, dict) or "status" not in body or "message" not in body:
        return response
    rewritten = web.json_response(
        error_body(response.status, str(body["status"]), str(body["message"])),
        status=response.status,
    )
    for header, value in response.headers.items():
        # Keep what the gateway added (Allow, WWW-Authenticate, Retry-After, X-Request-Id, ...).
        if header.lower() not in ("content-type", "content-length"):
            rewritten.headers[header] = value
    return rewritten
