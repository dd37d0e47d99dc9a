"""A real OCI registry for the tests: Debian's `docker-registry` (CNCF Distribution 2.8) on a
free 127.0.0.1 port with temporary storage, optionally behind htpasswd basic auth.

Charts reach it the way publishers put them there: `helm push` (over `--plain-http`, as the
registry speaks plain HTTP on loopback). `put_artifact` and `tag` speak the distribution API
directly, for what helm will not push (a manifest that is not a chart, a non-SemVer tag).
With `token=True` the registry wants Bearer tokens from a `registry_token.TokenService` (as
Docker Hub does, catalog refused); with `tls=True` it serves HTTPS with a certificate of a test
CA (`ca_pem`, `ca_file`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from registry_token import TokenService, write_tls_files

#: The pinned helm binaries (`make setup`).
TOOLS_BIN = Path(__file__).resolve().parents[1] / ".tools" / "bin"
#: Credentials of the `oci_registry_auth` and `oci_registry_token` fixtures.
OCI_USER, OCI_PASSWORD = "capstan", "s3cret-registry-pw"
#: The version of the `build_chart` fixture's chart (`+` is `_` in its OCI tag).
BUILD_VERSION = "0.1.0+build.7"
REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
HTPASSWD_BIN = shutil.which("htpasswd") or "/usr/bin/htpasswd"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def pinned_helm(name: str = "helm") -> Path:
    """`.tools/bin/<name>` (helm, helm3, helm4), or skip the test when it is not installed."""
    import pytest

    path = TOOLS_BIN / name
    if not path.exists():
        pytest.skip(f"{path} is missing; run `make setup`")
    return path


def registry_available() -> bool:
    return Path(REGISTRY_BIN).is_file() and Path(HTPASSWD_BIN).is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class OciRegistry:
    """One running registry; `stop()` (or the context manager) ends it and drops its storage."""

    def __init__(self, *, username: str | None = None, password: str | None = None,
                 token: bool = False, tls: bool = False, token_tls: bool | None = None) -> None:
        self.username, self.password = username, password
        self._dir = Path(tempfile.mkdtemp(prefix="capstan-oci-registry-"))
        self.port = _free_port()
        self.tls = tls
        self._token: TokenService | None = None
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self._dir / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{self.port}"},
        }
        cert = key = None
        if tls:
            ca, cert, key = write_tls_files(self._dir)
            self.ca_file = ca
            config["http"] = {**config["http"],  # type: ignore[dict-item]
                              "tls": {"certificate": str(cert), "key": str(key)}}
        if token:
            assert username is not None and password is not None
            # The token service speaks TLS with the registry's certificate unless told not to.
            with_tls = tls if token_tls is None else token_tls
            self._token = TokenService(self._dir, username, password,
                                       tls=(cert, key) if with_tls and cert and key else None)
            config["auth"] = self._token.registry_auth()
        elif username is not None:
            assert password is not None
            htpasswd = self._dir / "htpasswd"
            subprocess.run([HTPASSWD_BIN, "-Bbc", str(htpasswd), username, password],
                           check=True, capture_output=True)
            config["auth"] = {"htpasswd": {"realm": "capstan-test", "path": str(htpasswd)}}
        (self._dir / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        self._log = open(self._dir / "registry.log", "wb")  # noqa: SIM115 (closed in stop)
        self._proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self._dir / "config.yml")],
                                      stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready()

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, as in `oci://` references."""
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "charts") -> str:
        """The `oci://` URL of a repository path in this registry."""
        return f"oci://{self.host}/{path}"

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_text()}")
            try:
                urllib.request.urlopen(f"{self._base}/v2/", timeout=2,
                                       context=self._ssl()).close()
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not start: {self.log_text()}")

    @property
    def _base(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def ca_pem(self) -> str:
        """The PEM of the CA that signed the registry's certificate (with `tls=True`)."""
        return self.ca_file.read_text()

    def _ssl(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.tls else None

    def log_text(self) -> str:
        return (self._dir / "registry.log").read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()
        if self._token is not None:
            self._token.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- publishing -----------------------------------------------------------------------

    def push(self, helm: Path, archive: Path, path: str = "charts") -> None:
        """`helm push ARCHIVE oci://HOST/PATH --plain-http`, logging in first if needed."""
        with tempfile.TemporaryDirectory(prefix="capstan-helm-push-") as home:
            env = {"PATH": "/usr/bin:/bin", "HOME": home, "HELM_CACHE_HOME": f"{home}/cache",
                   "HELM_CONFIG_HOME": f"{home}/config", "HELM_DATA_HOME": f"{home}/data",
                   "HELM_REGISTRY_CONFIG": f"{home}/registry.json"}
            if self.username is not None:
                # What `helm registry login` writes (helm 3's login has no --plain-http).
                auth = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
                Path(env["HELM_REGISTRY_CONFIG"]).write_text(
                    json.dumps({"auths": {self.host: {"auth": auth}}}))
            transport = ["--ca-file", str(self.ca_file)] if self.tls else ["--plain-http"]
            done = subprocess.run([str(helm), "push", str(archive), self.url(path), *transport],
                                  env=env, capture_output=True, timeout=120)
            if done.returncode != 0:
                raise RuntimeError(f"helm push failed: {done.stderr.decode(errors='replace')}")

    def _request(self, method: str, path: str, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
        assert self._token is None, "speaks Basic auth only"
        request = urllib.request.Request(f"{self._base}{path}", data=body or None,
                                         method=method, headers=dict(headers or {}))
        if self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30, context=self._ssl()) as resp:
            return resp.read(), dict(resp.headers)

    def _put_blob(self, repository: str, blob: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        _, headers = self._request("POST", f"/v2/{repository}/blobs/uploads/")
        location = headers["Location"]
        location = location.split(self.host, 1)[-1]  # absolute or relative, as served
        sep = "&" if "?" in location else "?"
        self._request("PUT", f"{location}{sep}digest={digest}", blob,
                      {"Content-Type": "application/octet-stream"})
        return digest

    def put_artifact(self, repository: str, tag: str, *, config_media_type: str,
                     layer: bytes, layer_media_type: str, config: bytes = b"{}") -> None:
        """Push an artifact with the given config media type (e.g. a container image's)."""
        manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": config_media_type, "size": len(config),
                       "digest": self._put_blob(repository, config)},
            "layers": [{"mediaType": layer_media_type, "size": len(layer),
                        "digest": self._put_blob(repository, layer)}],
        }
        self._request("PUT", f"/v2/{repository}/manifests/{tag}", json.dumps(manifest).encode(),
                      {"Content-Type": OCI_MANIFEST})

    def tag(self, repository: str, source_tag: str, new_tag: str) -> None:
        """Give the manifest tagged `source_tag` another tag (e.g. `latest`)."""
        manifest, _ = self._request("GET", f"/v2/{repository}/manifests/{source_tag}",
                                    headers={"Accept": OCI_MANIFEST})
        self._request("PUT", f"/v2/{repository}/manifests/{new_tag}", manifest,
                      {"Content-Type": OCI_MANIFEST})


@contextlib.contextmanager
def running_registry(*, username: str | None = None, password: str | None = None,
                     token: bool = False, tls: bool = False,
                     token_tls: bool | None = None) -> Iterator[OciRegistry]:
    registry = OciRegistry(username=username, password=password, token=token, tls=tls,
                           token_tls=token_tls)
    try:
        yield registry
    finally:
        registry.stop()
