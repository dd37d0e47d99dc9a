"""`--wait` on create, upgrade and rollback shows the operation's progress from WatchRelease on
stderr: a bar redrawn in place on a terminal, plain lines otherwise; stdout keeps the result."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from client.fake_capstan import Failure, FakeCapstan

from capstan.cli.progress import ProgressDisplay
from capstan.v1 import release_pb2

from .runner import TTY, capstan

NOT_YET = Failure(grpc.StatusCode.NOT_FOUND, "release etcd-release not found")


def release(status: str, version: int = 1, progress: int = 0) -> release_pb2.Release:
    return release_pb2.Release(
        name="etcd-release", namespace="default", cluster="test122", status=status,
        version=version, progress=progress,
    )


def event(status: str, progress: int, ready: bool | None = None) -> release_pb2.ReleaseEvent:
    result = release_pb2.ReleaseEvent(release=release(status, progress=progress))
    if ready is not None:
        result.resources.add(
            kind="statefulset", name="etcd-release", ready=ready,
            message="1/1 ready" if ready else "0/1 ready",
        )
    return result


SETTLED = release_pb2.ReleaseEvent(release=release("deployed"), settled=True)


def install_events(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
    for item in (event("pending-install", 10, ready=False), event("pending-install", 80, True)):
        yield item
        time.sleep(0.05)
    yield SETTLED


def slow(answer: release_pb2.Release | Failure, seconds: float = 1.2) -> Callable[..., Any]:
    def respond(request: Any, context: grpc.ServicerContext) -> Any:
        time.sleep(seconds)
        if isinstance(answer, Failure):
            context.abort_with_status(answer.status())
        return answer

    return respond


def script_install(fake: FakeCapstan, outcome: release_pb2.Release | Failure) -> None:
    # The release does not exist until the server has started installing it; once settled,
    # every new watch answers one settled event.
    fake.reply("CreateRelease", slow(outcome))
    fake.reply("WatchRelease", NOT_YET, install_events, [SETTLED])


CREATE = [
    "k8s-release-create", "--wait", "--cluster", "test122", "--name", "etcd-release",
    "bitnami-new/etcd",
]


def test_plain_lines_when_stderr_is_not_a_terminal(fake: FakeCapstan) -> None:
    script_install(fake, release("deployed"))

    result = capstan(fake.target, *CREATE)

    assert result.code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "etcd-release: pending-install, waiting for statefulset/etcd-release (0/1 ready) [10%]",
        "etcd-release: pending-install [80%]",
        "etcd-release: deployed (revision 1) [100%]",
    ]
    assert "STATUS:       deployed" in result.stdout
    watched = fake.received("WatchRelease")[-1]
    assert (watched.id, watched.cluster, watched.namespace) == (
        "etcd-release", "test122", "default"
    )


def test_a_bar_redrawn_in_place_on_a_terminal(fake: FakeCapstan) -> None:
    script_install(fake, release("deployed"))
    stderr = TTY()

    result = capstan(fake.target, *CREATE, stderr=stderr)

    assert result.code == 0, result.stderr
    frames = result.stderr.split("\r")[1:]
    assert frames[0].startswith("[##----------------------]  10% etcd-release: pending-install")
    assert frames[-1] == (
        "[########################] 100% etcd-release: deployed (revision 1)\x1b[K\n"
    )
    assert result.stderr.count("\n") == 1
    assert result.stdout.startswith("NAME:")


def test_a_failed_operation_ends_the_bar_before_the_error(fake: FakeCapstan) -> None:
    script_install(fake, Failure(grpc.StatusCode.DEADLINE_EXCEEDED, "timed out waiting"))

    result = capstan(fake.target, *CREATE, stderr=TTY())

    assert result.code == 9
    assert result.stderr.endswith("\x1b[K\nError: DEADLINE_EXCEEDED: timed out waiting\n")
    assert result.stdout == ""


def test_upgrade_and_rollback_watch_their_release(fake: FakeCapstan) -> None:
    upgraded = release("deployed", version=2)
    fake.reply("UpgradeRelease", slow(upgraded, 0.5))
    fake.reply("RollbackRelease", slow(release("deployed", version=3), 0.5))
    fake.reply("WatchRelease", [SETTLED])

    upgrade = capstan(
        fake.target, "k8s-release-upgrade", "--wait", "--namespace", "default", "etcd-release",
        "bitnami-new/etcd",
    )
    rollback = capstan(fake.target, "k8s-release-rollback", "--wait", "etcd-release", "1")

    assert (upgrade.code, rollback.code) == (0, 0)
    # Until the operation visibly starts, a settled event is the old revision: not shown.
    assert upgrade.stderr == "etcd-release: deployed (revision 2) [100%]\n"
    assert rollback.stderr == "etcd-release: deployed (revision 3) [100%]\n"
    assert {(w.id, w.namespace) for w in fake.received("WatchRelease")} == {
        ("etcd-release", "default"), ("etcd-release", ""),
    }


def test_no_watch_without_wait_for_dry_runs_or_generated_names(fake: FakeCapstan) -> None:
    fake.reply("CreateRelease", release("deployed"))

    assert capstan(fake.target, "k8s-release-create", "--name", "x", "r/c").stderr == ""
    assert capstan(fake.target, "k8s-release-create", "--wait", "--dry-run", "--name", "x",
                   "r/c").stderr == ""
    assert capstan(fake.target, "k8s-release-create", "--wait", "r/c").code == 0
    assert fake.received("WatchRelease") == []


def test_the_bar_fits_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    stream = TTY()
    display = ProgressDisplay(stream, "a-release-with-a-rather-long-name")

    display.update(event("pending-upgrade", 40, ready=False))
    display.abandon()

    frame = stream.getvalue()
    assert frame.startswith("\r[#########---------------]  40% a-release-with-a-rather-lon")
    assert frame.endswith("\x1b[K\n")
    assert len(frame.removeprefix("\r").removesuffix("\x1b[K\n")) == 59


def test_plain_lines_name_what_is_being_waited_for() -> None:
    busy = event("pending-upgrade", 40, ready=False)
    for _ in range(30):
        busy.resources.add(kind="deployment", name="web", ready=False, message="0/3 ready")
    stream = io.StringIO()

    ProgressDisplay(stream, "etcd-release").update(busy)

    assert stream.getvalue() == (
        "etcd-release: pending-upgrade, waiting for statefulset/etcd-release (0/1 ready)"
        " and 30 more [40%]\n"
    )


def test_a_queued_write_shows_its_place_in_the_queue() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, "etcd-release")
    for position in (2, 1):
        display.update(release_pb2.ReleaseEvent(
            release=release_pb2.Release(name="etcd-release"), queued=True,
            queue_position=position))

    assert stream.getvalue().splitlines() == [
        "etcd-release: queued, waiting for a helm process (position 2) [0%]",
        "etcd-release: queued, waiting for a helm process (position 1) [0%]",
    ]
