"""Client-certificate identities for mutual TLS: the names a policy's `cert_subject` matches.

A certificate (verified by the TLS layer against `--client-ca` before this sees it) is named
by its subject's common name, as `CN=<name>`, and by each of its URI subject alternative names
(e.g. `spiffe://example.org/ns/prod/sa/deployer`).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["identities_from_der", "identities_from_pem"]


def identities_from_pem(pem: bytes) -> list[str]:
    return _identities(x509.load_pem_x509_certificate(pem))


def identities_from_der(der: bytes) -> list[str]:
    return _identities(x509.load_der_x509_certificate(der))


def _identities(cert: x509.Certificate) -> list[str]:
    names = [
        f"CN={attr.value}"
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if isinstance(attr.value, str)
    ]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return names
    return names + [str(uri) for uri in san.get_values_for_type(x509.UniformResourceIdentifier)]
