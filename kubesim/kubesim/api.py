"""The REST handlers for resource paths (``/api/v1/...``, ``/apis/<group>/<version>/...``).

`parse_resource_path` maps a URL path to a `ResourceRequest`; `ResourceAPI.handle` serves it:
get, list (selectors, pagination), watch (streamed JSON events), create, update, patch (merge,
JSON, strategic, server-side apply), delete and deletecollection, with ``dryRun``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from . import conversion, managed_fields
from .bindings import BINDINGS, bind
from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    Gone,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
)
from .errors import status_success as _status_success
from .objects import Obj, clone
from .patch import json_merge_patch, json_patch, strategic_merge_patch
from .protobuf_codec import ProtobufError, decode_k8s_protobuf
from .resources import ResourceType
from .selectors import LabelSelector, parse_field_selector, parse_label_selector
from .store import Event, Store, StoredObject
from .tables import is_table_request, to_table

JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", APPLY_PATCH)
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DEFAULT_WATCH_TIMEOUT = 1800.0
_BOOKMARK_EVERY = 30.0
_STREAM_ABOVE = 4 * 1024 * 1024
_STREAM_CHUNK = 1024 * 1024
#: Seconds a deleted namespace stays Terminating before it and its contents go away.
NAMESPACE_FINALIZE_DELAY = 0.3


@dataclass(frozen=True)
class ResourceRequest:
    """A resource path, parsed: which resource, namespace, object name and subresource."""

    rt: ResourceType
    namespace: str | None
    name: str
    subresource: str


_PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))/(?P<rest>.+)$")


def parse_resource_path(store: Store, path: str) -> ResourceRequest | None:
    """The resource a URL path addresses, or None if it is not a known resource path."""
    m = _PATH.match(path)
    if not m:
        return None
    group = m.group("group") or ""
    version = m.group("core") or m.group("version")
    parts = [p for p in m.group("rest").split("/") if p]
    namespace: str | None = None
    if len(parts) >= 3 and parts[0] == "namespaces" and not group:
        # /api/v1/namespaces/<ns>/<resource>... unless <resource> is a namespace subresource
        if not (len(parts) == 3 and parts[2] in ("status", "finalize")):
            namespace, parts = parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "namespaces":
        namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3:
        return None
    rt = store.registry.lookup(group, version, parts[0])
    if rt is None:
        return None
    if namespace is not None and not rt.namespaced:
        return None
    name = parts[1] if len(parts) > 1 else ""
    sub = parts[2] if len(parts) > 2 else ""
    if sub == "finalize" and rt.kind == "Namespace":
        sub = ""
    if sub and sub not in rt.subresources:
        return None
    return ResourceRequest(rt, namespace, name, sub)


def request_verb(method: str, has_name: bool, query: dict[str, str]) -> str:
    """The Kubernetes verb of a resource request (what RBAC and fault rules talk about)."""
    if method == "GET":
        if query.get("watch") in ("1", "true", "True"):
            return "watch"
        return "get" if has_name else "list"
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if has_name else "deletecollection",
    }.get(method, method.lower())


def json_response(body: Any, status: int = 200) -> web.Response:
    data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return web.Response(body=data, status=status, content_type=JSON)


def error_response(err: ApiError) -> web.Response:
    return json_response(err.status(), err.code)


def _served(rt: ResourceType, obj: Obj) -> Obj:
    """The object as served in ``rt``'s version (custom resources and HPAs have several)."""
    return conversion.served(rt, obj)


def _stored_json(rt: ResourceType, stored: StoredObject) -> bytes:
    if stored.obj.get("apiVersion") == rt.api_version:
        return stored.json()
    return json.dumps(_served(rt, stored.obj), separators=(",", ":")).encode()


def _int_param(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRequest(f"invalid {name} {text!r}: must be an integer") from None


def _flag(query: Any, name: str) -> bool:
    return str(query.get(name, "")).lower() in ("1", "true")


def _dry_run(query: Any) -> bool:
    return "All" in query.getall("dryRun", [])


def field_manager(request: web.Request) -> str:
    """``?fieldManager=`` or, as Kubernetes does, the user agent's program name."""
    name = request.query.get("fieldManager")
    if name:
        return name
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/", 1)[0].split(" ", 1)[0] or "unknown"


async def read_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    ctype = request.content_type
    if ctype == PROTOBUF:
        try:
            return decode_k8s_protobuf(raw)
        except ProtobufError as exc:
            raise ApiError(415, "UnsupportedMediaType",
                           f"unable to decode protobuf body: {exc}") from exc
    try:
        if ctype in _YAML_TYPES:
            return yaml.load(raw, Loader=_SAFE_LOADER)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise BadRequest(f"unable to decode request body: {exc}") from exc


class ResourceAPI:
    """Serves resource requests against a `Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._watch_queues: set[asyncio.Queue[Event | None]] = set()
        self._terminating: dict[str, asyncio.TimerHandle] = {}

    def close_watches(self) -> None:
        """End every open watch stream (server shutdown)."""
        for queue in list(self._watch_queues):
            queue.put_nowait(None)

    def finish_namespace_deletions(self) -> None:
        """Complete the namespace deletions still pending (server shutdown)."""
        for name, handle in list(self._terminating.items()):
            handle.cancel()
            self._finalize_namespace(name)

    def _terminate_namespace(self, name: str) -> Obj:
        # Like the API server: the namespace goes Terminating at once and disappears, with its
        # contents, shortly after -- so `kubectl delete -f` can still delete what it holds.
        obj = self.store.terminate_namespace(name)
        if name not in self._terminating:
            loop = asyncio.get_running_loop()
            self._terminating[name] = loop.call_later(
                NAMESPACE_FINALIZE_DELAY, self._finalize_namespace, name
            )
        return obj

    def _finalize_namespace(self, name: str) -> None:
        self._terminating.pop(name, None)
        with contextlib.suppress(NotFound):
            self.store.delete("namespaces", name)

    async def handle(self, request: web.Request, rr: ResourceRequest) -> web.StreamResponse:
        method = request.method
        verb = request_verb(method, bool(rr.name), dict(request.query))
        if rr.subresource == "scale":
            return await self._scale(request, rr)
        if verb in ("list", "watch", "create", "deletecollection") and rr.subresource:
            raise MethodNotAllowed()
        if verb not in rr.rt.verbs and not rr.subresource:
            raise MethodNotAllowed()
        if rr.rt.namespaced and rr.namespace is None and verb not in ("list", "watch"):
            raise NotFound(rr.rt, rr.name or rr.rt.plural)
        handler = {
            "get": self._get,
            "list": self._list,
            "watch": self._watch,
            "create": self._create,
            "update": self._update,
            "patch": self._patch,
            "delete": self._delete,
            "deletecollection": self._delete_collection,
        }.get(verb)
        if handler is None:
            raise MethodNotAllowed()
        return await handler(request, rr)

    # ------------------------------------------------------------------ reads

    async def _get(self, request: web.Request, rr: ResourceRequest) -> web.StreamResponse:
        stored = self.store.get_stored(rr.rt, rr.name, rr.namespace)
        if is_table_request(request.headers.get("Accept", "")):
            obj = _served(rr.rt, stored.obj)
            return json_response(to_table([obj], rr.rt.kind, str(stored.rv)))
        return json_response(_stored_json(rr.rt, stored))

    async def _list(self, request: web.Request, rr: ResourceRequest) -> web.StreamResponse:
        q = request.query
        labels = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"))
        items, rv = self.store.list_stored(rr.rt, rr.namespace, labels, fields)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        token = q.get("continue")
        if token:
            rv_then, after = decode_continue(token)
            meta["resourceVersion"] = str(rv_then)
            items = [s for s in items if _sort_key(s) > after]
        limit = _int_param("limit", q.get("limit") or "0")
        if limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            meta["continue"] = encode_continue(int(meta["resourceVersion"]), _sort_key(items[-1]))
            meta["remainingItemCount"] = remaining
        if is_table_request(request.headers.get("Accept", "")):
            table = to_table([_served(rr.rt, s.obj) for s in items], rr.rt.kind,
                             meta["resourceVersion"])
            table["metadata"] = meta
            return json_response(table)
        head = json.dumps(
            {"kind": rr.rt.list_kind, "apiVersion": rr.rt.api_version, "metadata": meta},
            separators=(",", ":"),
        ).encode()
        parts = [head[:-1] + b',"items":[']
        for index, stored in enumerate(items):
            data = _stored_json(rr.rt, stored)
            parts.append(b"," + data if index else data)
        parts.append(b"]}")
        total = sum(len(p) for p in parts)
        if total < _STREAM_ABOVE:
            return json_response(b"".join(parts))
        return await _stream_parts(request, parts, total)

    async def _watch(self, request: web.Request, rr: ResourceRequest) -> web.StreamResponse:
        q = request.query
        labels = parse_label_selector(q.get("labelSelector"))
        field_text = q.get("fieldSelector") or ""
        if rr.name:
            field_text = ",".join(filter(None, [field_text, f"metadata.name={rr.name}"]))
        fields = parse_field_selector(field_text)
        timeout = float(_int_param("timeoutSeconds", q.get("timeoutSeconds") or "0")
                        or _DEFAULT_WATCH_TIMEOUT)
        initial_events = _flag(q, "sendInitialEvents")
        bookmarks = _flag(q, "allowWatchBookmarks")
        as_table = is_table_request(request.headers.get("Accept", ""))
        rv_text = q.get("resourceVersion") or ""
        since = None
        if rv_text not in ("", "0") and not initial_events:
            since = _int_param("resourceVersion", rv_text)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event | None] = asyncio.Queue()

        def on_event(event: Event) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        try:
            initial, cancel = self.store.watch(rr.rt, rr.namespace, on_event, since)
        except Gone as gone:
            # as the API server does: a 200 stream carrying one ERROR event (410 Expired)
            await response.prepare(request)
            error = {"type": "ERROR", "object": gone.status()}
            await response.write(json.dumps(error, separators=(",", ":")).encode() + b"\n")
            await response.write_eof()
            return response
        self._watch_queues.add(queue)
        try:
            await response.prepare(request)
            last_rv = since or 0
            chunks = []
            for event in initial:
                chunk = self._event_chunk(rr.rt, event, labels, fields, as_table)
                if chunk:
                    chunks.append(chunk)
                last_rv = max(last_rv, event.resource_version)
            if initial_events:
                last_rv = max(last_rv, self.store.resource_version)
                chunks.append(self._bookmark(rr.rt, last_rv, initial_end=True))
            if chunks:
                await response.write(b"".join(chunks))
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), min(remaining, _BOOKMARK_EVERY))
                except TimeoutError:
                    if bookmarks and remaining > _BOOKMARK_EVERY:
                        await response.write(self._bookmark(rr.rt, self.store.resource_version))
                    continue
                if item is None:
                    break
                chunk = self._event_chunk(rr.rt, item, labels, fields, as_table)
                if chunk:
                    await response.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            cancel()
            self._watch_queues.discard(queue)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    @staticmethod
    def _bookmark(rt: ResourceType, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        return json.dumps({"type": "BOOKMARK", "object": obj}, separators=(",", ":")).encode() + (
            b"\n"
        )

    @staticmethod
    def _event_chunk(
        rt: ResourceType, event: Event, labels: LabelSelector, fields: Any, as_table: bool
    ) -> bytes:
        def matches(obj: Obj | None) -> bool:
            if obj is None:
                return False
            m = obj.get("metadata") or {}
            return labels.matches(m.get("labels")) and fields.matches(obj)

        etype = event.type
        if labels or fields:
            now = matches(event.object)
            if etype == "MODIFIED":
                before = matches(event.old_object)
                if now and not before:
                    etype = "ADDED"
                elif before and not now:
                    etype = "DELETED"
                elif not now:
                    return b""
            elif etype == "DELETED":
                if not matches(event.old_object) and not now:
                    return b""
            elif not now:
                return b""
        if as_table:
            table = to_table([_served(rt, event.object)], rt.kind, str(event.resource_version))
            obj_json = json.dumps(table, separators=(",", ":")).encode()
        else:
            obj_json = _stored_json(rt, event.stored)
        return b'{"type":"' + etype.encode() + b'","object":' + obj_json + b"}\n"

    # ------------------------------------------------------------------ writes

    def _check_type(self, rt: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise BadRequest("the request body must be an object")
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        if api_version and api_version != rt.api_version and not (
            rt.crd_name and str(api_version).startswith(rt.group + "/")
        ):
            raise BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
            )
        if kind and kind != rt.kind:
            raise BadRequest(f"the kind in the data ({kind}) does not match the expected kind "
                             f"({rt.kind})")
        return body

    async def _create(self, request: web.Request, rr: ResourceRequest) -> web.StreamResponse:
        body = self._check_type(rr.rt, await read_body(request))
        if rr.rt.key == BINDINGS:
            bind(self.store, body, rr.namespace)
            return json_response(_status_success(), 201)
        body = conversion.to_storage(rr.rt, body)
        obj = self.store.create(
            rr.rt,
            body,
            rr.namespace,
            dry_run=_dry_run(request.query),
            field_manager=field_manager(request),
            clear_status=True,
            copy=False,
        )
        return json_response(_served(rr.rt, obj), 201)

    async def _update(self, request: web.Request, rr: ResourceRequest) -> web.StreamResponse:
        body = self._check_type(rr.rt, await read_body(request))
        m = body.setdefault("metadata", {})
        if not isinstance(m, dict):
            raise BadRequest("metadata must be an object")
        if m.get("name") and m["name"] != rr.name:
            raise BadRequest(
                f"the name of the object ({m['name']}) does not match the name on the URL "
                f"({rr.name})"
            )
        m["name"] = rr.name
        if conversion.converts(rr.rt):
            current = self.store.try_get(rr.rt, rr.name, rr.namespace)
            body = conversion.to_storage(rr.rt, body, current)
        obj = self.store.update(
            rr.rt,
            body,
            rr.namespace,
            subresource=rr.subresource,
            dry_run=_dry_run(request.query),
            field_manager=field_manager(request),
            copy=False,
        )
        return json_response(_served(rr.rt, obj))

    async def _patch(self, request: web.Request, rr: ResourceRequest) -> web.StreamResponse:
        ctype = request.content_type
        body = await read_body(request)
        dry_run = _dry_run(request.query)
        rt = rr.rt
        if ctype == APPLY_PATCH:
            return self._apply(request, rr, body, dry_run)
        if ctype == MERGE_PATCH:
            def apply_patch(cur: Obj) -> Any:
                return json_merge_patch(cur, body)
        elif ctype == JSON_PATCH:
            def apply_patch(cur: Obj) -> Any:
                return json_patch(cur, body)
        elif ctype == STRATEGIC_PATCH:
            def apply_patch(cur: Obj) -> Any:
                return strategic_merge_patch(cur, body)
        else:
            raise UnsupportedMediaType(ctype)

        def mutate(current: Obj) -> Obj:
            current_rv = current["metadata"].get("resourceVersion")
            patched = apply_patch(_served(rt, current))  # a patch is in the served version
            if not isinstance(patched, dict):
                raise BadRequest("the patch produced a non-object")
            patched = conversion.to_storage(rt, patched, current)
            pm = patched.get("metadata")
            if not isinstance(pm, dict):
                pm = patched["metadata"] = {}
            wanted_rv = pm.get("resourceVersion")
            if wanted_rv and wanted_rv != current_rv:
                raise Conflict(rt, rr.name)
            if pm.get("name", rr.name) != rr.name:
                raise BadRequest("metadata.name cannot be changed by a patch")
            pm["name"] = rr.name
            pm["resourceVersion"] = current_rv
            return patched

        obj = self.store.modify(
            rt,
            rr.name,
            mutate,
            rr.namespace,
            status=rr.subresource == "status",
            dry_run=dry_run,
            field_manager=field_manager(request),
            copy=False,
        )
        return json_response(_served(rt, obj))

    def _apply(
        self, request: web.Request, rr: ResourceRequest, body: Any, dry_run: bool
    ) -> web.StreamResponse:
        rt = rr.rt
        config = self._check_type(rt, body)
        manager = request.query.get("fieldManager")
        if not manager:
            raise BadRequest("PATCH requests with apply content type must have a fieldManager")
        force = _flag(request.query, "force")
        m = config.setdefault("metadata", {})
        if m.get("name", rr.name) != rr.name:
            raise BadRequest(
                f"the name of the object ({m['name']}) does not match the name on the URL "
                f"({rr.name})"
            )
        m["name"] = rr.name
        if rt.namespaced and rr.namespace:
            if m.get("namespace", rr.namespace) != rr.namespace:
                raise BadRequest(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            m["namespace"] = rr.namespace
        config["apiVersion"] = rt.api_version
        config["kind"] = rt.kind
        wanted_rv = m.pop("resourceVersion", None)

        def build(live: Obj | None) -> Obj:
            if live is not None and wanted_rv and wanted_rv != live["metadata"].get(
                "resourceVersion"
            ):
                raise Conflict(rt, rr.name)
            desired = conversion.to_storage(rt, clone(config), live)
            return managed_fields.apply(live, desired, manager, rt.api_version, force)

        obj, created = self.store.upsert(rt, rr.name, build, rr.namespace, dry_run=dry_run,
                                         copy=False)
        return json_response(_served(rt, obj), 201 if created else 200)

    async def _delete(self, request: web.Request, rr: ResourceRequest) -> web.StreamResponse:
        options = await self._delete_options(request)
        rt = rr.rt
        dry_run = options.get("dryRun") == ["All"] or _dry_run(request.query)
        if rt.kind == "Namespace" and not dry_run:
            return json_response(self._terminate_namespace(rr.name))
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        obj = self.store.delete(
            rt,
            rr.name,
            rr.namespace,
            propagation_policy=policy,
            preconditions=options.get("preconditions"),
            dry_run=dry_run,
            copy=False,
        )
        still_there = self.store.try_get(rt, rr.name, rr.namespace) is not None
        if still_there and not dry_run:
            return json_response(_served(rt, obj), 202)
        if rt.kind == "Namespace" or rt.crd_name:
            final = clone(obj)
            if rt.kind == "Namespace":
                final.setdefault("status", {})["phase"] = "Terminating"
            return json_response(_served(rt, final))
        details = {"name": rr.name, "kind": rt.plural, "uid": obj["metadata"].get("uid")}
        if rt.group:
            details["group"] = rt.group
        return json_response(_status_success(details))

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        try:
            body = await read_body(request)
        except ApiError:
            body = None
        if isinstance(body, dict):
            options.update(body)
        q = request.query
        if q.get("propagationPolicy"):
            options["propagationPolicy"] = q["propagationPolicy"]
        if q.get("orphanDependents"):
            options["orphanDependents"] = _flag(q, "orphanDependents")
        return options

    async def _delete_collection(
        self, request: web.Request, rr: ResourceRequest
    ) -> web.StreamResponse:
        options = await self._delete_options(request)
        q = request.query
        deleted = self.store.delete_collection(
            rr.rt,
            rr.namespace,
            q.get("labelSelector"),
            q.get("fieldSelector"),
            propagation_policy=options.get("propagationPolicy"),
            dry_run=options.get("dryRun") == ["All"] or _dry_run(q),
        )
        return json_response(
            {
                "kind": rr.rt.list_kind,
                "apiVersion": rr.rt.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": [_served(rr.rt, o) for o in deleted],
            }
        )

    # ------------------------------------------------------------------ scale subresource

    async def _scale(self, request: web.Request, rr: ResourceRequest) -> web.StreamResponse:
        rt = rr.rt
        if request.method == "GET":
            return json_response(_scale_of(self.store.get(rt, rr.name, rr.namespace)))
        if request.method not in ("PUT", "PATCH"):
            raise MethodNotAllowed()
        body = await read_body(request)
        current = _scale_of(self.store.get(rt, rr.name, rr.namespace))
        if request.method == "PUT":
            scale = body
        elif request.content_type == JSON_PATCH:
            scale = json_patch(current, body)
        else:
            scale = json_merge_patch(current, body)
        replicas = int(((scale or {}).get("spec") or {}).get("replicas", 0))

        def set_replicas(obj: Obj) -> None:
            obj.setdefault("spec", {})["replicas"] = replicas

        obj = self.store.modify(rt, rr.name, set_replicas, rr.namespace,
                                dry_run=_dry_run(request.query))
        return json_response(_scale_of(obj))


def encode_continue(rv: int, after: str) -> str:
    raw = json.dumps({"rv": rv, "after": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return int(data["rv"]), str(data["after"])
    except Exception as exc:
        raise BadRequest(f"invalid continue token: {exc}") from exc


async def _stream_parts(
    request: web.Request, parts: list[bytes], total: int
) -> web.StreamResponse:
    """Send a large body in ~1 MiB writes: one huge write makes asyncio's send buffer crawl."""
    response = web.StreamResponse(headers={"Content-Type": JSON})
    response.content_length = total
    await response.prepare(request)
    batch: list[bytes] = []
    size = 0
    for part in parts:
        batch.append(part)
        size += len(part)
        if size >= _STREAM_CHUNK:
            await response.write(b"".join(batch))
            batch, size = [], 0
    if batch:
        await response.write(b"".join(batch))
    await response.write_eof()
    return response


def _sort_key(stored: StoredObject) -> str:
    m = stored.obj["metadata"]
    return f"{m.get('namespace', '')}\x00{m['name']}"


def _scale_of(obj: Obj) -> Obj:
    m = obj["metadata"]
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp") if k in m},
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas", 0))},
        "status": {
            "replicas": int((obj.get("status") or {}).get("replicas", 0)),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }
