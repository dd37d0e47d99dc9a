"""Encryption at rest of the registry's secrets (kubeconfigs, repository passwords): Fernet
(AES-128-CBC + HMAC-SHA256, from `cryptography`) with keys from `--secret-key-file`.

The key file holds one Fernet key per line (comments with `#`): the first encrypts, every one
decrypts, so a key is rotated by putting a new one first and restarting (the registry then
re-encrypts every row with it; the old line can go afterwards). The file is generated with mode
0600 on first start. Stored values carry a prefix (`fernet:`); a value without it is a plain
row from before encryption, read as is and encrypted when the registry opens.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

__all__ = ["DEFAULT_KEY_FILE", "SecretBox", "SecretKeyError"]

log = logging.getLogger("capstan.registry")

DEFAULT_KEY_FILE = "secret.key"
#: Opened values kept (`SecretBox.open`): well above the clusters and repositories of a server.
_OPENED_MAX = 4096
_PREFIX = "fernet:"
_UNKNOWN_KEY = (
    "a registry secret does not decrypt with any key of the secret key file (was the key "
    "replaced instead of rotated? put the old key back on a line below the new one)"
)


class SecretKeyError(RuntimeError):
    """The key file is unreadable or invalid, or a stored secret does not decrypt with it."""


class SecretBox:
    """Seals and opens secret strings with the keys of one key file."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise SecretKeyError("no key")
        self._primary = keys[0]
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        #: Stored value -> plain text, of values opened before. The registry opens every
        #: cluster's kubeconfig on each call that lists clusters (every ListReleases); a
        #: stored value never changes its meaning (a change is a new token, with a fresh IV),
        #: so this needs no invalidation, only a bound.
        self._opened: dict[str, str] = {}

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        """The keys of `path`, generating a new key file (0600) when it does not exist."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write("# Capstan's registry key (Fernet). Rotate: put a new key on the first "
                          "line, restart, then drop the old line.\n")
                out.write(Fernet.generate_key().decode() + "\n")
            log.info("generated the registry's secret key", extra={"fields": {"file": str(path)}})
        try:
            text = path.read_text()
            mode = path.stat().st_mode
        except OSError as exc:
            raise SecretKeyError(f"cannot read the secret key file {path}: {exc}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("the secret key file %s is readable by others; chmod 600 it", path)
        keys = [line.strip().encode() for line in text.splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
        try:
            return cls(keys)
        except (ValueError, SecretKeyError):
            raise SecretKeyError(
                f"the secret key file {path} must hold Fernet keys, one per line"
            ) from None

    def seal(self, plain: str) -> str:
        """`plain` encrypted with the primary key ("" stays "": nothing to hide)."""
        if not plain:
            return plain
        return _PREFIX + self._fernet.encrypt(plain.encode()).decode()

    def open(self, stored: str) -> str:
        """The plain text of a stored value (a legacy plain value as it is)."""
        if not stored.startswith(_PREFIX):
            return stored
        plain = self._opened.get(stored)
        if plain is not None:
            return plain
        try:
            plain = self._fernet.decrypt(stored[len(_PREFIX):].encode()).decode()
        except InvalidToken:
            raise SecretKeyError(_UNKNOWN_KEY) from None
        if len(self._opened) >= _OPENED_MAX:
            self._opened.clear()
        self._opened[stored] = plain
        return plain

    def reseal(self, stored: str) -> str | None:
        """The value sealed with the primary key, or None when it already is."""
        if not stored:
            return None
        if stored.startswith(_PREFIX):
            token = stored[len(_PREFIX):].encode()
            try:
                Fernet(self._primary).decrypt(token)
                return None
            except InvalidToken:
                pass
            try:
                return _PREFIX + self._fernet.rotate(token).decode()
            except InvalidToken:
                raise SecretKeyError(_UNKNOWN_KEY) from None
        return self.seal(stored)
