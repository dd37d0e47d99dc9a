"""A small async Kubernetes API client for the helm driver's reads.

Why aiohttp with our own TLS context rather than the `kubernetes` package: that client is
synchronous (urllib3), so concurrent reads would need a thread per request, and it builds a
typed model for every object, which is slow for thousands of release records. Here one
aiohttp session per cluster keeps connections alive, requests run concurrently on the event
loop, and JSON is used as the API server returns it. Kubeconfigs are the self-contained kind
the registry accepts (`capstan_server.kubeconfig.parse_kubeconfig` is applied first): inline
bearer token, client certificate/key data or basic auth; CA data or insecure-skip-tls-verify;
tls-server-name. Nothing in a kubeconfig makes this module run a program or read a file.

Reads only, plus the one write the driver makes itself: rewriting a stuck release record
(`replace`). Unreachable clusters raise `Unavailable`; credentials the cluster refuses raise
`FailedPrecondition`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from capstan_server.drivers.base import KubeIdentity
from capstan_server.errors import (
    Aborted,
    CapstanError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OperationFailed,
    Unavailable,
)
from capstan_server.kubeconfig import parse_kubeconfig
from capstan_server.tls import trusting

Obj = dict[str, Any]

#: Per-request timeout for ordinary reads; watches set their own.
DEFAULT_REQUEST_TIMEOUT = 30.0
#: Concurrent requests per cluster when fetching many objects at once.
DEFAULT_CONCURRENCY = 16


class ResourceExpired(Unavailable):
    """410 Gone: the resourceVersion a watch asked for is too old; the caller must relist."""


@dataclass(frozen=True)
class KubeConfig:
    """The parts of a kubeconfig's current context needed to talk to its API server."""

    server: str
    namespace: str = "default"
    token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_pem: bytes | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None


def _b64(value: Any, what: str) -> bytes:
    try:
        return base64.b64decode("".join(str(value).split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidArgument(f"kubeconfig {what} is not base64") from e


def load_kubeconfig(text: str) -> KubeConfig:
    """Parse a kubeconfig (its current context); InvalidArgument when it cannot be used."""
    info = parse_kubeconfig(text)  # the registry's checks: self-contained, http(s) server
    cluster, user = info.cluster_entry, info.user_entry

    def data(section: Mapping[str, Any], key: str) -> bytes | None:
        return _b64(section[key], key) if section.get(key) else None

    def string(section: Mapping[str, Any], key: str) -> str | None:
        """A string setting; one that would break (or smuggle) an HTTP header is refused."""
        value = section.get(key)
        if not value:
            return None
        if not isinstance(value, str) or not value.isprintable():
            raise InvalidArgument(f"kubeconfig {key} must be a string of printable characters")
        return value

    return KubeConfig(
        server=info.server.rstrip("/"),
        namespace=info.namespace or "default",
        token=string(user, "token"),
        username=string(user, "username"),
        password=string(user, "password"),
        ca_pem=data(cluster, "certificate-authority-data"),
        cert_pem=data(user, "client-certificate-data"),
        key_pem=data(user, "client-key-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=string(cluster, "tls-server-name"),
    )


def _ssl_context(cfg: KubeConfig) -> ssl.SSLContext | bool:
    if not cfg.server.startswith("https://"):
        return False
    if cfg.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        try:
            ctx = trusting(cfg.ca_pem) if cfg.ca_pem else ssl.create_default_context()
        except ValueError as e:
            raise InvalidArgument(f"kubeconfig CA data is not a PEM certificate: {e}") from e
    if cfg.cert_pem and cfg.key_pem:
        # ssl only loads client certificates from files; they live for the blink of a load
        # in 0600 files and are unlinked at once.
        paths: list[str] = []
        try:
            for pem in (cfg.cert_pem, cfg.key_pem):
                fd, path = tempfile.mkstemp(prefix="capstan-kube-", suffix=".pem")
                paths.append(path)
                with os.fdopen(fd, "wb") as f:
                    f.write(pem)
            ctx.load_cert_chain(paths[0], paths[1])
        except ssl.SSLError as e:
            raise InvalidArgument(f"kubeconfig client certificate/key cannot be used: {e}") from e
        finally:
            for path in paths:
                with contextlib.suppress(OSError):
                    os.unlink(path)
    return ctx


@dataclass(frozen=True)
class ResourceInfo:
    """Where a kind is served: its plural resource name and whether it is namespaced."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str = "", name: str = "") -> str:
        base = "/api/v1" if "/" not in self.api_version else f"/apis/{self.api_version}"
        ns = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{base}{ns}/{self.plural}" + (f"/{name}" if name else "")


class KubeClient:
    """Async reads from one cluster's API server (one connection pool per client)."""

    def __init__(self, config: KubeConfig, *, cluster_name: str = "",
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                 concurrency: int = DEFAULT_CONCURRENCY,
                 act_as: KubeIdentity | None = None) -> None:
        self.config = config
        #: Every request impersonates this identity (None: the kubeconfig's own user).
        self.act_as = act_as
        self.cluster_name = cluster_name or config.server
        self.request_timeout = request_timeout
        self._concurrency = concurrency
        self._semaphore = asyncio.Semaphore(concurrency)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._session_lock = asyncio.Lock()
        self._discovery: dict[str, dict[str, ResourceInfo]] = {}
        self._discovered_at: dict[str, float] = {}

    # -- plumbing

    def _credentials(self) -> dict[str, str]:
        cfg = self.config
        if cfg.token:
            return {"Authorization": f"Bearer {cfg.token}"}
        if cfg.username is not None:
            basic = base64.b64encode(f"{cfg.username}:{cfg.password or ''}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {}

    def _impersonation(self) -> list[tuple[str, str]]:
        if self.act_as is None:
            return []
        return [("Impersonate-User", self.act_as.user),
                *(("Impersonate-Group", group) for group in self.act_as.groups)]

    async def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A session (and its locks) belongs to one event loop; tests and tools that run
            # several loops get a fresh one instead of an obscure "attached to a different
            # loop" error. The old session cannot be closed from here; it is dropped.
            self._loop = loop
            self._session = None
            self._session_lock = asyncio.Lock()
            self._semaphore = asyncio.Semaphore(self._concurrency)
        if self._session is None or self._session.closed:
            async with self._session_lock:
                if self._session is None or self._session.closed:
                    # a list: Impersonate-Group repeats, once per group
                    headers = [("Accept", "application/json"),
                               ("User-Agent", "capstan-helm-driver"),
                               *self._credentials().items(), *self._impersonation()]
                    ctx = _ssl_context(self.config)
                    connector = aiohttp.TCPConnector(ssl=ctx, limit=64)
                    self._session = aiohttp.ClientSession(
                        base_url=None, headers=headers, connector=connector,
                        timeout=aiohttp.ClientTimeout(total=None, connect=10))
        return self._session

    def _unreachable(self, e: BaseException) -> Unavailable:
        return Unavailable(f"cluster {self.cluster_name} is unreachable: "
                           f"{type(e).__name__}: {e}".rstrip(": "),
                           details=[{"cluster": self.cluster_name}])

    def _status_error(self, status: int, body: bytes, path: str) -> CapstanError:
        try:
            message = str(json.loads(body).get("message", ""))
        except (ValueError, AttributeError):
            message = body.decode(errors="replace")[:300]
        text = f"cluster {self.cluster_name}: {message or f'HTTP {status}'} ({path})"
        if status == 404:
            return NotFound(text)
        if status == 410:
            return ResourceExpired(text)
        if status == 409:
            return Aborted(text)
        if status in (401, 403):
            return FailedPrecondition(text)
        if status == 429 or status >= 500:
            return Unavailable(text)
        return OperationFailed(text)

    async def request(self, method: str, path: str, *,
                      params: Mapping[str, str] | None = None,
                      body: Any = None, timeout_s: float | None = None) -> Obj:
        """One API call; the decoded JSON answer or the mapped CapstanError."""
        session = await self._get_session()
        url = self.config.server + path
        try:
            async with self._semaphore, session.request(
                    method, url, params=params,
                    data=None if body is None else json.dumps(body),
                    headers={"Content-Type": "application/json"} if body is not None else None,
                    timeout=aiohttp.ClientTimeout(total=timeout_s or self.request_timeout),
                    server_hostname=self.config.tls_server_name,
            ) as resp:
                data = await resp.read()
                if resp.status >= 400:
                    raise self._status_error(resp.status, data, path)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise self._unreachable(e) from e
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise Unavailable(f"cluster {self.cluster_name} answered non-JSON for {path}") from e
        if not isinstance(doc, dict):
            raise Unavailable(f"cluster {self.cluster_name} answered unexpected JSON for {path}")
        return doc

    async def get(self, path: str) -> Obj | None:
        """GET an object; None when it does not exist."""
        try:
            return await self.request("GET", path)
        except NotFound:
            return None

    async def list_pages(self, path: str, *, label_selector: str = "",
                         field_selector: str = "", page_size: int = 0
                         ) -> AsyncIterator[tuple[list[Obj], str]]:
        """A collection page by page (following `continue`), each with the list's
        resourceVersion: every page is of one snapshot, and a caller that decodes as it goes
        never holds more than one page of raw objects."""
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if page_size:
            params["limit"] = str(page_size)
        while True:
            doc = await self.request("GET", path, params=params)
            meta = doc.get("metadata") or {}
            yield list(doc.get("items") or []), str(meta.get("resourceVersion", ""))
            token = meta.get("continue")
            if not token:
                return
            params["continue"] = str(token)

    async def list_objects(self, path: str, *, label_selector: str = "",
                           field_selector: str = "", page_size: int = 0
                           ) -> tuple[list[Obj], str]:
        """All items of a collection and the list's resourceVersion."""
        items: list[Obj] = []
        version = ""
        async for page, page_version in self.list_pages(
                path, label_selector=label_selector, field_selector=field_selector,
                page_size=page_size):
            items.extend(page)
            version = version or page_version
        return items, version

    async def replace(self, path: str, obj: Obj) -> Obj:
        """PUT an object (optimistic concurrency: Aborted on a stale resourceVersion)."""
        return await self.request("PUT", path, body=obj)

    # -- discovery

    async def resource_for(self, api_version: str, kind: str) -> ResourceInfo | None:
        """Where `kind` of `api_version` is served. Discovery is cached per group/version and
        refreshed on a miss (at most every few seconds), so CRDs created later are found."""
        known = self._discovery.get(api_version)
        stale = time.monotonic() - self._discovered_at.get(api_version, 0.0) > 5.0
        if known is None or (kind not in known and stale):
            known = await self._discover(api_version)
        return known.get(kind)

    async def _discover(self, api_version: str) -> dict[str, ResourceInfo]:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            doc = await self.request("GET", path)
        except NotFound:
            doc = {}
        kinds = {}
        for res in doc.get("resources") or []:
            name = str(res.get("name", ""))
            if "/" in name:
                continue  # subresources (status, scale, ...)
            kinds[str(res.get("kind"))] = ResourceInfo(
                api_version, str(res.get("kind")), name, bool(res.get("namespaced")))
        self._discovery[api_version] = kinds
        self._discovered_at[api_version] = time.monotonic()
        return kinds

    async def get_objects(self, refs: Sequence[tuple[str, str, str, str]]
                          ) -> list[tuple[ResourceInfo | None, Obj | None]]:
        """Objects `(api_version, kind, namespace, name)` read concurrently; `(info, None)`
        for those missing from the cluster, `(None, None)` for kinds it does not serve."""

        async def one(ref: tuple[str, str, str, str]) -> tuple[ResourceInfo | None, Obj | None]:
            api_version, kind, namespace, name = ref
            info = await self.resource_for(api_version, kind)
            if info is None:
                return None, None
            return info, await self.get(info.path(namespace, name))

        return list(await asyncio.gather(*(one(r) for r in refs)))

    # -- watch

    async def watch(self, path: str, *, resource_version: str, seconds: float,
                    label_selector: str = "", on_open: Callable[[], None] | None = None
                    ) -> AsyncIterator[tuple[str, Obj]]:
        """(event type, object) pairs of a watch from `resource_version`, until the server
        ends it or `seconds` pass. `on_open` is called once the server has accepted it."""
        session = await self._get_session()
        params = {"watch": "1", "resourceVersion": resource_version,
                  "timeoutSeconds": str(max(1, int(seconds))), "allowWatchBookmarks": "true"}
        if label_selector:
            params["labelSelector"] = label_selector
        try:
            async with session.get(self.config.server + path, params=params,
                                   timeout=aiohttp.ClientTimeout(total=seconds + 5),
                                   server_hostname=self.config.tls_server_name) as resp:
                if resp.status >= 400:
                    raise self._status_error(resp.status, await resp.read(), path)
                if on_open is not None:
                    on_open()
                async for line in resp.content:
                    if not line.strip():
                        continue
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    yield str(event.get("type", "")), event.get("object") or {}
        except (aiohttp.ClientError, OSError) as e:
            raise self._unreachable(e) from e
        except TimeoutError:
            return

    async def close(self) -> None:
        session, self._session = self._session, None
        # A session can only be closed from the loop it was made in.
        if session is not None and self._loop is asyncio.get_running_loop():
            await session.close()
