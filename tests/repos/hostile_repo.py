"""A chart repository written by an attacker, for the tests of issue 15: an HTTP server on
127.0.0.1 (its own thread and loop) whose every path is scripted by the test, plus builders for
the hostile material it serves (index.yaml, chart archives crafted byte by byte, bombs, drips).

    with HostileRepo() as repo:
        repo.index({"evil": [entry("evil", "1.0.0", digest=..., urls=[...])]})
        repo.archive("evil-1.0.0.tgz", tgz({"evil/Chart.yaml": CHART}))
        repo.route("/slow.tgz", drip(b"x" * 100, per_second=1))

`repo.requests` lists the paths asked for (to prove that something was *not* fetched).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import socket
import tarfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Self

import yaml
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CHART_YAML = b"apiVersion: v2\nname: evil\nversion: 1.0.0\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(name: str, version: str, *, digest: str = "", urls: list[str] | None = None,
          **extra: Any) -> dict[str, Any]:
    """One index entry as `helm repo index` writes it."""
    found = {"apiVersion": "v2", "name": name, "version": version,
             "urls": urls if urls is not None else [f"{name}-{version}.tgz"], **extra}
    if digest:
        found["digest"] = digest
    return found


def index_yaml(entries: dict[str, list[dict[str, Any]]]) -> bytes:
    return yaml.safe_dump({"apiVersion": "v1", "entries": entries}).encode()


def tgz(members: dict[str, bytes], *, fmt: int = tarfile.GNU_FORMAT) -> bytes:
    """A well-formed chart archive of `members` (path -> content)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def tar_header(name: bytes, size: int, kind: bytes = b"0") -> bytes:
    """One raw 512-byte ustar header, checksum right, for archives tarfile would not write."""
    header = bytearray(512)
    header[0 : len(name[:100])] = name[:100]
    header[100:108] = b"0000644\x00"
    header[108:116] = b"0000000\x00"
    header[116:124] = b"0000000\x00"
    header[124:136] = f"{size:011o}\x00".encode() if size < 8**11 else _base256(size)
    header[136:148] = b"00000000000\x00"
    header[156:157] = kind
    header[257:265] = b"ustar\x0000"
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\x00 ".encode()
    return bytes(header)


def _base256(size: int) -> bytes:
    return bytes([0x80]) + size.to_bytes(11, "big")


def raw_tgz(blocks: bytes | Iterator[bytes]) -> bytes:
    """Gzip raw tar bytes (or an iterator of pieces, compressed as they come)."""
    if isinstance(blocks, bytes):
        return gzip.compress(blocks, mtime=0)
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        for piece in blocks:
            gz.write(piece)
    return out.getvalue()


def gzip_bomb(inflated: int, *, prefix: bytes = b"") -> bytes:
    """`prefix` then zeros, `inflated` bytes in all, gzipped (~1000:1)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(prefix)
        left, zeros = inflated - len(prefix), bytes(1 << 20)
        while left > 0:
            gz.write(zeros[: min(left, len(zeros))])
            left -= len(zeros)
    return out.getvalue()


def body(data: bytes, *, status: int = 200, **headers: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=data, status=status, headers=headers)

    return handle


def drip(data: bytes, *, per_second: float = 1.0, forever: bool = False) -> Handler:
    """Send `data` one byte at a time (or, with `forever`, never stop)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/gzip"})
        await response.prepare(request)
        try:
            i = 0
            while forever or i < len(data):
                await response.write(data[i : i + 1] if i < len(data) else b"\x00")
                i += 1
                await asyncio.sleep(1 / per_second)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    return handle


def endless(chunk: int = 1 << 16) -> Handler:
    """Send zeros as fast as the client reads them, forever."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/gzip"})
        await response.prepare(request)
        zeros = bytes(chunk)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while True:
                await response.write(zeros)
        return response

    return handle


def redirect(location: str, status: int = 302) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": location})

    return handle


class HostileRepo:
    """The attacker's server; `url` is its repository URL (http://127.0.0.1:PORT)."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="hostile-repo")
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def index(self, entries: dict[str, list[dict[str, Any]]] | bytes, **headers: str) -> None:
        raw = entries if isinstance(entries, bytes) else index_yaml(entries)
        self.route("/index.yaml", body(raw, **headers))

    def archive(self, path: str, data: bytes) -> None:
        self.route("/" + path.lstrip("/"), body(data, **{"Content-Type": "application/gzip"}))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404)
        return await handler(request)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def __enter__(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


class RawTcpServer:
    """A non-HTTP service on 127.0.0.1 that answers every connection with `banner`."""

    def __init__(self, banner: bytes) -> None:
        self.banner = banner
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(self.banner)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
