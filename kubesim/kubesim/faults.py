"""Fault injection: delay or fail matching requests, from Python or ``/_kubesim/faults``.

A rule matches a request by Kubernetes verb (``get``, ``list``, ``watch``, ``create``,
``update``, ``patch``, ``delete``, ``deletecollection``) or HTTP method (``GET`` ...), or ``*``,
and by path: a glob (``/api/v1/namespaces/*/secrets*``) or, prefixed with ``re:``, a regular
expression searched in the path. It adds ``latency`` seconds and/or answers ``status`` (a
Kubernetes Status error) for the next ``count`` matching requests (None: until cleared).
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class FaultRule:
    verb: str = "*"
    path: str = "*"
    status: int | None = None
    latency: float = 0.0
    count: int | None = None
    message: str = ""
    id: int = 0
    hits: int = field(default=0)

    def matches(self, verb: str, method: str, path: str) -> bool:
        if self.verb not in ("*", "", verb) and self.verb.upper() != method.upper():
            return False
        if self.path.startswith("re:"):
            return re.search(self.path[3:], path) is not None
        return fnmatch.fnmatchcase(path, self.path)

    @property
    def reason(self) -> str:
        return _REASONS.get(self.status or 500, "InternalError")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    latency: float
    rule: FaultRule | None  # the failing rule, if the request must fail


class Faults:
    """The active fault rules of one server (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(
        self,
        verb: str = "*",
        path: str = "*",
        status: int | None = None,
        count: int | None = None,
        latency: float = 0.0,
        message: str = "",
    ) -> FaultRule:
        """Add a rule; see the module docstring. Returns it (its ``id`` removes it)."""
        rule = FaultRule(verb, path, status, float(latency), count, message, next(self._ids))
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail(self, verb: str, path: str, status: int, count: int | None = 1) -> FaultRule:
        return self.add(verb=verb, path=path, status=status, count=count)

    def delay(self, seconds: float, verb: str = "*", path: str = "*",
              count: int | None = None) -> FaultRule:
        return self.add(verb=verb, path=path, latency=seconds, count=count)

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def decide(self, verb: str, method: str, path: str) -> FaultDecision:
        """Consume matching rules for one request: total latency and the failing rule if any."""
        latency = 0.0
        failing: FaultRule | None = None
        with self._lock:
            for rule in list(self._rules):
                if not rule.matches(verb, method, path):
                    continue
                if rule.status is not None and failing is not None:
                    continue
                rule.hits += 1
                latency += rule.latency
                if rule.status is not None:
                    failing = rule
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
        return FaultDecision(latency, failing)

    def add_from_dict(self, spec: dict[str, Any]) -> FaultRule:
        status = spec.get("status")
        count = spec.get("count")
        return self.add(
            verb=str(spec.get("verb", "*")),
            path=str(spec.get("path", "*")),
            status=int(status) if status is not None else None,
            count=int(count) if count is not None else None,
            latency=float(spec.get("latency", 0.0)),
            message=str(spec.get("message", "")),
        )
