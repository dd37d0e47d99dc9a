"""Semantic versions and version constraints as Helm reads them (Masterminds/semver v3).

Helm resolves `--version` against a repository index with Masterminds' constraint syntax, so
Capstan must pick the same chart version helm would:

- operators `=`, `!=`, `>`, `<`, `>=`, `=>`, `<=`, `=<`, `~`, `~>`, `^`; none means `=`;
- wildcards `x`, `X`, `*` and missing parts (`1.2` is `1.2.x`);
- hyphen ranges `1.2 - 1.4.5` (`>= 1.2, <= 1.4.5`);
- AND by spaces or commas, OR by `||`;
- a prerelease version matches a comparator only when that comparator names a prerelease
  (`>=1.0.0-0` admits prereleases, `>=1.0.0` does not).

Versions and constraints come from callers and from repository indexes, so parsing is bounded:
at most `limits.MAX_VERSION_CHARS` characters, numbers of at most 20 digits (Masterminds reads
them as uint64), and regular expressions that cannot backtrack over a long run of digits.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from capstan_server.limits import MAX_VERSION_CHARS, echo

__all__ = ["Constraint", "SemverError", "Version", "latest"]


class SemverError(ValueError):
    """A version or constraint that cannot be parsed."""


#: Masterminds parses version numbers as uint64.
_MAX_NUMBER = 2**64 - 1
_MAX_DIGITS = len(str(_MAX_NUMBER))


def _check_length(text: str, what: str) -> None:
    if len(text) > MAX_VERSION_CHARS:
        raise SemverError(
            f"{what} {echo(text, 40)} is too long: {len(text)} characters, at most "
            f"{MAX_VERSION_CHARS} allowed"
        )


def _number(digits: str, text: str) -> int:
    # Checked before int(): Python refuses to convert more than 4300 digits, and bigger
    # numbers mean nothing to helm anyway.
    value = int(digits) if len(digits) <= _MAX_DIGITS else _MAX_NUMBER + 1
    if value > _MAX_NUMBER:
        raise SemverError(f"invalid semantic version {echo(text, 40)}: {digits[:20]}... is too big")
    return value


_IDENT = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_VERSION = re.compile(
    rf"^v?(?P<major>[0-9]+)(?:\.(?P<minor>[0-9]+))?(?:\.(?P<patch>[0-9]+))?"
    rf"(?:-(?P<pre>{_IDENT}))?(?:\+(?P<meta>{_IDENT}))?$"
)


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A semantic version; build metadata is kept but ignored when comparing, as in semver."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""
    metadata: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse loosely like Masterminds' NewVersion: `v` prefix and missing parts allowed."""
        _check_length(text, "version")
        m = _VERSION.match(text.strip())
        if m is None:
            raise SemverError(f"invalid semantic version {echo(text)}")
        pre = m["pre"] or ""
        for ident in pre.split(".") if pre else []:
            if ident.isdigit() and len(ident) > 1 and ident.startswith("0"):
                raise SemverError(
                    f"invalid semantic version {echo(text)}: prerelease {echo(ident, 40)} has "
                    "a leading zero"
                )
        return cls(
            _number(m["major"], text),
            _number(m["minor"] or "0", text),
            _number(m["patch"] or "0", text),
            pre,
            m["meta"] or "",
        )

    def compare(self, other: Version) -> int:
        """-1, 0 or 1 as self is lower than, equal to or higher than `other`."""
        mine = (self.major, self.minor, self.patch)
        theirs = (other.major, other.minor, other.patch)
        if mine != theirs:
            return -1 if mine < theirs else 1
        return _compare_prerelease(self.prerelease, other.prerelease)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.compare(other) == 0

    def __lt__(self, other: Version) -> bool:
        return self.compare(other) < 0

    def __hash__(self) -> int:
        return hash((self.major, self.minor, self.patch, self.prerelease))

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        if self.metadata:
            text += f"+{self.metadata}"
        return text


def _compare_prerelease(a: str, b: str) -> int:
    # A version without a prerelease ranks above any prerelease of it (semver 2.0 §11).
    if a == b:
        return 0
    if not a:
        return 1
    if not b:
        return -1
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x == y:
            continue
        if x.isdigit() and y.isdigit():
            return -1 if int(x) < int(y) else 1
        if x.isdigit() != y.isdigit():
            return -1 if x.isdigit() else 1  # numeric identifiers rank lower
        return -1 if x < y else 1
    return (len(a.split(".")) > len(b.split("."))) - (len(a.split(".")) < len(b.split(".")))


# -- constraints ----------------------------------------------------------------------------

# Masterminds' expressions run on Go's RE2, which never backtracks; Python's engine does. So the
# operators are tried longest first inside atomic groups `(?>...)`, versions and white space
# are matched atomically too (a version ends where its characters end, so nothing is lost),
# and comparators are told apart by a lookbehind instead of by splitting white space two ways.
# Validation runs in time linear in its input (`"1  " * 50 + "!"` took hours before).
_PART = r"[0-9xX*]+"
_CV = rf"v?({_PART})(\.{_PART})?(\.{_PART})?(-{_IDENT})?(\+{_IDENT})?"
_CV_ATOM = rf"(?>v?{_PART}(?:\.{_PART})?(?:\.{_PART})?(?:-{_IDENT})?(?:\+{_IDENT})?)"
_OPS = r"!=|>=|=>|<=|=<|~>|=|>|<|~|\^|"
_ONE = re.compile(rf"^\s*({_OPS})\s*({_CV})\s*$")
_FIND = re.compile(rf"((?>{_OPS}))\s*+({_CV_ATOM})")
_VALID_AND = re.compile(
    rf"^\s*+(?>{_OPS})\s*+{_CV_ATOM}\s*+(?:(?:,\s*+|(?<=\s))(?>{_OPS})\s*+{_CV_ATOM}\s*+)*+$"
)
# A range may start inside a token, as with Go's leftmost matching; it needs " - ", so a text
# without one is not scanned for ranges at all (only then can a match attempt start at every
# character, which MAX_VERSION_CHARS keeps cheap).
_RANGE = re.compile(rf"\s*+({_CV_ATOM})\s++-\s++({_CV_ATOM})\s*+")
_RANGE_HINT = re.compile(r"\s-\s")


def _is_x(part: str) -> bool:
    return part in ("x", "X", "*")


@dataclass(frozen=True)
class _Comparator:
    op: str
    version: Version
    text: str
    dirty: bool
    minor_dirty: bool
    patch_dirty: bool

    def allows(self, v: Version) -> bool:
        # Masterminds: a prerelease only satisfies a comparator that names a prerelease.
        if (
            v.prerelease
            and not self.version.prerelease
            and not (self.op == "!=" and not self.dirty)
        ):
            return False
        return _OPERATORS[self.op](self, v)


def _parse_comparator(text: str) -> _Comparator:
    m = _ONE.match(text)
    if m is None:
        raise SemverError(f"improper constraint: {text}")
    op, full, major, minor, patch, pre = m[1], m[2], m[3], m[4] or "", m[5] or "", m[6] or ""
    dirty = minor_dirty = patch_dirty = False
    if _is_x(major):
        version_text, dirty = f"0.0.0{pre}", True
    elif not minor or _is_x(minor[1:]):
        version_text, dirty, minor_dirty = f"{major}.0.0{pre}", True, True
    elif not patch or _is_x(patch[1:]):
        version_text, dirty, patch_dirty = f"{major}{minor}.0{pre}", True, True
    else:
        version_text = full
    try:
        version = Version.parse(version_text)
    except SemverError:
        raise SemverError(f"improper constraint: {text}") from None
    return _Comparator(op, version, f"{op}{full}", dirty, minor_dirty, patch_dirty)


def _tilde(c: _Comparator, v: Version) -> bool:
    if v < c.version:
        return False
    v0 = c.version
    if (v0.major, v0.minor, v0.patch) == (0, 0, 0) and not c.minor_dirty and not c.patch_dirty:
        return True  # ~0.0.0 and `*` accept everything
    if v.major != v0.major:
        return False
    return v.minor == v0.minor or c.minor_dirty


def _equal(c: _Comparator, v: Version) -> bool:
    return _tilde(c, v) if c.dirty else v == c.version


def _not_equal(c: _Comparator, v: Version) -> bool:
    v0 = c.version
    if c.dirty:
        if v.major != v0.major:
            return True
        if c.minor_dirty:
            return False
        if v.minor != v0.minor:
            return True
        if c.patch_dirty:
            return (
                bool(v.prerelease or v0.prerelease)
                and _compare_prerelease(v.prerelease, v0.prerelease) != 0
            )
    return v != v0


def _greater(c: _Comparator, v: Version) -> bool:
    v0 = c.version
    if not c.dirty:
        return v > v0
    if v.major != v0.major:
        return v.major > v0.major
    if c.minor_dirty:
        return False  # `>1` wants 2.0.0 or more
    if c.patch_dirty:
        return v.minor > v0.minor  # `>1.2` wants 1.3.0 or more
    return v > v0


def _less_equal(c: _Comparator, v: Version) -> bool:
    v0 = c.version
    if not c.dirty:
        return v <= v0
    if v.major > v0.major:
        return False
    return not (v.major == v0.major and v.minor > v0.minor and not c.minor_dirty)


def _caret(c: _Comparator, v: Version) -> bool:
    v0 = c.version
    if v < v0:
        return False
    if v0.major > 0 or c.minor_dirty:
        return v.major == v0.major
    if v.major > 0:
        return False
    if v0.minor > 0 or c.patch_dirty:
        return v.minor == v0.minor
    if v.minor > 0:
        return False
    return v.patch == v0.patch


_OPERATORS: dict[str, Callable[[_Comparator, Version], bool]] = {
    "": _equal,
    "=": _equal,
    "!=": _not_equal,
    ">": _greater,
    "<": lambda c, v: v < c.version,
    ">=": lambda c, v: v >= c.version,
    "=>": lambda c, v: v >= c.version,
    "<=": _less_equal,
    "=<": _less_equal,
    "~": _tilde,
    "~>": _tilde,
    "^": _caret,
}


class Constraint:
    """A version constraint such as `^8.11`, `>=1.2 <2 || 3.x` or `1.2 - 1.4`."""

    def __init__(self, text: str) -> None:
        _check_length(text, "version constraint")
        self.text = text
        rewritten = (
            _RANGE.sub(lambda m: f" >= {m[1]}, <= {m[2]} ", text)
            if _RANGE_HINT.search(text)
            else text
        )
        self._any_of: list[list[_Comparator]] = []
        for segment in rewritten.split("||"):
            if not _VALID_AND.match(segment):
                raise SemverError(f"improper constraint: {segment.strip() or text!r}")
            found = [m.group(0) for m in _FIND.finditer(segment)]
            self._any_of.append([_parse_comparator(part) for part in found])

    def allows(self, version: Version) -> bool:
        """Whether `version` satisfies the constraint."""
        return any(all(c.allows(version) for c in group) for group in self._any_of)

    def __str__(self) -> str:
        return self.text


def latest(versions: Iterable[str], constraint: str = "") -> str | None:
    """The highest of `versions` that satisfies `constraint`, as helm picks from an index.

    An exact string match wins first (so `1.0.0-rc.1` finds that prerelease); an empty
    constraint means the latest stable version. Versions that do not parse are skipped.
    """
    candidates = list(versions)
    if constraint and constraint in candidates:
        return constraint
    wanted = Constraint(constraint or "*")
    best: tuple[Version, str] | None = None
    for text in candidates:
        try:
            version = Version.parse(text)
        except SemverError:
            continue
        if wanted.allows(version) and (best is None or version > best[0]):
            best = (version, text)
    return best[1] if best else None
