"""A real Helm chart repository of local charts, for tests and ``capstan-server --dev``.

Every chart under a directory (or a chosen subset) is packaged with ``helm package``, indexed with
``helm repo index`` and served over HTTP on 127.0.0.1 (optionally behind basic auth), so helm and
Capstan fetch charts exactly as they would from a remote repository. Use it from asyncio code
(``await start()`` / ``await stop()``, or ``async with``) or from synchronous code
(``with server.serve_in_thread():``). A chart can be published to a running repository later
(``await publish(name)``, or ``publish_now(name)`` from synchronous code), as when a new chart
version is released upstream.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import os
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = [
    "SAMPLE_CHARTS_DIR",
    "ChartRepoError",
    "ChartRepoServer",
    "find_charts",
    "package_charts",
]

#: The project's sample charts, when running from a source checkout.
SAMPLE_CHARTS_DIR: Path = Path(__file__).resolve().parents[3] / "samples" / "charts"

_CONTENT_TYPES: dict[str, str] = {
    ".tgz": "application/gzip",
    ".yaml": "application/x-yaml",
    ".prov": "application/pgp-signature",
}
_HELM_TIMEOUT_S = 120.0
_THREAD_START_TIMEOUT_S = 300.0


class ChartRepoError(RuntimeError):
    """Packaging, indexing or serving the chart repository failed."""


def find_charts(charts_dir: Path) -> list[Path]:
    """The chart directories (those holding a ``Chart.yaml``) directly under ``charts_dir``."""
    if not charts_dir.is_dir():
        raise ChartRepoError(f"charts directory {charts_dir} does not exist")
    return sorted(p for p in charts_dir.iterdir() if (p / "Chart.yaml").is_file())


async def _run_helm(helm: Path, args: Sequence[str], env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(helm), *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), _HELM_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ChartRepoError(f"helm {' '.join(args)} timed out after {_HELM_TIMEOUT_S}s") from None
    if proc.returncode != 0:
        detail = (stderr or stdout).decode(errors="replace").strip()
        raise ChartRepoError(f"helm {' '.join(args)} failed (exit {proc.returncode}): {detail}")


async def package_charts(helm: Path, charts: Sequence[Path], out_dir: Path, url: str) -> None:
    """``helm package`` each chart into ``out_dir``, then ``helm repo index out_dir --url url``."""
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    # Private helm homes: never read or write the user's helm config, cache or repositories.
    with tempfile.TemporaryDirectory(prefix="capstan-chart-repo-helm-") as home:
        env = dict(os.environ)
        for var, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"),
                         ("HELM_DATA_HOME", "data")):
            env[var] = str(Path(home) / sub)
        await asyncio.gather(*(
            _run_helm(helm, ["package", str(chart), "--destination", str(out_dir)], env)
            for chart in charts
        ))
        await _run_helm(helm, ["repo", "index", str(out_dir), "--url", url], env)


class ChartRepoServer:
    """Packages the charts under ``charts_dir`` and serves them as a Helm chart repository.

    The port is chosen (free, on ``host``) before indexing, so ``index.yaml`` carries absolute
    chart URLs that work. Without ``out_dir`` the archives go to a temporary directory that is
    removed on ``stop()``. With ``username`` and ``password`` every request needs basic auth.
    ``charts`` (directory names under ``charts_dir``, e.g. ``["etcd-8.11.1"]``) serves only those
    charts at first; ``publish()`` adds others while the repository runs.
    """

    def __init__(
        self,
        charts_dir: Path,
        helm: Path | str,
        *,
        out_dir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str | None = None,
        password: str | None = None,
        charts: Sequence[str] | None = None,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("username and password must be given together")
        if isinstance(charts, str):
            raise TypeError("charts must be a sequence of chart directory names, not a string")
        self._charts_dir = Path(charts_dir)
        #: Names of the chart directories served; None: every chart under ``charts_dir``.
        self._served: list[str] | None = None if charts is None else list(dict.fromkeys(charts))
        self._helm = Path(helm)
        self._out_dir = out_dir
        self._host = host
        self._requested_port = port
        self._username = username
        self._password = password
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._lock = asyncio.Lock()  # one packaging at a time (publish / reindex)
        self._thread_loop: asyncio.AbstractEventLoop | None = None  # set by serve_in_thread()

    # -- public surface ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the repository (no trailing slash), e.g. ``http://127.0.0.1:41234``."""
        if self._port is None:
            raise ChartRepoError("the chart repository is not started")
        return f"http://{self._host}:{self._port}"

    @property
    def index_url(self) -> str:
        return f"{self.url}/index.yaml"

    @property
    def port(self) -> int:
        if self._port is None:
            raise ChartRepoError("the chart repository is not started")
        return self._port

    @property
    def out_dir(self) -> Path:
        """Where the packaged archives and ``index.yaml`` are (valid once started)."""
        if self._out_dir is not None:
            return self._out_dir
        if self._tmp is not None:
            return Path(self._tmp.name)
        raise ChartRepoError("the chart repository is not started")

    @property
    def credentials(self) -> tuple[str, str] | None:
        """``(username, password)`` when basic auth is on."""
        if self._username is None or self._password is None:
            return None
        return (self._username, self._password)

    @property
    def archives(self) -> list[str]:
        """File names of the packaged charts, e.g. ``["etcd-8.11.1.tgz", ...]``."""
        return sorted(p.name for p in self.out_dir.glob("*.tgz"))

    @property
    def charts(self) -> list[str]:
        """Directory names of the charts served (those given, plus the ones published)."""
        if self._served is None:
            return [p.name for p in find_charts(self._charts_dir)]
        return list(self._served)

    async def start(self) -> None:
        """Choose the port, package and index the charts, and start serving."""
        if self._runner is not None:
            raise ChartRepoError("the chart repository is already started")
        charts = self._chart_dirs()
        if not self._helm.is_file():
            raise ChartRepoError(f"helm binary {self._helm} not found")
        if self._out_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="capstan-chart-repo-")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            sock.listen(128)
            sock.setblocking(False)
            self._port = sock.getsockname()[1]
            # A reused out_dir may hold archives of charts this server does not serve.
            for stale in self.out_dir.glob("*.tgz"):
                stale.unlink()
            await package_charts(self._helm, charts, self.out_dir, self.url)
            runner = web.AppRunner(self._make_app(), access_log=None)
            await runner.setup()
            self._runner = runner
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop serving and remove the temporary output directory. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._port = None
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            tmp.cleanup()

    async def reindex(self) -> None:
        """Re-package the charts and rebuild ``index.yaml`` (e.g. after a chart changed)."""
        async with self._lock:
            await package_charts(self._helm, self._chart_dirs(), self.out_dir, self.url)

    async def publish(self, chart: str) -> None:
        """Publish the chart directory ``chart`` (a name under ``charts_dir``, e.g.
        ``"etcd-8.11.2"``) to the running repository: package it, re-index, and serve the new
        ``index.yaml`` from then on. Publishing a chart already served re-packages it.

        Callable from any event loop; under ``serve_in_thread()`` the work runs on the
        repository's own loop.
        """
        loop = self._thread_loop
        if loop is not None and loop is not asyncio.get_running_loop():
            future = asyncio.run_coroutine_threadsafe(self._publish(chart), loop)
            await asyncio.wrap_future(future)
        else:
            await self._publish(chart)

    def publish_now(self, chart: str, timeout: float = _HELM_TIMEOUT_S * 2) -> None:
        """``publish()`` for synchronous code: blocks until the new index is served. Needs a
        repository running under ``serve_in_thread()``; thread-safe."""
        loop = self._thread_loop
        if loop is None:
            raise ChartRepoError("publish_now() needs serve_in_thread(); use await publish()")
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is loop:
                raise ChartRepoError("publish_now() would block the repository's loop")
        asyncio.run_coroutine_threadsafe(self._publish(chart), loop).result(timeout)

    async def _publish(self, chart: str) -> None:
        if self._runner is None:
            raise ChartRepoError("the chart repository is not started")
        path = self._chart_dir(chart)
        async with self._lock:
            await package_charts(self._helm, [path], self.out_dir, self.url)
            if self._served is not None and chart not in self._served:
                self._served.append(chart)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @contextlib.contextmanager
    def serve_in_thread(self) -> Iterator[Self]:
        """Serve from a private event loop in a daemon thread, for synchronous callers."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="capstan-chart-repo", daemon=True)
        thread.start()
        self._thread_loop = loop
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(_THREAD_START_TIMEOUT_S)
            yield self
        finally:
            try:
                asyncio.run_coroutine_threadsafe(self.stop(), loop).result(60)
            finally:
                self._thread_loop = None
                loop.call_soon_threadsafe(loop.stop)
                thread.join(60)
                loop.close()

    # -- charts -----------------------------------------------------------------------------

    def _chart_dir(self, name: str) -> Path:
        """The chart directory ``name`` under ``charts_dir`` (only a directory listed there)."""
        found = {p.name: p for p in find_charts(self._charts_dir)}
        if name not in found:
            raise ChartRepoError(
                f"no chart directory {name!r} in {self._charts_dir} "
                f"(there are: {', '.join(found) or 'none'})"
            )
        return found[name]

    def _chart_dirs(self) -> list[Path]:
        """The chart directories to serve (all of them, or the ones given and published)."""
        if self._served is None:
            charts = find_charts(self._charts_dir)
        else:
            charts = [self._chart_dir(name) for name in self._served]
        if not charts:
            raise ChartRepoError(f"no charts to serve (directories with Chart.yaml) in "
                                 f"{self._charts_dir}")
        return charts

    # -- HTTP -------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        middlewares = [self._basic_auth] if self.credentials is not None else []
        app = web.Application(middlewares=middlewares)
        app.router.add_get("/", self._handle_root)
        app.router.add_get("/{name}", self._handle_file)
        return app

    @web.middleware
    async def _basic_auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self._authorized(request.headers.get("Authorization", "")):
            return web.Response(
                status=401,
                text="401: Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="capstan-charts"'},
            )
        return await handler(request)

    def _authorized(self, header: str) -> bool:
        creds = self.credentials
        if creds is None:
            return True
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        ok_user = hmac.compare_digest(user.encode(), creds[0].encode())
        ok_password = hmac.compare_digest(password.encode(), creds[1].encode())
        return bool(sep) and ok_user and ok_password

    async def _handle_root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/index.yaml")

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        suffix = Path(name).suffix
        # Only plain top-level files this repository produces; no traversal, no listings.
        if name.startswith(".") or "/" in name or "\\" in name or suffix not in _CONTENT_TYPES:
            raise web.HTTPNotFound()
        path = self.out_dir / name
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            raise web.HTTPNotFound() from None
        # Set the type explicitly: guessing from ".tgz" would add "Content-Encoding: gzip", and
        # HTTP clients would then hand helm a decompressed archive.
        return web.Response(body=body, content_type=_CONTENT_TYPES[suffix])
