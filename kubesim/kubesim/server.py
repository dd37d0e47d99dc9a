"""The kubesim HTTP(S) server: auth, fault injection, discovery, OpenAPI and the resource API.

Every request but the health checks passes `kubesim.authz.Access.admit` (bearer token,
impersonation headers, RBAC; 401/403 Status otherwise); the access reviews of
`kubesim.reviews` are answered right after. The default ClusterRoles and bindings are created
at start (`kubesim.rbac_defaults`).

`KubeSim` owns a `Store` (kept across ``stop()``/``start()``), a `Faults` table and optional TLS
material, and starts the simulated controllers (``kubesim.controllers.start(store)``) with the
server. Admin endpoints (token-protected, never faulted):

- ``GET/POST/DELETE /_kubesim/faults`` list, add (JSON `FaultRule` fields) or clear rules;
  ``DELETE /_kubesim/faults/<id>`` removes one.
- ``GET /_kubesim/snapshot`` returns `Store.snapshot`; ``PUT`` restores one.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import secrets
import socket
from pathlib import Path
from typing import Any

from aiohttp import web

from . import discovery
from .api import ResourceAPI, error_response, json_response, parse_resource_path, request_verb
from .authz import Access
from .errors import ApiError, NotFound
from .faults import Faults
from .identity import UserInfo
from .kubeconfig import build_kubeconfig
from .protobuf_codec import openapi_v2_document
from .rbac_defaults import ensure_defaults
from .reviews import serve_review
from .store import Store
from .tls import TLSMaterial
from .tls import generate as generate_tls

log = logging.getLogger(__name__)

_PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz"})


class KubeSim:
    """One simulated API server. ``await start()`` binds; ``await stop()`` unbinds.

    ``port=0`` picks a free port on the first start; later starts reuse the same port.
    ``anonymous``: let requests without an Authorization header in (default: only over plain
    HTTP, because client-go sends bearer tokens only over TLS); they act as the admin.
    ``user_tokens``: bearer tokens of users that RBAC authorizes (`kubesim.identity`).
    """

    def __init__(
        self,
        store: Store | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        tls: bool | TLSMaterial = False,
        controllers: bool = True,
        faults: Faults | None = None,
        anonymous: bool | None = None,
        user_tokens: dict[str, UserInfo] | None = None,
    ) -> None:
        self.store = store or Store()
        self.host = host
        self.port = port
        self.token = token or secrets.token_urlsafe(24)
        self.faults = faults or Faults()
        if tls is True:
            self.tls: TLSMaterial | None = generate_tls()
        elif isinstance(tls, TLSMaterial):
            self.tls = tls
        else:
            self.tls = None
        self.enable_controllers = controllers
        # client-go (kubectl, helm) never sends credentials over plain HTTP, so by default a
        # request *without* an Authorization header is let in when serving HTTP; a wrong token
        # is always refused, and over HTTPS a missing one too.
        self.anonymous = (self.tls is None) if anonymous is None else anonymous
        self.api = ResourceAPI(self.store)
        self.access = Access(self.store, self.token, user_tokens)
        self._runner: web.AppRunner | None = None
        self._controllers: Any = None
        self._openapi_v2 = openapi_v2_document(version=discovery.GIT_VERSION)

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    def kubeconfig(self) -> str:
        """Kubeconfig YAML text with the token (and the CA when serving TLS)."""
        return build_kubeconfig(self.url, self.token, self.tls.ca_cert if self.tls else None)

    def write_kubeconfig(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.kubeconfig())
        target.chmod(0o600)
        return target

    def make_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._error_middleware, self._auth_middleware, self._fault_middleware],
            client_max_size=64 * 1024 * 1024,
        )
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            return
        access_log = log if log.isEnabledFor(logging.DEBUG) else None
        runner = web.AppRunner(self.make_app(), access_log=access_log, shutdown_timeout=1.0)
        await runner.setup()
        ssl_context = self.tls.server_context() if self.tls else None
        ensure_defaults(self.store)  # the API server's bootstrap-roles post-start hook
        if self.port == 0:
            self.port = _free_port(self.host)
        site = web.TCPSite(runner, self.host, self.port, ssl_context=ssl_context,
                           reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if self.enable_controllers:
            await self._start_controllers()

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await self._stop_controllers()
        self.api.close_watches()
        self.api.finish_namespace_deletions()
        await asyncio.sleep(0)
        await runner.cleanup()

    async def _start_controllers(self) -> None:
        try:
            module = importlib.import_module("kubesim.controllers")
        except ModuleNotFoundError as exc:
            if exc.name not in ("kubesim.controllers",):
                raise
            return
        start = getattr(module, "start", None)
        if start is None:
            return
        result = start(self.store)
        if inspect.isawaitable(result):
            result = await result
        self._controllers = result

    async def _stop_controllers(self) -> None:
        handle, self._controllers = self._controllers, None
        stop = getattr(handle, "stop", None)
        if stop is None:
            return
        try:
            result = stop()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("stopping kubesim controllers failed")

    def restore(self, snapshot: dict[str, Any]) -> None:
        """`Store.restore` a snapshot, then let the running controllers resync to it."""
        self.store.restore(snapshot)
        ensure_defaults(self.store)  # a snapshot from before RBAC has no default roles
        resync = getattr(self._controllers, "resync", None)
        if callable(resync):
            resync()

    # ------------------------------------------------------------------ middlewares

    @web.middleware
    async def _error_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except ApiError as err:
            return error_response(err)
        except web.HTTPException:
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.exception("kubesim: %s %s failed", request.method, request.path)
            return error_response(ApiError(500, "InternalError", f"Internal error: {exc}"))

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path not in _PUBLIC_PATHS:
            user = self.access.admit(request, self.anonymous)
            review = await serve_review(request, user, self.access.authorizer,
                                        self.access.authenticator)
            if review is not None:
                return review
        response: web.StreamResponse = await handler(request)
        return response

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/_kubesim/") and self.faults.rules():
            rr = parse_resource_path(self.store, path)
            verb = (
                request_verb(request.method, bool(rr.name), dict(request.query))
                if rr
                else request.method.lower()
            )
            decision = self.faults.decide(verb, request.method, path)
            if decision.latency:
                await asyncio.sleep(decision.latency)
            rule = decision.rule
            if rule is not None:
                code = rule.status or 500
                message = rule.message or f"kubesim injected fault (rule {rule.id})"
                return error_response(ApiError(code, rule.reason, message))
        response: web.StreamResponse = await handler(request)
        return response

    # ------------------------------------------------------------------ routing

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        rr = parse_resource_path(self.store, path)
        if rr is not None:
            return await self.api.handle(request, rr)
        if path.startswith("/_kubesim/"):
            return await self._admin(request, path)
        if request.method != "GET":
            raise NotFound(None, path, "the server could not find the requested resource")
        registry = self.store.registry
        doc: Any = None
        if path == "/version":
            doc = discovery.version_info()
        elif path in _PUBLIC_PATHS:
            return web.Response(text="ok")
        elif path == "/api":
            doc = discovery.api_versions(f"{self.host}:{self.port}")
        elif path == "/api/v1":
            doc = discovery.api_resource_list(registry, "", "v1")
        elif path == "/apis":
            doc = discovery.api_group_list(registry)
        elif path == "/openapi/v2":
            return web.Response(body=self._openapi_v2, content_type="application/octet-stream")
        elif path == "/openapi/v3":
            doc = {"paths": {}}
        elif path.startswith("/apis/"):
            parts = path.split("/")[2:]
            if len(parts) == 1:
                doc = discovery.api_group(registry, parts[0])
            elif len(parts) == 2:
                doc = discovery.api_resource_list(registry, parts[0], parts[1])
        if doc is None:
            raise NotFound(None, path, "the server could not find the requested resource")
        return json_response(doc)

    async def _admin(self, request: web.Request, path: str) -> web.StreamResponse:
        if path == "/_kubesim/faults":
            if request.method == "GET":
                return json_response({"rules": [r.to_dict() for r in self.faults.rules()]})
            if request.method == "POST":
                spec = await request.json()
                rule = self.faults.add_from_dict(spec)
                return json_response(rule.to_dict(), 201)
            if request.method == "DELETE":
                self.faults.clear()
                return json_response({"rules": []})
        if path.startswith("/_kubesim/faults/") and request.method == "DELETE":
            rule_id = path.rsplit("/", 1)[1]
            if rule_id.isdigit() and self.faults.remove(int(rule_id)):
                return json_response({"removed": int(rule_id)})
        if path == "/_kubesim/snapshot":
            if request.method == "GET":
                return json_response(self.store.dump_json())
            if request.method == "PUT":
                self.restore(json.loads(await request.read()))
                return json_response({"resourceVersion": self.store.resource_version})
        raise NotFound(None, path, "the server could not find the requested resource")


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
