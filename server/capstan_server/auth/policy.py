"""The authorization policy file (`--auth-policy FILE`): projects, subjects and OIDC settings.

A project is a list of grants, each a cluster (a registered name, or a glob such as `"*"`) and
namespace globs. A subject entry names who it is for by exactly one credential kind (a static
token's SHA-256, a client certificate's subject, an OIDC subject or group) and gives a role
(`viewer` < `editor` < `admin`) over a list of projects (`admin` ignores the list: it may do
everything). The README's security section has a full example; `load_policy` checks every
field and says where a mistake is, so a broken file is never half-applied.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from capstan_server.auth.keystone import KeystoneSettings, parse_keystone
from capstan_server.drivers.base import KubeIdentity
from capstan_server.errors import InvalidArgument
from capstan_server.values import load_yaml

__all__ = [
    "Binding",
    "ClusterSettings",
    "Grant",
    "OidcSettings",
    "Policy",
    "PolicyError",
    "Role",
    "SubjectRule",
    "load_policy",
    "parse_policy",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
#: The keys that say which credential a subject entry is for; exactly one per entry.
_CREDENTIAL_KEYS = ("token_sha256", "cert_subject", "oidc_subject", "group", "keystone_project")


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; the message says where."""


class Role(enum.IntEnum):
    """What a subject may do; each role includes the ones below it."""

    VIEWER = 1  # read releases, charts, repositories; list granted clusters and namespaces
    EDITOR = 2  # also create, upgrade, roll back, delete and recover releases
    ADMIN = 3  # everything, on every cluster: clusters and repositories too

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Grant:
    """Where a project's members may act: one cluster glob and its namespace globs, and what
    the project is inside that cluster (docs/tenancy.md): the Kubernetes user and groups helm
    and Capstan's reads impersonate for it, and what its charts may contain."""

    cluster: str
    namespaces: tuple[str, ...]
    #: Impersonated user; empty: `capstan:project:<project>`.
    user: str = ""
    #: Impersonated groups; empty: `capstan:projects`.
    groups: tuple[str, ...] = ()
    #: Cluster-scoped kinds its charts may hold (`Kind` or `Kind.group`); default none.
    cluster_resources: tuple[str, ...] = ()
    #: Namespaced kinds its charts may not hold (`Kind` or `Kind.group`).
    denied_kinds: tuple[str, ...] = ()

    def covers_cluster(self, cluster: str) -> bool:
        return fnmatchcase(cluster, self.cluster)

    def covers(self, cluster: str, namespace: str) -> bool:
        return self.covers_cluster(cluster) and any(
            fnmatchcase(namespace, pattern) for pattern in self.namespaces
        )


@dataclass(frozen=True)
class Binding:
    """A role over some grants; `grants is None` means everywhere (admin)."""

    role: Role
    grants: tuple[Grant, ...] | None
    #: The project names the grants come from (for a release's `project` field).
    projects: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubjectRule:
    """One entry of `subjects:`: a credential kind and value, a role and projects."""

    name: str
    role: Role
    projects: tuple[str, ...]
    token_sha256: str = ""
    cert_subject: str = ""
    oidc_subject: str = ""
    group: str = ""
    #: A Keystone token scoped to this project (and holding every one of `keystone_roles`).
    keystone_project: str = ""
    keystone_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class OidcSettings:
    """How JWT bearer tokens are checked (`oidc:` in the policy)."""

    issuer: str
    audience: str
    jwks_file: Path | None = None
    jwks_url: str = ""
    subject_claim: str = "sub"
    groups_claim: str = "groups"
    #: Seconds of clock skew allowed on `exp` and `nbf`.
    leeway: float = 30.0
    #: Algorithms accepted; never "none" and never a symmetric one (the JWKS holds public keys).
    algorithms: tuple[str, ...] = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")
    #: How long keys fetched from `jwks_url` are kept before they are fetched again.
    jwks_cache_seconds: float = 300.0


@dataclass(frozen=True)
class ClusterSettings:
    """`clusters:` in the policy: per cluster glob, how Capstan acts in it."""

    #: False: charts of every project run with the stored (usually cluster-admin) identity,
    #: so the cluster enforces nothing between projects (a start-up warning says so).
    impersonate: bool = True


@dataclass(frozen=True)
class Policy:
    """A parsed policy file."""

    projects: Mapping[str, tuple[Grant, ...]]
    subjects: tuple[SubjectRule, ...]
    oidc: OidcSettings | None = None
    #: How Keystone tokens are checked (`keystone:`), None without.
    keystone: KeystoneSettings | None = None
    #: Where it was read from (for log lines).
    source: str = ""
    by_token: Mapping[str, SubjectRule] = field(default_factory=dict, repr=False)
    #: Cluster glob -> settings; the first matching glob (in file order) applies.
    clusters: Mapping[str, ClusterSettings] = field(default_factory=dict)

    def binding(self, rule: SubjectRule) -> Binding:
        """The role and grants a subject entry gives."""
        if rule.role is Role.ADMIN:
            return Binding(rule.role, None, tuple(self.projects))
        grants = tuple(g for project in rule.projects for g in self.projects[project])
        return Binding(rule.role, grants, rule.projects)

    def cluster_settings(self, cluster: str) -> ClusterSettings:
        """The settings of the first `clusters:` glob matching `cluster` (defaults if none)."""
        for pattern, settings in self.clusters.items():
            if fnmatchcase(cluster, pattern):
                return settings
        return ClusterSettings()

    def project_of(self, cluster: str, namespace: str, preferred: Sequence[str] = ()) -> str:
        """The project a namespace belongs to: the first of `preferred` (the caller's own
        projects) that covers it, else the first project of the file that does; "" if none."""
        for name in (*preferred, *self.projects):
            grants = self.projects.get(name, ())
            if any(g.covers(cluster, namespace) for g in grants):
                return name
        return ""


def load_policy(path: Path) -> Policy:
    """Read and check a policy file; PolicyError says what is wrong and where."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the policy file {path}: {exc}") from None
    return parse_policy(text, source=str(path), base=path.parent)


def parse_policy(text: str, *, source: str = "<policy>", base: Path | None = None) -> Policy:
    """Parse policy YAML; relative `jwks_file` paths are taken from `base`."""
    try:
        documents = load_yaml(text, what="policy file")
    except InvalidArgument as exc:  # it names the line
        raise PolicyError(f"{source}: {exc.message}") from None
    if len(documents) > 1:
        raise PolicyError(f"{source}: expected one YAML document, got {len(documents)}")
    data = documents[0] if documents and documents[0] is not None else {}
    top = _mapping(data, source)
    _known(top, ("projects", "subjects", "oidc", "keystone", "clusters"), source)
    projects = _projects(_or(top.get("projects"), {}), f"{source}: projects")
    subjects = _subjects(_or(top.get("subjects"), []), projects, f"{source}: subjects")
    oidc = _oidc(top["oidc"], f"{source}: oidc", base) if top.get("oidc") else None
    keystone = None
    if top.get("keystone"):
        try:
            keystone = parse_keystone(top["keystone"], f"{source}: keystone")
        except ValueError as exc:
            raise PolicyError(str(exc)) from None
    if keystone is None and any(s.keystone_project for s in subjects):
        raise PolicyError(f"{source}: subjects use keystone_project, but there is no keystone:")
    if oidc is None and any(s.oidc_subject or s.group for s in subjects):
        raise PolicyError(f"{source}: subjects use oidc_subject or group, but there is no oidc:")
    by_token: dict[str, SubjectRule] = {}
    for rule in subjects:
        if rule.token_sha256:
            if rule.token_sha256 in by_token:
                raise PolicyError(
                    f"{source}: subjects {by_token[rule.token_sha256].name!r} and "
                    f"{rule.name!r} have the same token_sha256"
                )
            by_token[rule.token_sha256] = rule
    clusters = _clusters(_or(top.get("clusters"), {}), f"{source}: clusters")
    return Policy(projects, tuple(subjects), oidc=oidc, keystone=keystone, source=source,
                  by_token=by_token, clusters=clusters)


def _or(value: Any, empty: Any) -> Any:
    return empty if value is None else value


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _known(value: dict[str, Any], keys: Sequence[str], where: str) -> None:
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise PolicyError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; expected {', '.join(keys)}"
        )


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(f"{where}: expected a non-empty string")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PolicyError(f"{where}: expected a list of strings")
    return tuple(_string(v, f"{where}[{i}]") for i, v in enumerate(value))


def _projects(value: Any, where: str) -> dict[str, tuple[Grant, ...]]:
    projects: dict[str, tuple[Grant, ...]] = {}
    for name, grants in _mapping(value, where).items():
        here = f"{where}.{name}"
        if not isinstance(grants, list) or not grants:
            raise PolicyError(f"{here}: expected a non-empty list of {{cluster, namespaces}}")
        parsed = []
        for i, grant in enumerate(grants):
            at = f"{here}[{i}]"
            item = _mapping(grant, at)
            _known(item, ("cluster", "namespaces", "user", "groups", "cluster_resources",
                          "denied_kinds"), at)
            cluster = _string(item.get("cluster"), f"{at}.cluster")
            namespaces = _strings(item.get("namespaces"), f"{at}.namespaces")
            if not namespaces:
                raise PolicyError(f"{at}.namespaces: expected at least one pattern")
            parsed.append(Grant(
                cluster, namespaces,
                user=_string(item["user"], f"{at}.user") if "user" in item else "",
                groups=_strings(item.get("groups", []), f"{at}.groups"),
                cluster_resources=_strings(item.get("cluster_resources", []),
                                           f"{at}.cluster_resources"),
                denied_kinds=_strings(item.get("denied_kinds", []), f"{at}.denied_kinds"),
            ))
            try:  # they travel as helm flags and HTTP headers: checked here, not at a call
                KubeIdentity(parsed[-1].user or "x", parsed[-1].groups)
            except InvalidArgument as exc:
                raise PolicyError(f"{at}: {exc.message}") from None
        projects[str(name)] = tuple(parsed)
    return projects


def _clusters(value: Any, where: str) -> dict[str, ClusterSettings]:
    clusters: dict[str, ClusterSettings] = {}
    for pattern, entry in _mapping(value, where).items():
        here = f"{where}.{pattern}"
        item = _mapping(entry, here)
        _known(item, ("impersonate",), here)
        impersonate = item.get("impersonate", True)
        if not isinstance(impersonate, bool):
            raise PolicyError(f"{here}.impersonate: expected true or false")
        clusters[str(pattern)] = ClusterSettings(impersonate=impersonate)
    return clusters


def _subjects(value: Any, projects: Mapping[str, Any], where: str) -> list[SubjectRule]:
    if not isinstance(value, list):
        raise PolicyError(f"{where}: expected a list")
    rules = []
    for i, entry in enumerate(value):
        here = f"{where}[{i}]"
        item = _mapping(entry, here)
        _known(item, ("name", "role", "projects", "keystone_roles", *_CREDENTIAL_KEYS), here)
        kinds = [k for k in _CREDENTIAL_KEYS if k in item]
        if len(kinds) != 1:
            raise PolicyError(
                f"{here}: give exactly one of {', '.join(_CREDENTIAL_KEYS)} (got "
                f"{', '.join(kinds) or 'none'})"
            )
        kind = kinds[0]
        credential = _string(item[kind], f"{here}.{kind}")
        if kind == "token_sha256":
            credential = credential.lower()
            if not _HEX64.fullmatch(credential):
                raise PolicyError(
                    f"{here}.token_sha256: expected 64 hex digits (the sha256 of the token)"
                )
        default_name = credential if kind in ("group", "oidc_subject", "cert_subject") else ""
        if kind == "keystone_project":
            default_name = f"keystone:{credential}"
        name = _string(item.get("name", default_name), f"{here}.name")
        role_text = _string(item.get("role"), f"{here}.role")
        try:
            role = Role[role_text.upper()]
        except KeyError:
            raise PolicyError(
                f"{here}.role: {role_text!r} is not viewer, editor or admin"
            ) from None
        names = _strings(item.get("projects", []), f"{here}.projects")
        missing = [p for p in names if p not in projects]
        if missing:
            unknown = ", ".join(map(repr, missing))
            raise PolicyError(f"{here}.projects: unknown project(s) {unknown}")
        if role is not Role.ADMIN and not names:
            raise PolicyError(f"{here}.projects: a {role.label} needs at least one project")
        roles: tuple[str, ...] = ()
        if "keystone_roles" in item:
            if kind != "keystone_project":
                raise PolicyError(f"{here}.keystone_roles: only with keystone_project")
            roles = _strings(item["keystone_roles"], f"{here}.keystone_roles")
        credentials: dict[str, Any] = {kind: credential}
        if roles:
            credentials["keystone_roles"] = roles
        rules.append(SubjectRule(name=name, role=role, projects=names, **credentials))
    return rules


def _oidc(value: Any, where: str, base: Path | None) -> OidcSettings:
    item = _mapping(value, where)
    keys = ("issuer", "audience", "jwks_file", "jwks_url", "subject_claim", "groups_claim",
            "leeway_seconds", "algorithms", "jwks_cache_seconds")
    _known(item, keys, where)
    jwks_file = item.get("jwks_file")
    jwks_url = item.get("jwks_url", "")
    if bool(jwks_file) == bool(jwks_url):
        raise PolicyError(f"{where}: give exactly one of jwks_file and jwks_url")
    path = None
    if jwks_file:
        path = Path(_string(jwks_file, f"{where}.jwks_file")).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
    else:
        url = _string(jwks_url, f"{where}.jwks_url")
        if not url.startswith(("https://", "http://")):
            raise PolicyError(f"{where}.jwks_url: expected an https:// URL")
    defaults = OidcSettings(issuer="", audience="")
    algorithms = defaults.algorithms
    if "algorithms" in item:
        algorithms = _strings(item["algorithms"], f"{where}.algorithms")
        bad = [a for a in algorithms if a.lower() == "none" or a.startswith("HS")]
        if bad:
            raise PolicyError(
                f"{where}.algorithms: {', '.join(bad)} not allowed (public keys only)"
            )
    return OidcSettings(
        issuer=_string(item.get("issuer"), f"{where}.issuer"),
        audience=_string(item.get("audience"), f"{where}.audience"),
        jwks_file=path,
        jwks_url=str(jwks_url or ""),
        subject_claim=_string(item.get("subject_claim", "sub"), f"{where}.subject_claim"),
        groups_claim=_string(item.get("groups_claim", "groups"), f"{where}.groups_claim"),
        leeway=_seconds(item, "leeway_seconds", defaults.leeway, where),
        algorithms=algorithms,
        jwks_cache_seconds=_seconds(item, "jwks_cache_seconds", defaults.jwks_cache_seconds,
                                    where),
    )


def _seconds(item: dict[str, Any], key: str, default: float, where: str) -> float:
    if key not in item:
        return default
    number = item[key]
    if not isinstance(number, int | float) or isinstance(number, bool) or number < 0:
        raise PolicyError(f"{where}.{key}: expected a number of seconds >= 0")
    return float(number)

