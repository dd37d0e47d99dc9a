"""Issue 8: numbers out of range on the command line are usage errors (exit 2), never a
traceback, and nothing is sent."""

from __future__ import annotations

import pytest
from client.fake_capstan import FakeCapstan

from .runner import capstan


@pytest.mark.parametrize(
    "argv",
    [
        ("k8s-release-list", "--limit", "99999999999"),
        ("k8s-release-list", "--limit", "1001"),
        ("k8s-release-list", "--limit", "-1"),
        ("k8s-release-list", "--offset", "99999999999"),
        ("k8s-release-list", "--offset", "-5"),
        ("k8s-release-history", "etcd-release", "--max", "2147483648"),
        ("k8s-release-rollback", "etcd-release", "99999999999"),
        ("k8s-release-rollback", "etcd-release", "-1"),
        ("k8s-release-recover", "etcd-release", "--action", "rollback", "--stuck-after", "1e99"),
        ("k8s-release-create", "--timeout", "99999999999", "r/c"),
        ("k8s-release-create", "--timeout", "9" * 5000, "r/c"),
        ("k8s-release-create", "--timeout", "999999999h", "r/c"),
        ("k8s-repo-list", "--limit", "99999999999"),
        ("--max-message-bytes", "12", "k8s-release-list"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(
    fake: FakeCapstan, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    result = capstan(fake.target, *argv)

    assert result.code == 2, result.stderr
    printed = capsys.readouterr().err  # argparse reports on sys.stderr
    assert "error: argument" in printed
    assert "Traceback" not in printed + result.stderr
    assert fake.requests == []


def test_numbers_in_range_are_sent(fake: FakeCapstan) -> None:
    assert capstan(fake.target, "k8s-release-list", "--limit", "1000").code == 0
    assert fake.requests[-1][1].limit == 1000
