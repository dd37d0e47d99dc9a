"""Run kubesim in-process for tests: in a background thread, or in the caller's event loop.

    with running_kubesim() as sim:          # thread with its own event loop
        sim.url, sim.token, sim.kubeconfig, sim.kubeconfig_path, sim.store, sim.faults
        sim.stop(); sim.start()             # same port, same objects

    async with kubesim_async() as sim:      # inside a running loop
        ...; await sim.stop(); await sim.start()

``kubesim/tests/conftest.py`` wraps `running_kubesim` as the ``kubesim`` pytest fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .faults import Faults
from .identity import UserInfo
from .server import KubeSim
from .store import Store
from .tls import TLSMaterial

T = TypeVar("T")


class _Handle:
    """What tests use: the addresses, credentials and internals of a running kubesim."""

    server: KubeSim
    kubeconfig_path: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server.token

    @property
    def kubeconfig(self) -> str:
        return self.server.kubeconfig()

    @property
    def store(self) -> Store:
        return self.server.store

    @property
    def faults(self) -> Faults:
        return self.server.faults

    @property
    def ca_pem(self) -> bytes | None:
        return self.server.tls.ca_cert if self.server.tls else None


class KubeSimThread(_Handle):
    """A kubesim server running in a daemon thread with its own event loop."""

    def __init__(self, workdir: str | Path | None = None, **kwargs: Any) -> None:
        self.server = KubeSim(**kwargs)
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="kubesim-"))
        self.kubeconfig_path = self.workdir / "kubeconfig"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None:
            return self._loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="kubesim", daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread
        return loop

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run a coroutine in the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop()).result(timeout)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._ensure_loop()

    def start(self) -> KubeSimThread:
        self.call(self.server.start())
        self.server.write_kubeconfig(self.kubeconfig_path)
        return self

    def stop(self) -> None:
        """Stop serving (objects are kept; `start` again serves them on the same port)."""
        if self._loop is not None:
            self.call(self.server.stop())

    def close(self) -> None:
        """Stop serving and end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            self.stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KubeSimThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def running_kubesim(
    *,
    store: Store | None = None,
    tls: bool | TLSMaterial = False,
    token: str | None = None,
    controllers: bool = True,
    port: int = 0,
    workdir: str | Path | None = None,
    anonymous: bool | None = None,
    user_tokens: dict[str, UserInfo] | None = None,
) -> Iterator[KubeSimThread]:
    """Start kubesim on 127.0.0.1 in a background thread; stopped when the block ends.

    ``anonymous``: see `KubeSim` (default: token-less requests are let in over plain HTTP only).
    ``user_tokens``: bearer tokens of RBAC-authorized users (`kubesim.identity.UserInfo`).
    """
    sim = KubeSimThread(
        workdir, store=store, tls=tls, token=token, controllers=controllers, port=port,
        anonymous=anonymous, user_tokens=user_tokens,
    )
    try:
        yield sim.start()
    finally:
        sim.close()


class AsyncKubeSim(_Handle):
    """kubesim served from the current event loop (see `kubesim_async`)."""

    def __init__(self, server: KubeSim, kubeconfig_path: Path) -> None:
        self.server = server
        self.kubeconfig_path = kubeconfig_path

    async def start(self) -> None:
        await self.server.start()
        self.server.write_kubeconfig(self.kubeconfig_path)

    async def stop(self) -> None:
        await self.server.stop()


@contextlib.asynccontextmanager
async def kubesim_async(
    *,
    store: Store | None = None,
    tls: bool | TLSMaterial = False,
    token: str | None = None,
    controllers: bool = True,
    port: int = 0,
    workdir: str | Path | None = None,
    anonymous: bool | None = None,
) -> AsyncIterator[AsyncKubeSim]:
    """Start kubesim in the running event loop; stopped when the block ends."""
    own = workdir is None
    directory = Path(workdir or tempfile.mkdtemp(prefix="kubesim-"))
    server = KubeSim(store=store, tls=tls, token=token, controllers=controllers, port=port,
                     anonymous=anonymous)
    sim = AsyncKubeSim(server, directory / "kubeconfig")
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
        if own:
            shutil.rmtree(directory, ignore_errors=True)


def find_tools_bin(start: str | Path | None = None) -> Path | None:
    """The checkout's ``.tools/bin`` (pinned helm3/helm4/kubectl), searched upwards."""
    here = Path(start or Path.cwd()).resolve()
    for directory in (here, *here.parents, *Path(__file__).resolve().parents):
        candidate = directory / ".tools" / "bin"
        if candidate.is_dir():
            return candidate
    return None


def run_tool(
    binary: str | Path,
    args: list[str],
    kubeconfig: str | Path,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run helm/kubectl against ``kubeconfig`` with HOME and helm's dirs isolated beside it."""
    home = Path(kubeconfig).parent
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "KUBECONFIG": str(kubeconfig),
        "HELM_CACHE_HOME": str(home / ".helm-cache"),
        "HELM_CONFIG_HOME": str(home / ".helm-config"),
        "HELM_DATA_HOME": str(home / ".helm-data"),
    }
    proc = subprocess.run(
        [str(binary), *args], env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{Path(binary).name} {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    return proc
