"""Keystone (OpenStack Identity v3) tokens as a credential: what climc sends in `X-Auth-Token`.

A token is checked with Keystone's `GET /v3/auth/tokens` (`X-Subject-Token`: the token to
check; `X-Auth-Token`: Capstan's own service token, obtained with the policy's configured
credentials by `POST /v3/auth/tokens`, or, without credentials, the caller's token itself,
which Keystone lets validate itself). Keystone's answer (project, roles, user, `expires_at`)
is cached, keyed by the token's SHA-256, until `cache_margin` seconds before the token
expires. A token Keystone does not know (404) or refuses (401) is UNAUTHENTICATED; Keystone
unreachable or answering 5xx is UNAVAILABLE, never a pass.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from capstan_server.errors import Unauthenticated, Unavailable

__all__ = ["KeystoneSettings", "KeystoneToken", "KeystoneValidator"]


@dataclass(frozen=True)
class KeystoneSettings:
    """`keystone:` in the policy file."""

    #: The Identity v3 base URL, e.g. `https://keystone.example:5000/v3` (`/v3` is added when
    #: missing).
    url: str
    #: Capstan's own service user (password method, project scope); without one, each caller's
    #: token validates itself.
    username: str = ""
    password: str = ""
    user_domain: str = "Default"
    project: str = ""
    project_domain: str = "Default"
    #: A cached validation is dropped this many seconds before the token expires.
    cache_margin: float = 30.0
    #: Seconds for one request to Keystone.
    timeout: float = 10.0
    #: At most this many validated tokens are kept.
    cache_size: int = 10000

    @property
    def base(self) -> str:
        url = self.url.rstrip("/")
        return url if url.endswith("/v3") else f"{url}/v3"


@dataclass(frozen=True)
class KeystoneToken:
    """What Keystone says about a valid token."""

    user: str
    user_id: str
    project: str
    project_id: str
    roles: tuple[str, ...]
    #: Unix time at which the token expires.
    expires_at: float


class KeystoneValidator:
    """Validates Keystone tokens for one policy, with a cache; safe for concurrent calls."""

    def __init__(self, settings: KeystoneSettings) -> None:
        self.settings = settings
        self._cache: dict[str, KeystoneToken] = {}
        self._service_token: tuple[str, float] | None = None
        self._lock = asyncio.Lock()

    async def validate(self, token: str) -> KeystoneToken:
        """The token's project, roles and user; Unauthenticated or Unavailable otherwise."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and cached.expires_at - self.settings.cache_margin > now:
            return cached
        self._cache.pop(key, None)
        checked = await self._check(token)
        if checked.expires_at <= now:
            raise Unauthenticated("expired credential: the Keystone token has expired")
        if len(self._cache) >= self.settings.cache_size:
            # Bounded: start over rather than track recency (a miss only costs one validation).
            self._cache.clear()
        self._cache[key] = checked
        return checked

    async def _check(self, token: str) -> KeystoneToken:
        service = await self._own_token() if self.settings.username else token
        status, body = await self._call("GET", {"X-Auth-Token": service, "X-Subject-Token": token})
        if status == 401 and self.settings.username:
            # Capstan's own token may have been revoked: get a new one, once.
            self._service_token = None
            service = await self._own_token()
            status, body = await self._call(
                "GET", {"X-Auth-Token": service, "X-Subject-Token": token}
            )
        if status in (401, 404):
            raise Unauthenticated("unknown credential: Keystone does not accept the token "
                                  "(invalid, revoked or expired)")
        if status != 200:
            raise Unavailable(f"Keystone answered HTTP {status} to the token validation")
        return _parse_token(body)

    async def _own_token(self) -> str:
        async with self._lock:
            if self._service_token and self._service_token[1] - 60 > time.time():
                return self._service_token[0]
            s = self.settings
            user = {"name": s.username, "domain": {"name": s.user_domain}, "password": s.password}
            auth: dict[str, Any] = {
                "identity": {"methods": ["password"], "password": {"user": user}}
            }
            if s.project:
                project = {"name": s.project, "domain": {"name": s.project_domain}}
                auth["scope"] = {"project": project}
            body = {"auth": auth}
            status, answer, subject = await self._post(body)
            if status != 201 or not subject:
                raise Unavailable(
                    f"Keystone refused Capstan's own credentials (HTTP {status}); check "
                    "keystone: in the policy file"
                )
            self._service_token = (subject, _parse_token(answer).expires_at)
            return subject

    async def _call(self, method: str, headers: dict[str, str]) -> tuple[int, Any]:
        status, body, _ = await self._request(method, headers, None)
        return status, body

    async def _post(self, body: Any) -> tuple[int, Any, str]:
        return await self._request("POST", {}, body)

    async def _request(
        self, method: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Any, str]:
        url = f"{self.settings.base}/auth/tokens"
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(method, url, headers=headers, json=body) as response,
            ):
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
                return response.status, data, response.headers.get("X-Subject-Token", "")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Unavailable(
                f"Keystone at {self.settings.base} cannot be reached to check the token: "
                f"{type(exc).__name__}"
            ) from None


def _parse_token(body: Any) -> KeystoneToken:
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, dict):
        raise Unavailable("Keystone's token answer has no `token` object")
    user = token.get("user") or {}
    project = token.get("project") or {}
    roles = tuple(
        str(r.get("name", "")) for r in token.get("roles") or () if isinstance(r, dict)
    )
    try:
        expires = datetime.fromisoformat(str(token["expires_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        raise Unavailable("Keystone's token answer has no valid `expires_at`") from None
    return KeystoneToken(
        user=str(user.get("name", "")),
        user_id=str(user.get("id", "")),
        project=str(project.get("name", "")),
        project_id=str(project.get("id", "")),
        roles=roles,
        expires_at=expires.timestamp(),
    )


_SETTINGS_KEYS = (
    "url",
    "username",
    "password",
    "user_domain",
    "project",
    "project_domain",
    "cache_margin_seconds",
    "timeout_seconds",
)


def parse_keystone(value: Any, where: str) -> KeystoneSettings:
    """`keystone:` of the policy file; ValueError says what is wrong and where."""
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - set(_SETTINGS_KEYS))
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; expected "
            f"{', '.join(_SETTINGS_KEYS)}"
        )
    url = value.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ValueError(f"{where}.url: expected the Identity v3 URL, https://HOST:PORT/v3")
    texts: dict[str, str] = {}
    for key in ("username", "password", "user_domain", "project", "project_domain"):
        if key in value:
            if not isinstance(value[key], str) or not value[key]:
                raise ValueError(f"{where}.{key}: expected a non-empty string")
            texts[key] = value[key]
    if bool(texts.get("username")) != bool(texts.get("password")):
        raise ValueError(f"{where}: give both username and password, or neither")
    numbers: dict[str, float] = {}
    for key, attr in (("cache_margin_seconds", "cache_margin"), ("timeout_seconds", "timeout")):
        if key in value:
            number = value[key]
            if not isinstance(number, int | float) or isinstance(number, bool) or number < 0:
                raise ValueError(f"{where}.{key}: expected a number of seconds >= 0")
            numbers[attr] = float(number)
    return KeystoneSettings(url=url, **texts, **numbers)  # type: ignore[arg-type]
