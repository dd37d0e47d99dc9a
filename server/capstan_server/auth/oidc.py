"""OIDC / JWT bearer tokens: the signature is checked against a JWKS (a file, or a URL fetched
and cached), then issuer, audience, expiry and not-before (with a leeway), all by PyJWT.

`JwtVerifier.verify(token)` answers the token's claims or raises `Unauthenticated` saying
whether the token was expired or otherwise not acceptable; the token itself is never echoed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jwt

from capstan_server.auth.policy import OidcSettings, PolicyError
from capstan_server.errors import Unauthenticated

__all__ = ["JwtVerifier", "looks_like_jwt"]


def looks_like_jwt(token: str) -> bool:
    """Three base64url segments whose first decodes to a JSON header: not a static token."""
    if token.count(".") != 2:
        return False
    try:
        jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False
    return True


class JwtVerifier:
    """Checks JWTs for one `oidc:` section of the policy."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._keys: jwt.PyJWKSet | None = None
        self._client: jwt.PyJWKClient | None = None
        if settings.jwks_file is not None:
            self._keys = _read_jwks_file(settings)
        else:
            self._client = jwt.PyJWKClient(
                settings.jwks_url, cache_keys=True, lifespan=int(settings.jwks_cache_seconds)
                or 1, timeout=10,
            )

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims of `token`; Unauthenticated when it is not acceptable."""
        try:
            key = await self._signing_key(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(self.settings.algorithms),
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("expired credential: the JWT has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("unknown credential: the JWT is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(
                f"unknown credential: the JWT is not for audience {self.settings.audience!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated(
                f"unknown credential: the JWT is not from issuer {self.settings.issuer!r}"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(
                f"malformed credential: the JWT has no {exc.claim!r} claim"
            ) from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated(
                "unknown credential: the JWT signature does not verify"
            ) from None
        except jwt.PyJWKClientConnectionError:
            raise Unauthenticated("unknown credential: the JWKS could not be fetched") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(
                f"unknown credential: the JWT is not acceptable ({_reason(exc)})"
            ) from None
        return claims

    async def _signing_key(self, token: str) -> Any:
        if self._client is not None:
            # PyJWKClient fetches with urllib (blocking) and caches; keep it off the loop.
            return (await asyncio.to_thread(self._client.get_signing_key_from_jwt, token)).key
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        keys = self._keys.keys
        if kid is not None:
            keys = [k for k in keys if k.key_id == kid]
        if len(keys) != 1:
            raise jwt.InvalidSignatureError("no single key matches the JWT's kid")
        return keys[0].key

    def subject_and_groups(self, claims: dict[str, Any]) -> tuple[str, list[str]]:
        """The subject and groups named by the configured claims."""
        subject = claims.get(self.settings.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise Unauthenticated(
                f"malformed credential: the JWT has no {self.settings.subject_claim!r} claim"
            )
        groups = claims.get(self.settings.groups_claim, [])
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list):
            groups = []
        return subject, [g for g in groups if isinstance(g, str)]


def _reason(exc: Exception) -> str:
    # PyJWT's messages name claims and algorithms, never the token; keep them short anyway.
    return str(exc)[:120] or type(exc).__name__


def _read_jwks_file(settings: OidcSettings) -> jwt.PyJWKSet:
    assert settings.jwks_file is not None
    try:
        data = json.loads(settings.jwks_file.read_text(encoding="utf-8"))
        return jwt.PyJWKSet.from_dict(data)
    except (OSError, ValueError, jwt.PyJWTError) as exc:
        raise PolicyError(f"oidc.jwks_file {settings.jwks_file}: {exc}") from None

