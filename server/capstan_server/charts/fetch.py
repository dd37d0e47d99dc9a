"""The one way Capstan fetches from chart repositories (indexes and archives alike).

A repository is a stranger's server, so every fetch is bounded and the addresses it may reach
are policed:

- Address policy: loopback, link-local (169.254.0.0/16 with the cloud metadata service,
  fe80::/10), unspecified / "this network" (0.0.0.0/8, ::), multicast and reserved addresses are
  refused unless the URL's host was allowed (`--allow-repo-host`; `--dev` allows loopback).
  Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) are allowed: that is where in-house
  repositories (ChartMuseum, Harbor) live; an operator who must shield private services keeps
  Capstan in a network that cannot reach them. The check applies to the repository URL, every
  redirect and every archive URL of an index, on the *resolved* addresses: names are resolved
  by the connector's resolver, which hands aiohttp only addresses that passed, so the address
  checked is the address connected to (no DNS-rebinding window). Redirects are followed here,
  one by one, never by aiohttp.
- Budgets (`RepoLimits`): a deadline per fetch, an idle timeout, a minimum average rate, a cap
  on the bytes *after* Content-Encoding is undone (inflated in bounded steps), and a number of
  fetches in flight per repository, so one repository cannot take the connection pool.
- Errors name what Capstan asked for and what happened in Capstan's words (HTTP status,
  "connection refused", "too slow"); nothing a foreign server sent (bodies, reason phrases,
  status lines, redirect targets) is ever echoed.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import ipaddress
import os
import socket
import time
import weakref
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from capstan_server.charts.limits import RepoLimits
from capstan_server.errors import CapstanError, Unavailable

__all__ = ["AddressPolicy", "Fetcher", "join_url", "same_origin"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_REDIRECTS = (301, 302, 303, 307, 308)
#: Inflate at most this much per step, so one chunk of a "zip bomb" never means a long stall.
_INFLATE_STEP = 1 << 20
_URL_SHOWN = 200
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
#: One thread inflates for every fetch: what it allocates stays in one malloc arena (a pool
#: of threads would each keep the peak of a bomb in an arena of its own, for good).
_INFLATE_THREAD = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="inflate")


def join_url(base: str, ref: str) -> str:
    """`ref` (a redirect's Location, an index's chart URL) resolved against `base`; a `ref` that
    does not parse is kept as it is, for the fetch to refuse as not a valid URL."""
    try:
        return urljoin(base, ref)
    except ValueError:  # an unclosed "[" of an IPv6 host
        return ref


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


def _shown(url: str) -> str:
    return url if len(url) <= _URL_SHOWN else url[:_URL_SHOWN] + "..."


class AddressRefused(OSError):
    """An address the policy refuses; raised by the resolver, so aiohttp never connects."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host} is {reason}")
        self.host = host
        self.reason = reason


class AddressPolicy:
    """Which addresses a repository fetch may connect to (see the module docstring)."""

    def __init__(self, allowed_hosts: frozenset[str] = frozenset(), *, loopback: bool = False):
        self.allowed_hosts = frozenset(h.lower().strip("[]") for h in allowed_hosts)
        self.loopback = loopback

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why `address` (what `host` resolved to) may not be fetched, or None."""
        host = host.lower().strip("[]")
        if host in self.allowed_hosts or str(address) in self.allowed_hosts:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_loopback:
            return None if self.loopback else "a loopback address"
        if address.is_link_local:
            return "a link-local address (e.g. a cloud metadata service)"
        if address.is_unspecified or (
            isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK
        ):
            return "an unspecified address"
        if address.is_multicast or address.is_reserved:
            return "a multicast or reserved address"
        return None

    def check_literal(self, host: str) -> None:
        """Refuse a URL whose host is an address literal the policy refuses (aiohttp does not
        pass literals through the resolver)."""
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return
        reason = self.refusal(host, address)
        if reason:
            raise AddressRefused(host, reason)


class _PolicyResolver(AbstractResolver):
    """Resolves names, then keeps only the addresses the policy allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed, reasons = [], []
        for result in results:
            reason = self._policy.refusal(host, ipaddress.ip_address(result["host"]))
            (reasons.append(reason) if reason else allowed.append(result))
        if not allowed:
            raise AddressRefused(host, reasons[0] if reasons else "not resolvable")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class _TooSlow(Exception):
    pass


class _TooLarge(Exception):
    pass


class _Inflater:
    """Undo a Content-Encoding with a cap on the inflated bytes (checked at every step, so a
    bomb costs at most the cap)."""

    def __init__(self, encoding: str, limit: int) -> None:
        wbits = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS}.get(
            encoding, zlib.MAX_WBITS
        )
        self._z = zlib.decompressobj(wbits)
        self._left = limit

    def feed(self, data: bytes, sink: Callable[[bytes], None]) -> None:
        """Inflate `data` into `sink` piece by piece. Blocking (zlib lets go of the GIL): run
        it in a worker thread, with the event loop waiting for it (so `sink` is never called
        concurrently)."""
        while data:
            piece = self._z.decompress(data, min(_INFLATE_STEP, self._left + 1))
            self._left -= len(piece)
            if self._left < 0:
                raise _TooLarge
            sink(piece)
            data = self._z.unconsumed_tail


@dataclass(frozen=True)
class _Request:
    """One `Fetcher.fetch` call's arguments (see there)."""

    url: str
    repo_url: str
    auth: tuple[str, str] | None
    what: str
    limit: int
    refused: type[CapstanError]
    sink: Callable[[bytes], None]
    accept_encoding: str


class Fetcher:
    """One HTTP session for every repository fetch, under `RepoLimits`."""

    def __init__(self, limits: RepoLimits) -> None:
        self.limits = limits
        self.policy = AddressPolicy(limits.allowed_hosts, loopback=limits.allow_loopback)
        self._session: aiohttp.ClientSession | None = None
        self._slots: weakref.WeakValueDictionary[str, asyncio.Semaphore] = (
            weakref.WeakValueDictionary()
        )

    def session(self) -> aiohttp.ClientSession:
        """The policed session: every connection it opens (redirects included) is to an
        address the policy allows. `fetch` uses it; so does the OCI client (charts/oci.py),
        which speaks the registry protocol itself."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=_PolicyResolver(self.policy), limit=self.limits.connections_total
            )
            # aiohttp hands address literals past the resolver: check them as each request
            # (and each redirect it follows) starts.
            literals = aiohttp.TraceConfig()
            literals.on_request_start.append(self._check_literal)
            # Bodies arrive byte for byte (digests are checked); `_Inflater` undoes encodings.
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False,
                trace_configs=[literals],
            )
        return self._session

    async def _check_literal(
        self, session: aiohttp.ClientSession, context: object,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        self.policy.check_literal(params.url.host or "")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _slot(self, repo_key: str) -> asyncio.Semaphore:
        slot = self._slots.get(repo_key)
        if slot is None:
            slot = asyncio.Semaphore(self.limits.connections_per_repo)
            self._slots[repo_key] = slot
        return slot

    async def fetch(
        self,
        url: str,
        *,
        repo_key: str,
        repo_url: str,
        auth: tuple[str, str] | None,
        what: str,
        limit: int,
        refused: type[CapstanError],
        sink: Callable[[bytes], None],
        accept_encoding: str = "identity",
    ) -> None:
        """GET `url` and feed its (decoded) body to `sink`, at most `limit` bytes.

        Unreachable, too slow, busy or 5xx -> Unavailable; refused by the address policy,
        401/403, another status or too large -> `refused`. Credentials go only to the origin
        of `repo_url`, as helm sends them.
        """
        limits = self.limits
        slot = self._slot(repo_key)
        started = time.monotonic()
        try:
            async with asyncio.timeout(limits.fetch_timeout_s):
                await slot.acquire()
        except TimeoutError:
            raise Unavailable(
                f"{what} is busy: {limits.connections_per_repo} fetches from it are still in "
                "flight; retry later"
            ) from None
        request = _Request(url, repo_url, auth, what, limit, refused, sink, accept_encoding)
        try:
            remaining = limits.fetch_timeout_s - (time.monotonic() - started)
            async with asyncio.timeout(max(remaining, 0.001)):
                await self._fetch(request)
        except TimeoutError:
            raise Unavailable(
                f"{what} did not answer within {limits.fetch_timeout_s:g} s ({_shown(url)})"
            ) from None
        finally:
            slot.release()

    async def _fetch(self, request: _Request) -> None:
        first = url = request.url
        auth, what, refused = request.auth, request.what, request.refused
        for _ in range(self.limits.max_redirects + 1):
            self._check_url(url, first, what, refused)
            headers = {"Accept-Encoding": request.accept_encoding}
            if auth and same_origin(url, request.repo_url):
                token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
                headers["Authorization"] = f"Basic {token}"
            try:
                async with self.session().get(
                    url,
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=10, sock_read=self.limits.idle_timeout_s
                    ),
                ) as resp:
                    if resp.status in _REDIRECTS and "Location" in resp.headers:
                        url = join_url(url, resp.headers["Location"])
                        continue
                    self._check_status(resp.status, first, what, auth, refused)
                    await self._read(resp, request)
                    return
            except AddressRefused as err:
                raise self._refusal(err, first, url, what, refused) from None
            except aiohttp.ClientConnectorError as err:
                if isinstance(err.os_error, AddressRefused):
                    raise self._refusal(err.os_error, first, url, what, refused) from None
                raise Unavailable(f"{what} cannot be reached at {_shown(first)}: "
                                  f"{_describe(err)}") from None
            except (aiohttp.ClientError, OSError) as err:
                raise Unavailable(f"{what} cannot be reached at {_shown(first)}: "
                                  f"{_describe(err)}") from None
            except _TooSlow:
                raise Unavailable(
                    f"{what} sends too slowly (under {self.limits.min_rate_bytes_s} bytes/s "
                    f"on average) from {_shown(first)}"
                ) from None
        raise refused(f"{what} redirects more than {self.limits.max_redirects} times "
                      f"({_shown(first)})")

    def _check_url(self, url: str, first: str, what: str, refused: type[CapstanError]) -> None:
        redirected = "" if url == first else " (after a redirect)"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:  # an unclosed "[" of an IPv6 host, a port out of range
            port = -1
        if port == -1 or parts.scheme not in ("http", "https") or not parts.hostname:
            raise refused(f"{what}: {_shown(first)}{redirected} is not a valid http(s) URL")
        try:
            self.policy.check_literal(parts.hostname)
        except AddressRefused as err:
            raise self._refusal(err, first, url, what, refused) from None

    def _refusal(
        self, err: AddressRefused, first: str, url: str, what: str, refused: type[CapstanError]
    ) -> CapstanError:
        redirected = "" if url == first else " redirects to a host that"
        host = urlsplit(first).hostname or ""
        return refused(
            f"{what}: {_shown(first)}{redirected} resolves to {err.reason}, which Capstan does "
            f"not fetch from (an operator can allow a host with --allow-repo-host)",
            details=[{"url": _shown(first), "reason": err.reason,
                      "host": host if url == first else ""}],
        )

    @staticmethod
    def _check_status(
        status: int, url: str, what: str, auth: tuple[str, str] | None,
        refused: type[CapstanError],
    ) -> None:
        if status in (401, 403):
            reason = "refused the credentials" if auth else "needs credentials"
            raise refused(f"{what} {reason} (HTTP {status} from {_shown(url)})")
        if status >= 500:
            raise Unavailable(f"{what} is unavailable (HTTP {status} from {_shown(url)})")
        if status != 200:
            raise refused(f"{what} was not found (HTTP {status} from {_shown(url)})")

    async def _read(self, resp: aiohttp.ClientResponse, request: _Request) -> None:
        limits = self.limits
        url, what, limit, refused = request.url, request.what, request.limit, request.refused
        sink = request.sink
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise refused(f"{what} uses an unsupported Content-Encoding ({_shown(url)})")
        inflater = None if encoding in ("", "identity") else _Inflater(encoding, limit)

        def too_large() -> CapstanError:
            # Made when raised: an exception kept in a local would hold this frame (and, through
            # `sink`, the whole body) in a reference cycle until the garbage collector runs.
            return refused(f"{what} is larger than {limit} bytes ({_shown(url)})")

        started = time.monotonic()
        wire = 0
        while True:
            chunk = await resp.content.readany()
            if not chunk:
                break
            wire += len(chunk)
            elapsed = time.monotonic() - started
            if elapsed > limits.rate_grace_s and wire < limits.min_rate_bytes_s * elapsed:
                raise _TooSlow
            if wire > limit:
                raise too_large()
            if inflater is None:
                sink(chunk)
                continue
            try:
                # Off the event loop: one chunk of a bomb inflates to 1000 times its size.
                await asyncio.get_running_loop().run_in_executor(
                    _INFLATE_THREAD, inflater.feed, chunk, sink
                )
            except zlib.error:
                raise refused(f"{what} sent a corrupt {encoding} body ({_shown(url)})") from None
            except _TooLarge:
                raise too_large() from None


def _describe(err: BaseException) -> str:
    """What went wrong, in Capstan's words: never the text of the foreign server's answer."""
    if isinstance(err, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "the TLS handshake failed (certificate not trusted?)"
    if isinstance(err, aiohttp.ClientConnectorDNSError):
        return "the host name does not resolve"
    if isinstance(err, aiohttp.ClientConnectorError):
        number = err.os_error.errno if err.os_error else None
        return f"cannot connect ({os.strerror(number).lower()})" if number else "cannot connect"
    if isinstance(err, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(err, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return "the server did not answer as an HTTP server should"
    if isinstance(err, aiohttp.ServerTimeoutError | TimeoutError):
        return "the server stopped sending"
    return f"connection failed ({type(err).__name__})"

