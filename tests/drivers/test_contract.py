"""The driver contract: what every driver (memory, helm 3, helm 4) must do, exactly as Helm does.

Each test runs on every driver of `HARNESSES` (conftest.py). Together they cover every
operation of `capstan_server.drivers.base.Driver`, every status transition and every error
case its docstrings name.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from driver_harness import DriverUnderTest

from capstan_server.drivers.base import ClusterTarget, ReleaseRef, Status
from capstan_server.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OperationFailed,
)

DEPLOYED, SUPERSEDED, FAILED = Status.DEPLOYED, Status.SUPERSEDED, Status.FAILED
R9 = {"image": {"tag": "3.5.8-debian-11-r9"}}


async def wait_for_status(
    driver: DriverUnderTest, name: str, status: Status, within: float = 30
) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            if (await driver.api.get(driver.ref(name))).status is status:
                return
        except NotFound:
            pass
        assert asyncio.get_running_loop().time() < deadline, f"{name} never became {status}"
        await asyncio.sleep(0.05)


# -- install --------------------------------------------------------------------------------


async def test_install_deploys_revision_1(driver: DriverUnderTest) -> None:
    record = await driver.install("etcd-release", values=R9, labels={"capstan.io/type": "internal"})

    assert (record.name, record.namespace, record.revision) == ("etcd-release", driver.namespace, 1)
    assert record.status is DEPLOYED
    assert record.description == "Install complete"
    assert (record.chart_name, record.chart_version, record.app_version) == (
        "etcd",
        "8.11.1",
        "3.5.8",
    )
    assert dict(record.config) == R9
    assert record.labels["capstan.io/type"] == "internal"
    assert record.first_deployed is not None and record.last_deployed is not None
    assert await driver.api.get(driver.ref("etcd-release")) == record
    assert await driver.api.history(driver.ref("etcd-release")) == [record]


async def test_install_records_a_description(driver: DriverUnderTest) -> None:
    record = await driver.install("described", description="first of many")
    assert record.description == "first of many"


async def test_install_of_a_taken_name_is_already_exists(driver: DriverUnderTest) -> None:
    await driver.install("taken")
    with pytest.raises(AlreadyExists):
        await driver.install("taken", version="8.11.2")
    assert await driver.statuses("taken") == [(1, DEPLOYED)]


async def test_install_of_a_failed_release_name_is_already_exists(driver: DriverUnderTest) -> None:
    with pytest.raises(DeadlineExceeded):
        await driver.install(
            "broken", chart="never-ready", version="0.1.0", wait=True, timeout=driver.short_timeout
        )
    with pytest.raises(AlreadyExists):
        await driver.install("broken")


async def test_install_into_a_missing_namespace_is_not_found(driver: DriverUnderTest) -> None:
    with pytest.raises(NotFound):
        await driver.install("nowhere", namespace="no-such-namespace")
    names = {n.name for n in await driver.api.namespaces(driver.cluster)}
    assert "no-such-namespace" not in names
    assert await driver.api.list(driver.cluster, "no-such-namespace") == []


async def test_install_can_create_the_namespace(driver: DriverUnderTest) -> None:
    namespace = f"made-{driver.namespace}"[:63]
    record = await driver.install("here", namespace=namespace, create_namespace=True)
    assert record.namespace == namespace
    namespaces = {n.name: n for n in await driver.api.namespaces(driver.cluster)}
    assert namespaces[namespace].uid and namespaces[namespace].phase == "Active"


async def test_install_dry_run_changes_nothing(driver: DriverUnderTest) -> None:
    record = await driver.install("dry", values=R9, dry_run=True)

    assert (record.revision, record.status) == (1, Status.PENDING_INSTALL)
    assert record.description == "Dry run complete"
    assert dict(record.config) == R9
    with pytest.raises(NotFound):
        await driver.api.get(driver.ref("dry"))
    assert await driver.api.list(driver.cluster, driver.namespace) == []


async def test_install_that_times_out_is_failed(driver: DriverUnderTest) -> None:
    with pytest.raises(DeadlineExceeded):
        await driver.install(
            "slow", chart="never-ready", version="0.1.0", wait=True, timeout=driver.short_timeout
        )
    record = await driver.api.get(driver.ref("slow"))
    assert (record.revision, record.status) == (1, FAILED)
    assert record.description.startswith('Release "slow" failed')


async def test_atomic_install_that_fails_is_uninstalled(driver: DriverUnderTest) -> None:
    with pytest.raises(OperationFailed):
        await driver.install(
            "atomic",
            chart="never-ready",
            version="0.1.0",
            atomic=True,
            timeout=driver.short_timeout,
        )
    with pytest.raises(NotFound):
        await driver.api.get(driver.ref("atomic"))


async def test_pending_release_refuses_other_writes(driver: DriverUnderTest) -> None:
    install = asyncio.create_task(
        driver.install(
            "busy",
            chart="never-ready",
            version="0.1.0",
            wait=True,
            timeout=driver.short_timeout + 2,
        )
    )
    try:
        await wait_for_status(driver, "busy", Status.PENDING_INSTALL)
        with pytest.raises(Aborted, match="install"):
            await driver.upgrade("busy")
        with pytest.raises(Aborted):
            await driver.rollback("busy")
        with pytest.raises(Aborted):
            await driver.api.uninstall(driver.ref("busy"))
        with pytest.raises((Aborted, AlreadyExists)):
            await driver.install("busy")
    finally:
        with pytest.raises(DeadlineExceeded):
            await install
    assert await driver.statuses("busy") == [(1, FAILED)]


# -- upgrade --------------------------------------------------------------------------------


async def test_upgrade_supersedes_the_previous_revision(driver: DriverUnderTest) -> None:
    installed = await driver.install("etcd-release")
    upgraded = await driver.upgrade("etcd-release", version="8.11.2", values=R9)

    assert (upgraded.revision, upgraded.status) == (2, DEPLOYED)
    assert upgraded.description == "Upgrade complete"
    assert (upgraded.chart_version, upgraded.app_version) == ("8.11.2", "3.5.9")
    assert upgraded.first_deployed == installed.first_deployed
    assert await driver.statuses("etcd-release") == [(1, SUPERSEDED), (2, DEPLOYED)]


@pytest.mark.parametrize(
    ("new", "reuse", "reset", "expected"),
    [
        ({}, False, False, {"replicaCount": 3, "image": {"tag": "a"}}),  # kept
        ({"image": {"tag": "b"}}, False, False, {"image": {"tag": "b"}}),  # replaced
        (
            {"image": {"tag": "b"}, "replicaCount": None},
            True,
            False,
            {"image": {"tag": "b"}},
        ),  # merged; null deletes
        ({"image": {"tag": "b"}}, True, True, {"image": {"tag": "b"}}),  # reset wins
        ({}, False, True, {}),  # reset to the chart's defaults
    ],
    ids=["neither-no-values", "neither-new-values", "reuse", "reset-over-reuse", "reset-empty"],
)
async def test_upgrade_values_follow_helm(
    driver: DriverUnderTest, new: dict, reuse: bool, reset: bool, expected: dict
) -> None:
    await driver.install("vals", values={"replicaCount": 3, "image": {"tag": "a"}})
    record = await driver.upgrade("vals", values=new, reuse_values=reuse, reset_values=reset)
    assert dict(record.config) == expected


async def test_upgrade_of_an_unknown_release_is_not_found(driver: DriverUnderTest) -> None:
    with pytest.raises(NotFound):
        await driver.upgrade("ghost")


async def test_upgrade_dry_run_changes_nothing(driver: DriverUnderTest) -> None:
    await driver.install("dry-up")
    record = await driver.upgrade("dry-up", version="8.11.2", values=R9, dry_run=True)
    assert (record.revision, record.status, record.description) == (
        2,
        Status.PENDING_UPGRADE,
        "Dry run complete",
    )
    assert record.chart_version == "8.11.2"
    assert await driver.statuses("dry-up") == [(1, DEPLOYED)]
    assert (await driver.api.get(driver.ref("dry-up"))).chart_version == "8.11.1"


async def test_failed_upgrade_leaves_the_previous_revision_deployed(
    driver: DriverUnderTest,
) -> None:
    await driver.install("fragile")
    with pytest.raises(DeadlineExceeded):
        await driver.upgrade(
            "fragile", chart="never-ready", version="0.1.0", wait=True, timeout=driver.short_timeout
        )
    failed = await driver.api.get(driver.ref("fragile"))
    assert failed.description.startswith('Upgrade "fragile" failed')
    assert await driver.statuses("fragile") == [(1, DEPLOYED), (2, FAILED)]

    # The next upgrade starts from the deployed revision, which it supersedes.
    record = await driver.upgrade("fragile", version="8.11.2")
    assert record.revision == 3
    assert await driver.statuses("fragile") == [(1, SUPERSEDED), (2, FAILED), (3, DEPLOYED)]


async def test_atomic_upgrade_that_fails_rolls_back(driver: DriverUnderTest) -> None:
    await driver.install("atomic-up", values=R9)
    with pytest.raises(OperationFailed):
        await driver.upgrade(
            "atomic-up",
            chart="never-ready",
            version="0.1.0",
            atomic=True,
            timeout=driver.short_timeout,
        )
    assert await driver.statuses("atomic-up") == [(1, SUPERSEDED), (2, FAILED), (3, DEPLOYED)]
    latest = await driver.api.get(driver.ref("atomic-up"))
    assert latest.description == "Rollback to 1"
    assert (latest.chart_name, dict(latest.config)) == ("etcd", R9)


async def test_upgrade_prunes_history_to_history_max(driver: DriverUnderTest) -> None:
    await driver.install("pruned")
    for _ in range(4):
        await driver.upgrade("pruned", history_max=3)
    assert await driver.statuses("pruned") == [(3, SUPERSEDED), (4, SUPERSEDED), (5, DEPLOYED)]


async def test_upgrade_keeps_and_adds_labels(driver: DriverUnderTest) -> None:
    await driver.install(
        "labelled", labels={"capstan.io/release-id": "abc", "capstan.io/type": "internal"}
    )
    record = await driver.upgrade("labelled", labels={"capstan.io/repo-id": "r1"})
    assert record.labels["capstan.io/release-id"] == "abc"
    assert record.labels["capstan.io/type"] == "internal"
    assert record.labels["capstan.io/repo-id"] == "r1"


# -- rollback -------------------------------------------------------------------------------


async def test_rollback_makes_a_new_revision_from_an_old_one(driver: DriverUnderTest) -> None:
    await driver.install("etcd-release")
    await driver.upgrade("etcd-release", values=R9)
    await driver.upgrade("etcd-release", version="8.11.2", values=R9)

    record = await driver.rollback("etcd-release", 2)

    assert (record.revision, record.status, record.description) == (4, DEPLOYED, "Rollback to 2")
    assert (record.chart_version, dict(record.config)) == ("8.11.1", R9)
    assert await driver.statuses("etcd-release") == [
        (1, SUPERSEDED),
        (2, SUPERSEDED),
        (3, SUPERSEDED),
        (4, DEPLOYED),
    ]


async def test_rollback_to_0_means_the_previous_revision(driver: DriverUnderTest) -> None:
    await driver.install("back", values={"replicaCount": 1})
    await driver.upgrade("back", values={"replicaCount": 2})
    record = await driver.rollback("back")
    assert (record.revision, record.description) == (3, "Rollback to 1")
    assert dict(record.config) == {"replicaCount": 1}


async def test_rollback_to_an_unknown_revision_is_not_found(driver: DriverUnderTest) -> None:
    await driver.install("short")
    with pytest.raises(NotFound):
        await driver.rollback("short", 7)
    with pytest.raises(NotFound):  # one revision: there is no previous one
        await driver.rollback("short")
    assert await driver.statuses("short") == [(1, DEPLOYED)]


async def test_rollback_of_an_unknown_release_is_not_found(driver: DriverUnderTest) -> None:
    with pytest.raises(NotFound):
        await driver.rollback("ghost", 1)


# -- uninstall ------------------------------------------------------------------------------


async def test_uninstall_removes_the_release_and_its_history(driver: DriverUnderTest) -> None:
    await driver.install("gone")
    await driver.upgrade("gone", values=R9)
    last = await driver.api.uninstall(driver.ref("gone"))

    assert (last.name, last.revision) == ("gone", 2)
    with pytest.raises(NotFound):
        await driver.api.get(driver.ref("gone"))
    with pytest.raises(NotFound):
        await driver.api.history(driver.ref("gone"))
    assert await driver.api.list(driver.cluster, driver.namespace) == []
    # The name is free again, and its history starts over.
    assert (await driver.install("gone")).revision == 1


async def test_uninstall_of_an_unknown_release_is_not_found(driver: DriverUnderTest) -> None:
    with pytest.raises(NotFound):
        await driver.api.uninstall(driver.ref("ghost"))


# -- reads ----------------------------------------------------------------------------------


async def test_get_finds_any_revision(driver: DriverUnderTest) -> None:
    await driver.install("revs")
    await driver.upgrade("revs", version="8.11.2")
    first = await driver.api.get(driver.ref("revs"), 1)
    assert (first.revision, first.status, first.chart_version) == (1, SUPERSEDED, "8.11.1")
    with pytest.raises(NotFound):
        await driver.api.get(driver.ref("revs"), 3)
    with pytest.raises(NotFound):
        await driver.api.get(driver.ref("ghost"))
    with pytest.raises(NotFound):
        await driver.api.history(driver.ref("ghost"))


async def test_list_shows_the_latest_revision_of_each_release(driver: DriverUnderTest) -> None:
    await driver.install("one")
    await driver.install("two", labels={"capstan.io/type": "internal"})
    await driver.upgrade("two", labels={"capstan.io/type": "internal"})

    listed = {r.name: r.revision for r in await driver.api.list(driver.cluster, driver.namespace)}
    assert listed == {"one": 1, "two": 2}
    by_name = await driver.api.list(driver.cluster, driver.namespace, name="two")
    assert [r.name for r in by_name] == ["two"]
    by_label = await driver.api.list(
        driver.cluster, driver.namespace, labels={"capstan.io/type": "internal"}
    )
    assert [r.name for r in by_label] == ["two"]
    assert await driver.api.list(driver.cluster, driver.namespace, name="three") == []
    # Newest first.
    assert [r.name for r in await driver.api.list(driver.cluster, driver.namespace)] == [
        "two",
        "one",
    ]


async def test_namespaces_include_the_standard_ones(driver: DriverUnderTest) -> None:
    names = {n.name for n in await driver.api.namespaces(driver.cluster)}
    assert {"default", "kube-system", driver.namespace} <= names


async def test_check_cluster(driver: DriverUnderTest) -> None:
    await driver.api.check_cluster(driver.cluster)
    broken = ClusterTarget(driver.cluster.id + "-broken", "broken", "clusters: [unterminated")
    with pytest.raises(InvalidArgument):
        await driver.api.check_cluster(broken)


async def test_resources_are_the_objects_of_the_manifest(driver: DriverUnderTest) -> None:
    record = await driver.install("objects")
    objects = await driver.api.resources(record, driver.cluster)
    if not driver.renders:
        assert objects == []
        return
    kinds = {o.kind for o in objects}
    assert {"Service", "Secret", "StatefulSet"} <= kinds
    assert all(o.object is not None for o in objects)


async def test_watch_of_a_settled_release_ends_at_once(driver: DriverUnderTest) -> None:
    await driver.install("calm")
    snapshots = [s async for s in driver.api.watch(driver.ref("calm"), timeout=30)]
    assert snapshots and snapshots[-1].settled
    assert snapshots[-1].record.status is DEPLOYED
    with pytest.raises(NotFound):
        async for _ in driver.api.watch(driver.ref("ghost"), timeout=1):
            pass


async def test_watch_follows_a_pending_release_until_it_settles(driver: DriverUnderTest) -> None:
    install = asyncio.create_task(
        driver.install(
            "watched",
            chart="never-ready",
            version="0.1.0",
            wait=True,
            timeout=driver.short_timeout + 1,
        )
    )
    await wait_for_status(driver, "watched", Status.PENDING_INSTALL)
    snapshots = [s async for s in driver.api.watch(driver.ref("watched"), timeout=60)]
    with pytest.raises(DeadlineExceeded):
        await install
    assert snapshots[0].record.status is Status.PENDING_INSTALL
    assert not snapshots[0].settled
    assert snapshots[-1].settled and snapshots[-1].record.status is FAILED


# -- stuck releases -------------------------------------------------------------------------


async def test_a_stuck_release_refuses_writes_until_marked_failed(driver: DriverUnderTest) -> None:
    await driver.install("stuck", values=R9)
    since = datetime.now(UTC) - timedelta(hours=1)
    await driver.make_stuck(driver.ref("stuck"), Status.PENDING_UPGRADE, since)

    with pytest.raises(Aborted, match="upgrade") as aborted:
        await driver.upgrade("stuck")
    assert since.strftime("%Y-%m-%dT%H:%M") in aborted.value.message
    with pytest.raises(Aborted):
        await driver.rollback("stuck", 1)

    record = await driver.api.mark_failed(driver.ref("stuck"), "gave up")
    assert (record.revision, record.status, record.description) == (2, FAILED, "gave up")

    rolled = await driver.rollback("stuck", 1)
    assert (rolled.revision, rolled.status, rolled.description) == (3, DEPLOYED, "Rollback to 1")
    assert dict(rolled.config) == R9


async def test_mark_failed_needs_a_pending_release(driver: DriverUnderTest) -> None:
    await driver.install("fine")
    with pytest.raises(FailedPrecondition):
        await driver.api.mark_failed(driver.ref("fine"), "no")
    assert await driver.statuses("fine") == [(1, DEPLOYED)]
    with pytest.raises(NotFound):
        await driver.api.mark_failed(driver.ref("ghost"), "no")


async def test_releases_are_per_cluster_and_namespace(driver: DriverUnderTest) -> None:
    await driver.install("twin")
    other = f"other-{driver.namespace}"[:63]
    await driver.install("twin", namespace=other, create_namespace=True, version="8.11.2")
    here = await driver.api.get(driver.ref("twin"))
    there = await driver.api.get(ReleaseRef(driver.cluster, other, "twin"))
    assert (here.chart_version, there.chart_version) == ("8.11.1", "8.11.2")
    assert [r.name for r in await driver.api.list(driver.cluster, other)] == ["twin"]
