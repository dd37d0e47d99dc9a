"""The simulated controllers, driven through the store: what each workload creates and reports.

Controllers react synchronously to store writes, so most checks need no waiting; only
time-based behaviour (``kubesim.io/ready-after``, progress deadlines, Job TTLs) runs on a loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest

from kubesim import controllers
from kubesim.controllers import (
    FAIL_ANNOTATION,
    NEVER_READY_ANNOTATION,
    NODE_NAME,
    READY_AFTER_ANNOTATION,
    ControllerManager,
)
from kubesim.objects import Obj
from kubesim.store import Store

NS = "default"


def deployment(name: str, replicas: int = 2, image: str = "nginx:1.27",
               annotations: dict[str, str] | None = None) -> Obj:
    md: dict[str, Any] = {"name": name, "namespace": NS, "labels": {"app": name}}
    if annotations:
        md["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": md,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image,
                                         "ports": [{"name": "http", "containerPort": 8080}]}]},
            },
        },
    }


def statefulset(name: str, replicas: int = 3, policy: str = "OrderedReady",
                annotations: dict[str, str] | None = None) -> Obj:
    obj = deployment(name, replicas, "etcd:3", annotations)
    obj["kind"] = "StatefulSet"
    obj["spec"]["serviceName"] = f"{name}-headless"
    obj["spec"]["podManagementPolicy"] = policy
    obj["spec"]["volumeClaimTemplates"] = [{
        "metadata": {"name": "data", "labels": {"tier": "storage"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}}},
    }]
    return obj


def job(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> Obj:
    md: dict[str, Any] = {"name": name, "namespace": NS}
    if annotations:
        md["annotations"] = annotations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": md,
        "spec": {
            "template": {"spec": {"restartPolicy": "Never",
                                  "containers": [{"name": "run", "image": "busybox:1.36"}]}},
            **spec,
        },
    }


def service(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}], **spec}}


def names(store: Store, resource: str, ns: str | None = NS, **kw: Any) -> list[str]:
    return sorted(o["metadata"]["name"] for o in store.list(resource, ns, **kw))


def conditions(obj: Obj) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in obj["status"]["conditions"]}


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store()
    manager = controllers.start(s)
    yield s
    manager.stop_now()


# ---------------------------------------------------------------------- deployments


def test_deployment_creates_replicaset_and_ready_pods(store: Store) -> None:
    dep = store.create("deployments.apps", deployment("web", replicas=2))
    [rs] = store.list("replicasets.apps", NS)
    digest = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{digest}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": digest}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == digest
    owner = rs["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Deployment", "web", dep["metadata"]["uid"], True)
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

    pods = store.list("pods", NS)
    assert len(pods) == 2
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"web-{digest}-")
        assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": digest}
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["spec"]["nodeName"] == NODE_NAME
        status = pod["status"]
        assert status["phase"] == "Running"
        assert conditions(pod)["Ready"][0] == "True"
        assert conditions(pod)["ContainersReady"][0] == "True"
        assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network("10.244.0.0/16")
        assert status["containerStatuses"][0]["ready"] is True
        assert "running" in status["containerStatuses"][0]["state"]

    dep = store.get("deployments.apps", "web", NS)
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    status = dep["status"]
    assert (status["observedGeneration"], status["replicas"], status["updatedReplicas"],
            status["readyReplicas"], status["availableReplicas"]) == (1, 2, 2, 2, 2)
    assert conditions(dep) == {"Available": ("True", "MinimumReplicasAvailable"),
                               "Progressing": ("True", "NewReplicaSetAvailable")}
    rs = store.get("replicasets.apps", rs["metadata"]["name"], NS)
    assert rs["status"] == {"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                            "availableReplicas": 2, "observedGeneration": 1}


def test_scaling_and_rollout(store: Store) -> None:
    store.create("deployments.apps", deployment("web", replicas=1))

    def scale(obj: Obj) -> None:
        obj["spec"]["replicas"] = 4

    store.modify("deployments.apps", "web", scale, NS)
    assert len(names(store, "pods")) == 4
    assert store.get("deployments.apps", "web", NS)["status"]["readyReplicas"] == 4

    def new_image(obj: Obj) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"

    store.modify("deployments.apps", "web", new_image, NS)
    rss = {r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: r
           for r in store.list("replicasets.apps", NS)}
    assert sorted(rss) == ["1", "2"]
    assert rss["1"]["spec"]["replicas"] == 0 and rss["2"]["spec"]["replicas"] == 4
    pods = store.list("pods", NS)
    assert len(pods) == 4
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.28"}
    dep = store.get("deployments.apps", "web", NS)
    assert dep["status"]["observedGeneration"] == 3
    assert dep["status"]["updatedReplicas"] == 4
    assert dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

    def old_image(obj: Obj) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"

    # Going back reuses the first ReplicaSet, which becomes revision 3.
    store.modify("deployments.apps", "web", old_image, NS)
    rs1 = store.get("replicasets.apps", rss["1"]["metadata"]["name"], NS)
    assert rs1["spec"]["replicas"] == 4
    assert rs1["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert len(store.list("replicasets.apps", NS)) == 2


def test_revision_history_limit_prunes_old_replicasets(store: Store) -> None:
    dep = deployment("web", replicas=1)
    dep["spec"]["revisionHistoryLimit"] = 1
    store.create("deployments.apps", dep)
    for tag in ("a", "b", "c"):
        def change(obj: Obj, tag: str = tag) -> None:
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = f"nginx:{tag}"

        store.modify("deployments.apps", "web", change, NS)
    revisions = sorted(r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                       for r in store.list("replicasets.apps", NS))
    assert revisions == ["3", "4"]


def test_deleted_pod_is_replaced(store: Store) -> None:
    store.create("deployments.apps", deployment("web", replicas=2))
    victim = names(store, "pods")[0]
    store.delete("pods", victim, NS)
    after = names(store, "pods")
    assert len(after) == 2 and victim not in after


def test_never_ready_deployment(store: Store) -> None:
    store.create("deployments.apps",
                 deployment("slow", replicas=2, annotations={NEVER_READY_ANNOTATION: "true"}))
    pods = store.list("pods", NS)
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Running"
        assert conditions(pod)["Ready"] == ("False", "ContainersNotReady")
    dep = store.get("deployments.apps", "slow", NS)
    assert "readyReplicas" not in dep["status"] and "availableReplicas" not in dep["status"]
    assert dep["status"]["unavailableReplicas"] == 2
    assert conditions(dep)["Available"] == ("False", "MinimumReplicasUnavailable")
    assert conditions(dep)["Progressing"] == ("True", "ReplicaSetUpdated")


def test_paused_deployment_does_not_roll_out(store: Store) -> None:
    dep = deployment("web", replicas=1)
    dep["spec"]["paused"] = True
    store.create("deployments.apps", dep)
    assert store.list("replicasets.apps", NS) == []
    assert conditions(store.get("deployments.apps", "web", NS))["Progressing"] == (
        "Unknown", "DeploymentPaused")


# ---------------------------------------------------------------------- garbage collection


def test_deleting_a_deployment_collects_replicasets_and_pods(store: Store) -> None:
    store.create("deployments.apps", deployment("web"))
    store.delete("deployments.apps", "web", NS)
    assert names(store, "replicasets.apps") == []
    assert names(store, "pods") == []


def test_orphan_propagation_keeps_dependents(store: Store) -> None:
    store.create("deployments.apps", deployment("web"))
    store.delete("deployments.apps", "web", NS, propagation_policy="Orphan")
    [rs] = store.list("replicasets.apps", NS)
    assert "ownerReferences" not in rs["metadata"]
    assert len(names(store, "pods")) == 2  # still owned by the (orphaned) ReplicaSet

    # A new Deployment with the same template adopts the orphaned ReplicaSet.
    store.create("deployments.apps", deployment("web"))
    [rs2] = store.list("replicasets.apps", NS)
    assert rs2["metadata"]["uid"] == rs["metadata"]["uid"]
    assert rs2["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert len(names(store, "pods")) == 2


def test_dependent_with_another_live_owner_survives(store: Store) -> None:
    a = store.create("configmaps", {"metadata": {"name": "a", "namespace": NS}})
    b = store.create("configmaps", {"metadata": {"name": "b", "namespace": NS}})
    refs = [{"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"],
             "uid": o["metadata"]["uid"]} for o in (a, b)]
    store.create("secrets", {"metadata": {"name": "dep", "namespace": NS,
                                          "ownerReferences": refs}})
    store.delete("configmaps", "a", NS)
    dep = store.get("secrets", "dep", NS)
    assert [r["name"] for r in dep["metadata"]["ownerReferences"]] == ["b"]
    store.delete("configmaps", "b", NS)
    assert store.try_get("secrets", "dep", NS) is None


def test_restart_collects_objects_whose_owner_vanished() -> None:
    store = Store()
    manager = controllers.start(store)
    store.create("deployments.apps", deployment("web"))
    manager.stop_now()
    store.delete("replicasets.apps", names(store, "replicasets.apps")[0], NS)
    assert len(names(store, "pods")) == 2  # nobody collected them while stopped
    manager = controllers.start(store)
    try:
        # The restarted controllers collect the orphans and the Deployment makes new ones.
        pods = store.list("pods", NS)
        [rs] = store.list("replicasets.apps", NS)
        assert len(pods) == 2
        assert {p["metadata"]["ownerReferences"][0]["uid"] for p in pods} == {
            rs["metadata"]["uid"]}
    finally:
        manager.stop_now()


# ---------------------------------------------------------------------- statefulsets


def test_statefulset_pods_claims_and_revisions(store: Store) -> None:
    store.create("statefulsets.apps", statefulset("db", replicas=3))
    assert names(store, "pods") == ["db-0", "db-1", "db-2"]
    pod = store.get("pods", "db-1", NS)
    assert pod["spec"]["hostname"] == "db-1" and pod["spec"]["subdomain"] == "db-headless"
    assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-1"
    assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}} in (
        pod["spec"]["volumes"])
    assert names(store, "persistentvolumeclaims") == ["data-db-0", "data-db-1", "data-db-2"]
    pvc = store.get("persistentvolumeclaims", "data-db-0", NS)
    assert pvc["metadata"]["labels"] == {"tier": "storage", "app": "db"}
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["status"]["capacity"] == {"storage": "8Gi"}
    pv = store.get("persistentvolumes", pvc["spec"]["volumeName"])
    assert pv["spec"]["claimRef"]["name"] == "data-db-0"

    sts = store.get("statefulsets.apps", "db", NS)
    status = sts["status"]
    rev = status["updateRevision"]
    assert rev.startswith("db-") and status["currentRevision"] == rev
    assert (status["replicas"], status["readyReplicas"], status["currentReplicas"],
            status["updatedReplicas"], status["observedGeneration"]) == (3, 3, 3, 3, 1)
    assert pod["metadata"]["labels"]["controller-revision-hash"] == rev
    assert names(store, "controllerrevisions.apps") == [rev]

    def new_image(obj: Obj) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "etcd:4"

    store.modify("statefulsets.apps", "db", new_image, NS)
    status = store.get("statefulsets.apps", "db", NS)["status"]
    assert status["updateRevision"] != rev
    assert status["currentRevision"] == status["updateRevision"]
    assert status["updatedReplicas"] == 3 and status["readyReplicas"] == 3
    assert {p["spec"]["containers"][0]["image"] for p in store.list("pods", NS)} == {"etcd:4"}
    assert len(names(store, "controllerrevisions.apps")) == 2

    def scale_down(obj: Obj) -> None:
        obj["spec"]["replicas"] = 1

    store.modify("statefulsets.apps", "db", scale_down, NS)
    assert names(store, "pods") == ["db-0"]
    assert len(names(store, "persistentvolumeclaims")) == 3  # claims are retained


def test_statefulset_partition_updates_only_high_ordinals(store: Store) -> None:
    sts = statefulset("db", replicas=3)
    sts["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    store.create("statefulsets.apps", sts)

    def new_image(obj: Obj) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = "etcd:4"

    store.modify("statefulsets.apps", "db", new_image, NS)
    images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
              for p in store.list("pods", NS)}
    assert images == {"db-0": "etcd:3", "db-1": "etcd:3", "db-2": "etcd:4"}
    status = store.get("statefulsets.apps", "db", NS)["status"]
    assert status["updatedReplicas"] == 1 and status["currentRevision"] != status["updateRevision"]


def test_ordered_ready_never_ready_statefulset_stops_at_first_pod(store: Store) -> None:
    store.create("statefulsets.apps",
                 statefulset("db", 3, annotations={NEVER_READY_ANNOTATION: "true"}))
    assert names(store, "pods") == ["db-0"]
    status = store.get("statefulsets.apps", "db", NS)["status"]
    assert status["replicas"] == 1 and "readyReplicas" not in status


def test_parallel_never_ready_statefulset_creates_all_pods(store: Store) -> None:
    store.create("statefulsets.apps",
                 statefulset("db", 3, "Parallel", annotations={NEVER_READY_ANNOTATION: "true"}))
    assert names(store, "pods") == ["db-0", "db-1", "db-2"]


def test_deleting_a_statefulset_keeps_claims_unless_asked(store: Store) -> None:
    store.create("statefulsets.apps", statefulset("keep", replicas=1))
    sts = statefulset("drop", replicas=1)
    sts["spec"]["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Delete"}
    store.create("statefulsets.apps", sts)
    store.delete("statefulsets.apps", "keep", NS)
    store.delete("statefulsets.apps", "drop", NS)
    assert names(store, "pods") == []
    assert names(store, "controllerrevisions.apps") == []
    assert names(store, "persistentvolumeclaims") == ["data-keep-0"]
    assert len(names(store, "persistentvolumes", None)) == 1


# ---------------------------------------------------------------------- daemonsets, jobs, pods


def test_daemonset_runs_one_pod_on_the_node(store: Store) -> None:
    ds = deployment("agent")
    ds["kind"] = "DaemonSet"
    del ds["spec"]["replicas"]
    store.create("daemonsets.apps", ds)
    [pod] = store.list("pods", NS)
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["metadata"]["labels"]["pod-template-generation"] == "1"
    status = store.get("daemonsets.apps", "agent", NS)["status"]
    assert status == {"currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                      "numberMisscheduled": 0, "numberReady": 1, "observedGeneration": 1,
                      "numberAvailable": 1, "updatedNumberScheduled": 1}

    def windows_only(obj: Obj) -> None:
        obj["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/os": "windows"}

    store.modify("daemonsets.apps", "agent", windows_only, NS)
    assert names(store, "pods") == []
    status = store.get("daemonsets.apps", "agent", NS)["status"]
    assert status["desiredNumberScheduled"] == 0 and status["observedGeneration"] == 2


def test_job_completes(store: Store) -> None:
    created = store.create("jobs.batch", job("once", completions=2))
    done = store.get("jobs.batch", "once", NS)
    status = done["status"]
    assert status["succeeded"] == 2 and "active" not in status
    assert status["startTime"] and status["completionTime"]
    assert conditions(done) == {"SuccessCriteriaMet": ("True", "CompletionsReached"),
                                "Complete": ("True", "CompletionsReached")}
    pods = store.list("pods", NS, label_selector="job-name=once")
    assert [p["status"]["phase"] for p in pods] == ["Succeeded", "Succeeded"]
    assert pods[0]["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == (
        created["metadata"]["uid"])
    assert pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    store.delete("jobs.batch", "once", NS)
    assert names(store, "pods") == []


def test_failing_job(store: Store) -> None:
    store.create("jobs.batch", job("bad", {FAIL_ANNOTATION: "true"}, backoffLimit=2))
    failed = store.get("jobs.batch", "bad", NS)
    assert failed["status"]["failed"] == 3
    assert conditions(failed)["Failed"] == ("True", "BackoffLimitExceeded")
    assert "Complete" not in conditions(failed)


def test_annotations_on_the_job_pod_template_count_too(store: Store) -> None:
    failing = job("bad-pods", backoffLimit=0)
    failing["spec"]["template"]["metadata"] = {"annotations": {FAIL_ANNOTATION: "true"}}
    store.create("jobs.batch", failing)
    assert conditions(store.get("jobs.batch", "bad-pods", NS))["Failed"][0] == "True"
    stuck = job("slow-pods")
    stuck["spec"]["template"]["metadata"] = {"annotations": {NEVER_READY_ANNOTATION: "true"}}
    store.create("jobs.batch", stuck)
    status = store.get("jobs.batch", "slow-pods", NS)["status"]
    assert status["active"] == 1 and "conditions" not in status


def test_never_ready_job_keeps_running(store: Store) -> None:
    store.create("jobs.batch", job("forever", {NEVER_READY_ANNOTATION: "true"}))
    status = store.get("jobs.batch", "forever", NS)["status"]
    assert status["active"] == 1 and "conditions" not in status


def test_suspended_job_runs_nothing(store: Store) -> None:
    store.create("jobs.batch", job("later", suspend=True))
    assert names(store, "pods") == []
    assert conditions(store.get("jobs.batch", "later", NS))["Suspended"][0] == "True"

    def resume(obj: Obj) -> None:
        obj["spec"]["suspend"] = False

    store.modify("jobs.batch", "later", resume, NS)
    assert "Complete" in conditions(store.get("jobs.batch", "later", NS))


def test_bare_pods_run_or_complete(store: Store) -> None:
    for name, policy in (("server", "Always"), ("task", "Never")):
        store.create("pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"restartPolicy": policy, "containers": [{"name": "c", "image": "busybox"}]},
        })
    server = store.get("pods", "server", NS)
    assert server["spec"]["nodeName"] == NODE_NAME
    assert server["status"]["phase"] == "Running" and conditions(server)["Ready"][0] == "True"
    task = store.get("pods", "task", NS)
    assert task["status"]["phase"] == "Succeeded"
    assert conditions(task)["Ready"] == ("False", "PodCompleted")


# ---------------------------------------------------------------------- services, endpoints


def test_service_addresses(store: Store) -> None:
    web = store.create("services", service("web", selector={"app": "web"}))
    assert "clusterIP" not in web["spec"]  # the create itself, then the controller assigns
    web = store.get("services", "web", NS)
    ip = web["spec"]["clusterIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")
    assert ip not in ("10.96.0.1", "10.96.0.10")
    assert web["spec"]["clusterIPs"] == [ip]
    assert web["spec"]["ipFamilies"] == ["IPv4"]

    store.create("services", service("headless", clusterIP="None"))
    assert store.get("services", "headless", NS)["spec"]["clusterIP"] == "None"
    store.create("services", service("ext", type="ExternalName", externalName="example.com"))
    assert "clusterIP" not in store.get("services", "ext", NS)["spec"]

    store.create("services", service("lb", type="LoadBalancer"))
    lb = store.get("services", "lb", NS)
    assert 30000 <= lb["spec"]["ports"][0]["nodePort"] <= 32767
    [ingress] = lb["status"]["loadBalancer"]["ingress"]
    assert ipaddress.ip_address(ingress["ip"]) in ipaddress.ip_network("172.18.255.0/24")

    # The same name gets the same address again (deterministic), a different name another.
    store.delete("services", "web", NS)
    store.create("services", service("web"))
    assert store.get("services", "web", NS)["spec"]["clusterIP"] == ip
    ips = {s["spec"].get("clusterIP") for s in store.list("services", NS)}
    assert len(ips) == 4


def test_endpoints_follow_pods(store: Store) -> None:
    store.create("services", service("web", selector={"app": "web"}))
    store.create("deployments.apps", deployment("web", replicas=2))
    ep = store.get("endpoints", "web", NS)
    [subset] = ep["subsets"]
    pod_ips = sorted(p["status"]["podIP"] for p in store.list("pods", NS))
    assert [a["ip"] for a in subset["addresses"]] == pod_ips
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]

    def mark(obj: Obj) -> None:
        obj["metadata"]["annotations"] = {NEVER_READY_ANNOTATION: "true"}

    store.modify("deployments.apps", "web", mark, NS)
    [subset] = store.get("endpoints", "web", NS)["subsets"]
    assert "addresses" not in subset and len(subset["notReadyAddresses"]) == 2
    store.delete("deployments.apps", "web", NS)
    assert "subsets" not in store.get("endpoints", "web", NS)
    store.delete("services", "web", NS)
    assert store.try_get("endpoints", "web", NS) is None


def test_pod_disruption_budget_status(store: Store) -> None:
    store.create("deployments.apps", deployment("web", replicas=3))
    store.create("poddisruptionbudgets.policy", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"minAvailable": "51%", "selector": {"matchLabels": {"app": "web"}}}})
    status = store.get("poddisruptionbudgets.policy", "web", NS)["status"]
    assert (status["expectedPods"], status["currentHealthy"], status["desiredHealthy"],
            status["disruptionsAllowed"], status["observedGeneration"]) == (3, 3, 2, 1, 1)


def test_never_ready_claim_stays_pending(store: Store) -> None:
    store.create("persistentvolumeclaims", {
        "metadata": {"name": "c", "namespace": NS,
                     "annotations": {NEVER_READY_ANNOTATION: "true"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    assert store.get("persistentvolumeclaims", "c", NS)["status"]["phase"] == "Pending"
    assert names(store, "persistentvolumes", None) == []


# ---------------------------------------------------------------------- the manager


def test_node_exists_and_resync_writes_nothing(store: Store) -> None:
    assert names(store, "nodes", None) == [NODE_NAME]
    store.create("deployments.apps", deployment("web"))
    store.create("statefulsets.apps", statefulset("db"))
    store.create("jobs.batch", job("once"))
    store.create("services", service("web", selector={"app": "web"}, type="NodePort"))
    rv = store.resource_version
    manager = controllers.start(store)  # a second manager reconciles everything again
    try:
        assert store.resource_version == rv
    finally:
        manager.stop_now()


def test_stopped_controllers_do_nothing() -> None:
    store = Store()
    manager = controllers.start(store)
    manager.stop_now()
    store.create("deployments.apps", deployment("web"))
    assert store.list("replicasets.apps", NS) == []
    manager = controllers.start(store)  # a restart catches up
    try:
        assert len(store.list("pods", NS)) == 2
    finally:
        manager.stop_now()


# ---------------------------------------------------------------------- time-based behaviour


@pytest.fixture
async def live() -> Any:
    store = Store()
    manager = controllers.start(store)
    assert manager.loop is not None
    yield store, manager
    await manager.stop()


async def _until(check: Any, limit: float = 5.0) -> None:
    """Poll ``check`` (state changes come from timers on this loop) for up to ``limit`` s."""
    async with asyncio.timeout(limit):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_ready_after_delays_readiness(live: tuple[Store, ControllerManager]) -> None:
    store, _ = live
    store.create("deployments.apps",
                 deployment("web", replicas=2, annotations={READY_AFTER_ANNOTATION: "300ms"}))
    dep = store.get("deployments.apps", "web", NS)
    assert dep["status"].get("readyReplicas", 0) == 0
    await _until(lambda: store.get("deployments.apps", "web", NS)["status"].get(
        "readyReplicas") == 2)
    assert conditions(store.get("deployments.apps", "web", NS))["Progressing"][1] == (
        "NewReplicaSetAvailable")


async def test_progress_deadline(live: tuple[Store, ControllerManager]) -> None:
    store, _ = live
    dep = deployment("slow", replicas=1, annotations={NEVER_READY_ANNOTATION: "true"})
    dep["spec"]["progressDeadlineSeconds"] = 1
    store.create("deployments.apps", dep)
    assert conditions(store.get("deployments.apps", "slow", NS))["Progressing"][0] == "True"
    await _until(lambda: conditions(store.get("deployments.apps", "slow", NS))["Progressing"]
                 == ("False", "ProgressDeadlineExceeded"))


async def test_job_ttl_after_finished(live: tuple[Store, ControllerManager]) -> None:
    store, _ = live
    store.create("jobs.batch", job("brief", ttlSecondsAfterFinished=0))
    await _until(lambda: store.try_get("jobs.batch", "brief", NS) is None)
    assert names(store, "pods") == []


async def test_job_with_ready_after_finishes_later(live: tuple[Store, ControllerManager]) -> None:
    store, _ = live
    store.create("jobs.batch", job("slow", {READY_AFTER_ANNOTATION: "0.2"}))
    status = store.get("jobs.batch", "slow", NS)["status"]
    assert status["active"] == 1 and status["ready"] == 1
    await _until(lambda: "Complete" in conditions(store.get("jobs.batch", "slow", NS))
                 if store.get("jobs.batch", "slow", NS)["status"].get("conditions") else False)


def test_server_restart_keeps_objects_and_addresses() -> None:
    from kubesim.testing import running_kubesim

    with running_kubesim() as sim:
        store = sim.store
        store.create("deployments.apps", deployment("web", replicas=2))
        store.create("services", service("web", selector={"app": "web"}))

        def addresses() -> dict[str, str]:
            out = {p["metadata"]["name"]: p["status"]["podIP"] for p in store.list("pods", NS)}
            out["svc/web"] = store.get("services", "web", NS)["spec"]["clusterIP"]
            return out

        before, rv = addresses(), store.resource_version
        sim.stop()
        sim.start()
        assert addresses() == before
        assert store.resource_version == rv  # the restarted controllers found nothing to do
        # The address pools were rebuilt: new objects do not reuse addresses in use.
        store.create("services", service("other"))
        assert store.get("services", "other", NS)["spec"]["clusterIP"] not in before.values()
