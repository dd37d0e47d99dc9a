"""Object name rules, per kind, as the API server checks them (messages as apimachinery words them).

Most kinds take an RFC 1123 subdomain; Namespaces an RFC 1123 label; Services a DNS-1035 label;
the RBAC kinds only a path segment (so ``system:controller:foo`` and
``cert-manager-cainjector:leaderelection`` are valid Role names).
"""

from __future__ import annotations

import re

SUBDOMAIN, LABEL, DNS1035, PATH_SEGMENT = "subdomain", "label", "dns1035", "path-segment"

_LABEL_RE = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_RE = _LABEL_RE + r"(\." + _LABEL_RE + ")*"
_DNS1035_RE = "[a-z]([-a-z0-9]*[a-z0-9])?"

_RULES: dict[str, tuple[re.Pattern[str], int, str]] = {
    SUBDOMAIN: (
        re.compile(f"^{_SUBDOMAIN_RE}$"),
        253,
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
        "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
        f"regex used for validation is '{_SUBDOMAIN_RE}')",
    ),
    LABEL: (
        re.compile(f"^{_LABEL_RE}$"),
        63,
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
        "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        f"regex used for validation is '{_LABEL_RE}')",
    ),
    DNS1035: (
        re.compile(f"^{_DNS1035_RE}$"),
        63,
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
        "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
        f"'abc-123', regex used for validation is '{_DNS1035_RE}')",
    ),
}


def name_problems(name: str, rule: str = SUBDOMAIN) -> list[str]:
    """Why ``name`` is not a valid name under ``rule`` (empty when it is)."""
    if rule == PATH_SEGMENT:
        if name in (".", ".."):
            return [f"may not be '{name}'"]
        return [f"may not contain '{c}'" for c in ("/", "%") if c in name]
    pattern, limit, message = _RULES[rule]
    problems = []
    if len(name) > limit:
        problems.append(f"must be no more than {limit} characters")
    if not pattern.match(name):
        problems.append(message)
    return problems
