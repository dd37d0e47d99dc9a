"""Label selectors (``a=b,c!=d,e in (f,g),!h``) and field selectors (``metadata.name=x``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        # "!=" and "notin" match objects without the label too
        return value is None or value not in self.values


class LabelSelector:
    """A parsed label selector; an empty selector matches everything."""

    __slots__ = ("requirements",)

    def __init__(self, requirements: list[Requirement]) -> None:
        self.requirements = requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)

    @classmethod
    def from_dict(cls, selector: Mapping[str, Any] | None) -> LabelSelector:
        """From a ``metav1.LabelSelector`` object (``matchLabels``/``matchExpressions``)."""
        reqs: list[Requirement] = []
        if not selector:
            return cls(reqs)
        for k, v in (selector.get("matchLabels") or {}).items():
            reqs.append(Requirement(str(k), "=", frozenset([str(v)])))
        ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
        for expr in selector.get("matchExpressions") or []:
            op = ops.get(str(expr.get("operator")))
            if op is None:
                raise BadRequest(f"invalid label selector operator {expr.get('operator')!r}")
            values = frozenset(str(x) for x in expr.get("values") or [])
            reqs.append(Requirement(str(expr.get("key")), op, values))
        return cls(reqs)


_TOKEN = re.compile(
    r"\s*(?:(?P<op>==|!=|=|\(|\)|,|!)|(?P<word>[A-Za-z0-9_.\-/]+))"
)


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise BadRequest(f"unable to parse requirement: invalid label selector {text!r}")
        out.append(m.group("op") or m.group("word"))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the string form used in ``?labelSelector=``. Raises `BadRequest` when malformed."""
    if not text or not text.strip():
        return LabelSelector([])
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def expect_word() -> str:
        nonlocal i
        if i >= len(toks) or toks[i] in ("==", "!=", "=", "(", ")", ",", "!"):
            raise BadRequest(f"invalid label selector {text!r}")
        i += 1
        return toks[i - 1]

    while i < len(toks):
        if toks[i] == "!":
            i += 1
            reqs.append(Requirement(expect_word(), "!"))
        else:
            key = expect_word()
            nxt = toks[i] if i < len(toks) else ","
            if nxt in ("=", "==", "!="):
                i += 1
                value = ""
                if i < len(toks) and toks[i] not in (",",):
                    value = expect_word()
                reqs.append(Requirement(key, "!=" if nxt == "!=" else "=", frozenset([value])))
            elif nxt in ("in", "notin"):
                i += 1
                if i >= len(toks) or toks[i] != "(":
                    raise BadRequest(f"invalid label selector {text!r}: expected '('")
                i += 1
                values: set[str] = set()
                while i < len(toks) and toks[i] != ")":
                    if toks[i] == ",":
                        i += 1
                        continue
                    values.add(expect_word())
                if i >= len(toks):
                    raise BadRequest(f"invalid label selector {text!r}: expected ')'")
                i += 1
                reqs.append(Requirement(key, nxt, frozenset(values)))
            elif nxt == ",":
                reqs.append(Requirement(key, "exists"))
            else:
                raise BadRequest(f"invalid label selector {text!r}")
        if i < len(toks):
            if toks[i] != ",":
                raise BadRequest(f"invalid label selector {text!r}")
            i += 1
    return LabelSelector(reqs)


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    value: str
    negate: bool


class FieldSelector:
    """A parsed field selector over dotted paths (``metadata.name``, ``status.phase``)."""

    __slots__ = ("requirements",)

    def __init__(self, requirements: list[FieldRequirement]) -> None:
        self.requirements = requirements

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for req in self.requirements:
            cur: Any = obj
            for part in req.path:
                cur = cur.get(part) if isinstance(cur, Mapping) else None
            actual = _field_text(cur)
            if (actual == req.value) == req.negate:
                return False
        return True

    def exact(self, field: str) -> str | None:
        """The value required by ``field=value`` if present (used to narrow a scan)."""
        path = tuple(field.split("."))
        for req in self.requirements:
            if req.path == path and not req.negate:
                return req.value
        return None


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_field_selector(text: str | None) -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector([])
    reqs = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(==|!=|=)\s*(.*)", part)
        if not m:
            raise BadRequest(f"invalid field selector {part!r}")
        reqs.append(FieldRequirement(tuple(m.group(1).split(".")), m.group(3), m.group(2) == "!="))
    return FieldSelector(reqs)
