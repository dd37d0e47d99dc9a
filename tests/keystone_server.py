"""A test Keystone: issues and validates tokens as the Identity v3 API documents.

`POST /v3/auth/tokens` (password method, optional project scope) answers 201 with the token in
`X-Subject-Token` and the token body (`token.user`, `token.project`, `token.roles`,
`token.expires_at`, `token.catalog`); `GET /v3/auth/tokens` with a valid `X-Auth-Token` and the
`X-Subject-Token` to check answers 200 with that body, 404 for an unknown or expired token and
401 when `X-Auth-Token` itself is not valid. aiohttp on 127.0.0.1, on a thread of its own.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web


@dataclass
class KeystoneUser:
    password: str
    #: project name -> role names in it
    roles: dict[str, list[str]]


@dataclass
class LoopbackKeystone:
    """The state of a test Keystone; `url` is its `/v3` base once running."""

    users: dict[str, KeystoneUser] = field(default_factory=dict)
    #: Lifetime of new tokens, in seconds.
    token_lifetime: float = 3600.0
    #: Filled by `run_keystone`: the catalog's k8s endpoint.
    k8s_url: str = ""
    url: str = ""
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Every GET /v3/auth/tokens seen (for cache tests).
    validations: int = 0

    def issue(self, user: str, project: str = "") -> str:
        """A new token for `user` (scoped to `project` when given), as POST would issue it."""
        account = self.users[user]
        now = time.time()
        body = {
            "methods": ["password"],
            "user": {"id": f"u-{user}", "name": user, "domain": {"id": "default",
                                                                  "name": "Default"}},
            "issued_at": _iso(now),
            "expires_at": _iso(now + self.token_lifetime),
            "roles": [{"id": f"r-{r}", "name": r} for r in account.roles.get(project, [])],
            "catalog": [{"type": "k8s", "name": "k8s", "endpoints": [
                {"interface": "internal", "region_id": "region0", "url": self.k8s_url}]}],
        }
        if project:
            body["project"] = {"id": f"p-{project}", "name": project,
                               "domain": {"id": "default", "name": "Default"}}
        token = "gAAAA" + secrets.token_urlsafe(32)
        self.tokens[token] = body
        return token

    def revoke(self, token: str) -> None:
        self.tokens.pop(token, None)

    def _valid(self, token: str) -> dict[str, Any] | None:
        body = self.tokens.get(token)
        if body is None:
            return None
        expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        return body if expires.timestamp() > time.time() else None

    # -- HTTP --

    async def _post(self, request: web.Request) -> web.Response:
        data = await request.json()
        auth = data["auth"]
        user = auth["identity"]["password"]["user"]
        account = self.users.get(user["name"])
        if account is None or account.password != user["password"]:
            return web.json_response({"error": {"code": 401, "title": "Unauthorized"}},
                                     status=401)
        project = ((auth.get("scope") or {}).get("project") or {}).get("name", "")
        token = self.issue(user["name"], project)
        return web.json_response({"token": self.tokens[token]}, status=201,
                                 headers={"X-Subject-Token": token})

    async def _get(self, request: web.Request) -> web.Response:
        self.validations += 1
        if self._valid(request.headers.get("X-Auth-Token", "")) is None:
            return web.json_response({"error": {"code": 401, "title": "Unauthorized"}},
                                     status=401)
        body = self._valid(request.headers.get("X-Subject-Token", ""))
        if body is None:
            return web.json_response({"error": {"code": 404, "title": "Not Found"}}, status=404)
        return web.json_response({"token": body})

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/auth/tokens", self._post)
        app.router.add_get("/v3/auth/tokens", self._get)
        return app


def _iso(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextmanager
def run_keystone(keystone: LoopbackKeystone) -> Iterator[LoopbackKeystone]:
    """Serve `keystone` on a free loopback port until the block ends."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-keystone", daemon=True)
    thread.start()

    async def start() -> web.AppRunner:
        runner = web.AppRunner(keystone.application(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        keystone.url = f"http://127.0.0.1:{port}/v3"
        return runner

    runner = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    try:
        yield keystone
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
