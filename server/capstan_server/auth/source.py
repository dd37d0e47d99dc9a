"""The policy in force: read from `--auth-policy` at start, re-read on SIGHUP and whenever the
file changes. A file that no longer parses keeps the previous policy in force, and the log says
why, so that a typo never opens (or closes) the server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from capstan_server.auth.keystone import KeystoneValidator
from capstan_server.auth.oidc import JwtVerifier
from capstan_server.auth.policy import Policy, PolicyError, load_policy
from capstan_server.auth.tenancy import warn_unimpersonated

__all__ = ["PolicySource"]

log = logging.getLogger("capstan.auth")


class PolicySource:
    """Holds the current policy (None: no policy, every call is allowed) and its JWT verifier.

    Open it with `PolicySource.open(path)`, which raises PolicyError for a bad file: at start-up
    a broken policy is a reason not to start at all."""

    def __init__(self, path: Path | None, policy: Policy | None, verifier: JwtVerifier | None):
        self.path = path
        self.policy = policy
        self.verifier = verifier
        #: Checks Keystone tokens when the policy has `keystone:` (its cache goes with it).
        self.keystone = _keystone(policy)
        self._stamp = _stamp(path) if path else None

    @classmethod
    def open(cls, path: Path | None) -> PolicySource:
        if path is None:
            return cls(None, None, None)
        policy, verifier = _load(path)
        return cls(path, policy, verifier)

    def reload(self) -> bool:
        """Re-read the file; True if the new policy is in force, False (logged) if the file is
        broken and the old one stays."""
        if self.path is None:
            return False
        self._stamp = _stamp(self.path)
        try:
            policy, verifier = _load(self.path)
        except PolicyError as exc:
            log.error(
                "policy not reloaded, the previous one stays in force: %s", exc,
                extra={"fields": {"policy": str(self.path)}},
            )
            return False
        self.policy, self.verifier = policy, verifier
        self.keystone = _keystone(policy)
        log.info(
            "policy reloaded",
            extra={"fields": {"policy": str(self.path), "subjects": len(policy.subjects),
                              "projects": len(policy.projects)}},
        )
        return True

    def changed(self) -> bool:
        """Whether the file's size or modification time differs from the last read."""
        return self.path is not None and _stamp(self.path) != self._stamp

    async def watch(self, interval: float = 1.0) -> None:
        """Reload whenever the file changes (polling its stat; runs until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            if self.changed():
                self.reload()


def _load(path: Path) -> tuple[Policy, JwtVerifier | None]:
    policy = load_policy(path)
    warn_unimpersonated(policy)
    verifier = JwtVerifier(policy.oidc) if policy.oidc is not None else None
    return policy, verifier


def _keystone(policy: Policy | None) -> KeystoneValidator | None:
    if policy is None or policy.keystone is None:
        return None
    return KeystoneValidator(policy.keystone)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)
