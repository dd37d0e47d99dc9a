"""Authentication: call metadata (and the TLS peer's certificate) to a `Subject`.

The credentials, in the order they are looked at:
- the per-process gateway secret (`x-capstan-gateway`): the REST gateway's own calls carry it,
  and only with it are the gateway's `x-capstan-peer-identity` (the HTTPS client's verified
  certificate names) and `x-capstan-internal` (the server calling itself) believed;
- `authorization: Bearer <token>` or `x-auth-token: <token>`: a JWT when it looks like one and
  the policy has `oidc:`, else a static token, looked up by its SHA-256, else (with
  `keystone:` in the policy) a Keystone token, checked with Keystone (`auth/keystone.py`);
- the client certificate of a mutual-TLS connection.
Anything else is UNAUTHENTICATED with a message saying whether the credential was missing,
malformed, expired or unknown; the credential itself is never echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence

from capstan_server.auth.access import UNRESTRICTED, Access, Subject
from capstan_server.auth.keystone import KeystoneValidator
from capstan_server.auth.oidc import looks_like_jwt
from capstan_server.auth.policy import Binding, Policy, Role, SubjectRule
from capstan_server.auth.source import PolicySource
from capstan_server.errors import Unauthenticated

__all__ = [
    "GATEWAY_SECRET",
    "INTERNAL",
    "PEER_IDENTITY",
    "Authenticator",
    "token_sha256",
]

GATEWAY_SECRET = "x-capstan-gateway"
PEER_IDENTITY = "x-capstan-peer-identity"
INTERNAL = "x-capstan-internal"
_MAX_TOKEN = 16 * 1024
_TOKEN_CHARS = re.compile(r"[!-~]+")  # printable ASCII, no spaces
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,19}")
_HOW = "send `authorization: Bearer <token>` or `x-auth-token: <token>`"

Metadata = Iterable[tuple[str, str | bytes]]


def token_sha256(token: str) -> str:
    """The `token_sha256` of a policy entry for `token`."""
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    """Turns a call's credentials into its `Access` under the current policy."""

    def __init__(self, source: PolicySource, gateway_secret: str) -> None:
        self.source = source
        self._secret = gateway_secret

    async def access(self, metadata: Metadata, peer_identities: Sequence[str]) -> Access:
        """The caller's access; Unauthenticated when its credential does not pass."""
        policy = self.source.policy
        if policy is None:
            return UNRESTRICTED
        values = _first_values(metadata)
        trusted = False
        if GATEWAY_SECRET in values:
            if not hmac.compare_digest(values[GATEWAY_SECRET].encode(), self._secret.encode()):
                raise Unauthenticated("unknown credential: the gateway secret does not match")
            trusted = True
            if values.get(INTERNAL):
                admin = Binding(Role.ADMIN, None, tuple(policy.projects))
                subject = Subject(f"capstan:{values[INTERNAL]}", "internal", (admin,))
                return Access(subject, policy)
        token = _token(values)
        if token is not None:
            return Access(await self._from_token(policy, token), policy)
        if trusted and values.get(PEER_IDENTITY):
            peer_identities = _identities(values[PEER_IDENTITY])
        if peer_identities:
            return Access(_from_certificate(policy, peer_identities), policy)
        raise Unauthenticated(f"missing credential: {_HOW}")

    async def _from_token(self, policy: Policy, token: str) -> Subject:
        verifier = self.source.verifier
        if verifier is not None and looks_like_jwt(token):
            claims = await verifier.verify(token)
            sub, groups = verifier.subject_and_groups(claims)
            rules = [
                r for r in policy.subjects
                if (r.oidc_subject and r.oidc_subject == sub) or (r.group and r.group in groups)
            ]
            if not rules:
                raise Unauthenticated(
                    f"unknown credential: the JWT's subject {sub[:100]!r} and groups name no "
                    "subject of the policy"
                )
            return _subject(policy, sub, "jwt", rules)
        rule = policy.by_token.get(token_sha256(token))
        if rule is None and self.source.keystone is not None:
            return await _from_keystone(policy, self.source.keystone, token)
        if rule is None:
            raise Unauthenticated("unknown credential: the token is not in the policy")
        return _subject(policy, rule.name, "token", [rule])


async def _from_keystone(policy: Policy, keystone: KeystoneValidator, token: str) -> Subject:
    """A Keystone token (climc's `X-Auth-Token`): its project and roles name the subjects."""
    checked = await keystone.validate(token)
    roles = set(checked.roles)
    rules = [
        r for r in policy.subjects
        if r.keystone_project and r.keystone_project == checked.project
        and roles.issuperset(r.keystone_roles)
    ]
    if not rules:
        raise Unauthenticated(
            f"unknown credential: the Keystone token's project {checked.project[:100]!r} and "
            "roles name no subject of the policy"
        )
    return _subject(policy, f"keystone:{checked.user[:100]}@{checked.project[:100]}",
                    "keystone", rules)


def _subject(policy: Policy, name: str, kind: str, rules: Sequence[SubjectRule]) -> Subject:
    return Subject(name, kind, tuple(policy.binding(r) for r in rules))


def _from_certificate(policy: Policy, identities: Sequence[str]) -> Subject:
    rules = [r for r in policy.subjects if r.cert_subject and r.cert_subject in identities]
    if not rules:
        shown = ", ".join(repr(i[:100]) for i in identities[:3])
        raise Unauthenticated(
            f"unknown credential: no subject of the policy has the client certificate's "
            f"subject ({shown})"
        )
    return _subject(policy, rules[0].name, "cert", rules)


def _first_values(metadata: Metadata) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, value in metadata:
        if isinstance(value, str):
            values.setdefault(key.lower(), value)
    return values


def _token(values: dict[str, str]) -> str | None:
    """The bearer token of the call, None when there is none; malformed ones are refused."""
    header = values.get("authorization")
    if header is not None:
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            kind = repr(scheme) if _SCHEME.fullmatch(scheme) else "another kind of"
            raise Unauthenticated(
                f"malformed credential: authorization must be 'Bearer <token>', not a {kind} "
                "credential"
            )
        return _checked(rest.strip(), "the Bearer token")
    if "x-auth-token" in values:
        return _checked(values["x-auth-token"].strip(), "x-auth-token")
    return None


def _checked(token: str, what: str) -> str:
    if not token:
        raise Unauthenticated(f"malformed credential: {what} is empty; {_HOW}")
    if len(token) > _MAX_TOKEN or not _TOKEN_CHARS.fullmatch(token):
        raise Unauthenticated(
            f"malformed credential: {what} must be printable ASCII without spaces, at most "
            f"{_MAX_TOKEN} characters"
        )
    return token


def _identities(text: str) -> list[str]:
    try:
        names = json.loads(text)
    except ValueError:
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
