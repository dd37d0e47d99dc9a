"""REST calls served in-process (gateway/in_process.py) answer exactly what they answered over
the loopback gRPC hop: the same statuses, bodies and headers for every kind of caller, refusal
and error. The hop's gateway is built here as the server once built it, beside the server's
own, on the same server."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc.aio
import pytest
from aiohttp import web
from auth_kit import TOKENS
from auth_server import Secured

from capstan_server.gateway import build_gateway
from capstan_server.threaded import ServerHandle


@contextmanager
def hop_gateway(handle: ServerHandle) -> Iterator[str]:
    """A gateway whose every call crosses a loopback channel to `handle`'s gRPC port, with the
    server's own credential forwarding; its base URL."""
    loop = asyncio.new_event_loop()
    started, stop = threading.Event(), asyncio.Event()
    url: list[str] = []

    async def serve() -> None:
        channel = grpc.aio.insecure_channel(handle.grpc_target)
        app = build_gateway(channel, is_ready=lambda: True, forward=handle.server.auth.forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url.append(f"http://127.0.0.1:{runner.addresses[0][1]}")
        started.set()
        await stop.wait()
        await runner.cleanup()
        await channel.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(30)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def answer(base: str, method: str, path: str, token: str | None, body: Any = None
           ) -> tuple[int, Any, dict[str, str]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(base + path, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw, got = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, raw, got = error.code, error.read(), error.headers
    parsed = json.loads(raw) if raw else None
    if isinstance(parsed, dict) and isinstance(parsed.get("details"), list):
        # Each answer has its own request id; everything else must be the same.
        parsed["details"] = [d for d in parsed["details"]
                             if not (isinstance(d, dict) and set(d) == {"request_id"})]
    kept = {k: v for k, v in got.items() if k in ("Content-Type", "WWW-Authenticate",
                                                   "Retry-After")}
    return status, parsed, kept


CASES = [
    ("GET", "/api/releases", "admin", None),
    ("GET", "/api/releases?limit=1&offset=1", "admin", None),
    ("GET", "/api/releases", "viewer-a", None),  # team-a's releases only
    ("GET", "/api/releases/rel-b", "viewer-a", None),  # another project's
    ("GET", "/api/releases/rel-a/history", "viewer-a", None),
    ("GET", "/api/releases/nope", "admin", None),
    ("GET", "/api/releases", None, None),  # no credential
    ("GET", "/api/releases", "not-a-token-0123456789", None),
    ("GET", "/api/releases?limit=-1", "admin", None),
    ("GET", "/api/clusters", "viewer-a", None),
    ("GET", "/api/repos", "editor-b", None),
    ("DELETE", "/api/releases/rel-a", "viewer-a", None),  # a viewer's write
    ("POST", "/api/clusters", "editor-a", {"name": "c2", "kubeconfig": "x"}),  # not admin's
    ("POST", "/api/releases", "editor-a", b"{not json"),
    ("POST", "/api/releases", "editor-a", {"chart_name": "bitnami-new/etcd",
                                           "release_name": "Bad_Name", "cluster": "test122"}),
]


@pytest.mark.parametrize(("method", "path", "who", "body"), CASES)
def test_an_in_process_answer_is_the_hop_s(secured: Secured, method: str, path: str,
                                           who: str | None, body: Any) -> None:
    token = TOKENS.get(who, who) if who is not None else None
    with hop_gateway(secured.server) as hop:
        over_hop = answer(hop, method, path, token, body)
        in_process = answer(secured.server.http_url, method, path, token, body)
    assert in_process == over_hop
    assert over_hop[0] != 500
