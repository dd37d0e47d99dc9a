"""Validation of the names users give Capstan: releases, namespaces, clusters and repositories.

Release names follow Helm's own rule (`chartutil.ValidateReleaseName`), so a name that passes
here is also accepted by helm and can never be read by helm as a flag (it cannot start with `-`).
"""

from __future__ import annotations

import re
import time

from capstan_server.errors import InvalidArgument
from capstan_server.limits import clip, echo

#: Helm's release name pattern: DNS-1123 labels joined by dots.
_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: Helm's limit: release names end up in object names and labels that allow 63 characters,
#: and charts append suffixes of their own.
MAX_RELEASE_NAME = 53
#: A Kubernetes DNS-1123 label (namespace and cluster names).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_DNS_LABEL = 63
#: Repository names may contain dots (`bitnami.new`), like DNS subdomains.
_REPO_NAME = _RELEASE_NAME
MAX_REPO_NAME = 63
#: The patterns and lengths above, for the OpenAPI document (ECMA-262 reads them the same).
RELEASE_NAME_RULE = (_RELEASE_NAME.pattern, MAX_RELEASE_NAME)
DNS_LABEL_RULE = (_DNS_LABEL.pattern, MAX_DNS_LABEL)
REPO_NAME_RULE = (_REPO_NAME.pattern, MAX_REPO_NAME)


def _check(kind: str, value: str, pattern: re.Pattern[str], limit: int, rule: str) -> str:
    if not value:
        raise InvalidArgument(f"{kind} is required")
    field = kind.replace(" ", "_")
    if len(value) > limit:
        raise InvalidArgument(
            f"invalid {kind} {echo(value, 80)}: {len(value)} characters, at most {limit} allowed",
            details=[{"field": field, "value": clip(value), "reason": "too long"}],
        )
    if not pattern.fullmatch(value):
        raise InvalidArgument(
            f"invalid {kind} {echo(value)}: {rule}",
            details=[{"field": field, "value": clip(value), "reason": rule}],
        )
    return value


def validate_release_name(name: str) -> str:
    """Return `name` if Helm accepts it as a release name, else raise InvalidArgument."""
    return _check(
        "release name",
        name,
        _RELEASE_NAME,
        MAX_RELEASE_NAME,
        "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
    )


def validate_namespace(name: str) -> str:
    """Return `name` if it is a valid Kubernetes namespace name (a DNS-1123 label)."""
    return _check(
        "namespace",
        name,
        _DNS_LABEL,
        MAX_DNS_LABEL,
        "use lower-case letters, digits and '-', starting and ending with a letter or digit",
    )


def validate_cluster_name(name: str) -> str:
    """Return `name` if it is a valid cluster name (a DNS-1123 label)."""
    return _check(
        "cluster name",
        name,
        _DNS_LABEL,
        MAX_DNS_LABEL,
        "use lower-case letters, digits and '-', starting and ending with a letter or digit",
    )


def validate_repo_name(name: str) -> str:
    """Return `name` if it is a valid chart repository name."""
    return _check(
        "repository name",
        name,
        _REPO_NAME,
        MAX_REPO_NAME,
        "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
    )


def generate_release_name(chart: str, *, now: float | None = None, attempt: int = 0) -> str:
    """A release name for a chart when the user gives none, as `helm install --generate-name`
    does: `<chart>-<unix time>`; later attempts (after a collision) append `-<attempt>`."""
    stamp = str(int(time.time() if now is None else now))
    suffix = f"-{stamp}" + (f"-{attempt}" if attempt else "")
    base = re.sub(r"[^a-z0-9-]+", "-", chart.lower()).strip("-") or "release"
    base = base[: MAX_RELEASE_NAME - len(suffix)].rstrip("-") or "r"
    return validate_release_name(base + suffix)
