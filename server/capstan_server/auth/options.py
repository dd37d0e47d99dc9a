"""The server's security options (`capstan-server` flags), in one value the app passes along."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SecurityOptions"]


@dataclass(frozen=True)
class SecurityOptions:
    #: `--auth-policy`: who may do what; without it (and without --dev) every call is allowed,
    #: so the server then listens only on loopback unless `insecure_no_auth`.
    auth_policy: Path | None = None
    insecure_no_auth: bool = False
    #: `--tls-cert`/`--tls-key`: serve gRPC over TLS and the gateway over HTTPS.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: `--client-ca`: ask for client certificates signed by these CAs (gRPC requires one, HTTPS
    #: checks one when sent); their subject names the caller.
    client_ca: Path | None = None
    #: `--secret-key-file`: the key that encrypts registry credentials (default
    #: `<data-dir>/secret.key`, generated on first start).
    secret_key_file: Path | None = None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None
