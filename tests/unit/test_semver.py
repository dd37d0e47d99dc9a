"""Versions and constraints pick the chart version helm (Masterminds/semver) would pick."""

from __future__ import annotations

import time

import pytest

from capstan_server.charts.semver import Constraint, SemverError, Version, latest


@pytest.mark.parametrize(
    ("constraint", "version", "allowed"),
    [
        # exact and `=`
        ("8.11.1", "8.11.1", True),
        ("=8.11.1", "8.11.2", False),
        ("v8.11.1", "8.11.1", True),
        # comparisons
        (">8.11.1", "8.11.2", True),
        (">=8.11.1", "8.11.1", True),
        ("<8.11.2", "8.11.1", True),
        ("<=8.11.1", "8.11.2", False),
        ("=>1.0", "1.0.0", True),
        ("=<1.0", "1.0.5", True),
        ("!=8.11.1", "8.11.2", True),
        ("!=8.11.1", "8.11.1", False),
        ("!=1.2.x", "1.2.7", False),
        ("!=1.2.x", "1.3.0", True),
        # missing parts and wildcards
        ("8.11", "8.11.9", True),
        ("8.11", "8.12.0", False),
        ("8", "8.99.0", True),
        ("1.2.x", "1.2.3", True),
        ("1.2.X", "1.3.0", False),
        ("1.*", "1.9.9", True),
        ("*", "9.9.9", True),
        ("x", "0.0.1", True),
        (">1.2", "1.2.9", False),  # >1.2 wants 1.3.0 or more
        (">1.2", "1.3.0", True),
        (">1", "1.9.0", False),
        ("<=1.2", "1.2.9", True),
        ("<1.2", "1.1.9", True),
        ("<1.2", "1.2.0", False),
        # tilde
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False),
        ("~1.2", "1.2.0", True),
        ("~1", "1.9.0", True),
        ("~1", "2.0.0", False),
        ("~>1.2.3", "1.2.4", True),
        # caret
        ("^8.11", "8.99.0", True),
        ("^8.11", "9.0.0", False),
        ("^1.2.3", "1.2.2", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.3", True),
        ("^0.0.3", "0.0.4", False),
        ("^0", "0.9.0", True),
        # ranges, AND, OR
        ("1.2 - 1.4", "1.4.9", True),
        ("1.2 - 1.4", "1.5.0", False),
        ("1.2.3 - 1.4.5", "1.2.2", False),
        (">=1.2, <2", "1.9.9", True),
        (">=1.2 <2", "2.0.0", False),
        (">= 1.2 , < 2", "1.5.0", True),
        ("<1 || >=3", "3.0.0", True),
        ("<1 || >=3", "2.0.0", False),
        ("^1.0 || ^3.0", "3.5.0", True),
        # prereleases only where a comparator names one
        ("*", "1.0.0-rc.1", False),
        (">=1.0.0", "1.0.1-rc.1", False),
        (">=1.0.0-0", "1.0.1-rc.1", True),
        ("^1.0.0-alpha", "1.0.0-beta", True),
        ("~1.2.3-beta.2", "1.2.3-beta.10", True),
        ("!=1.0.0", "2.0.0-rc.1", True),  # Masterminds' `!=` does not exclude prereleases
    ],
)
def test_constraints(constraint: str, version: str, allowed: bool) -> None:
    assert Constraint(constraint).allows(Version.parse(version)) is allowed


@pytest.mark.parametrize("bad", ["", "latest", ">>1", "1.2.3.4", "1 -", "~", "1.0.0 & 2"])
def test_improper_constraints(bad: str) -> None:
    with pytest.raises(SemverError):
        Constraint(bad)


def test_version_order_follows_semver() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ]
    shuffled = list(reversed(ordered))
    assert [str(v) for v in sorted(Version.parse(v) for v in shuffled)] == ordered
    assert Version.parse("1.0.0+build.1") == Version.parse("1.0.0")
    assert str(Version.parse("v1.2")) == "1.2.0"
    for bad in ("", "1.2.3.4", "x", "1.0.0-01"):
        with pytest.raises(SemverError):
            Version.parse(bad)


def test_latest_picks_like_helm_does() -> None:
    versions = ["8.11.2", "8.11.1", "9.0.0-rc.1", "not-a-version"]
    assert latest(versions) == "8.11.2"  # latest stable
    assert latest(versions, "~8.11.0") == "8.11.2"
    assert latest(versions, "8.11.1") == "8.11.1"
    assert latest(versions, "9.0.0-rc.1") == "9.0.0-rc.1"  # an exact prerelease is found
    assert latest(versions, ">=9.0.0-0") == "9.0.0-rc.1"
    assert latest(versions, "^7") is None
    assert latest(["1.0.0-rc.1"]) is None  # no stable version at all


# -- hostile input: bounded length, bounded numbers, no catastrophic backtracking -------------


@pytest.mark.parametrize(
    "text",
    [
        "1" * 8000,
        "x" * 8000,
        "9" * 4301,  # past Python's int-conversion limit
        "1" * 257,
    ],
)
def test_long_constraints_are_refused_at_once(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(SemverError, match="too long") as err:
        Constraint(text)
    with pytest.raises(SemverError, match="too long"):
        Version.parse(text)
    assert time.perf_counter() - started < 1.0
    assert len(str(err.value)) < 200


def test_numbers_beyond_uint64_are_refused() -> None:
    assert Version.parse(f"{2**64 - 1}.0.0").major == 2**64 - 1
    with pytest.raises(SemverError, match="too big"):
        Version.parse(f"{2**64}.0.0")
    with pytest.raises(SemverError):
        Constraint("1" * 200)


@pytest.mark.parametrize(
    "text",
    [
        "1  " * 85 + "!",  # took hours: white space could be split two ways per comparator
        "1 ," * 85 + "!",
        ">= " * 85 + "!",
        "1 - " * 63 + "!",
        "1.2.3-" + "a." * 125,
        " " * 255 + "!",
        "1" * 250 + " - ",
    ],
)
def test_constraint_parsing_never_backtracks(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(SemverError):
        Constraint(text)
    # Generous for a loaded machine: these take microseconds.
    assert time.perf_counter() - started < 1.0
