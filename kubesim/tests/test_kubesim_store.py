"""The store from Python: object semantics, listeners, watches, deletion, snapshots."""

from __future__ import annotations

import threading

import pytest

from kubesim.errors import AlreadyExists, Conflict, Forbidden, Gone, Invalid, NotFound
from kubesim.store import Event, Store


def deployment(name: str, image: str = "nginx:1.27", ns: str = "default") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


def test_create_sets_identity_and_defaults() -> None:
    store = Store()
    obj = store.create("deployments", deployment("web"))
    m = obj["metadata"]
    assert m["uid"] and m["creationTimestamp"].endswith("Z")
    assert int(m["resourceVersion"]) == store.resource_version
    assert m["generation"] == 1
    assert obj["spec"]["replicas"] == 1
    assert store.get("deploy", "web")["metadata"]["uid"] == m["uid"]
    with pytest.raises(AlreadyExists):
        store.create("deployments", deployment("web"))


def test_generate_name_and_invalid_names() -> None:
    store = Store()
    made = store.create("configmaps", {"metadata": {"generateName": "cfg-"}})
    assert made["metadata"]["name"].startswith("cfg-") and len(made["metadata"]["name"]) == 9
    with pytest.raises(Invalid):
        store.create("configmaps", {"metadata": {"name": "Not_Valid"}})
    with pytest.raises(Invalid):
        store.create("configmaps", {"metadata": {}})


def test_missing_and_terminating_namespaces() -> None:
    store = Store()
    with pytest.raises(NotFound) as err:
        store.create("secrets", {"metadata": {"name": "s", "namespace": "nope"}})
    assert err.value.status()["message"] == 'namespaces "nope" not found'
    store.create("namespaces", {"metadata": {"name": "going"}})
    store.terminate_namespace("going")
    with pytest.raises(Forbidden):
        store.create("secrets", {"metadata": {"name": "s", "namespace": "going"}})


def test_resource_versions_increase_and_stale_update_conflicts() -> None:
    store = Store()
    first = store.create("configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    stale = dict(first, data={"a": "2"})
    second = store.update("configmaps", stale)
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    with pytest.raises(Conflict):
        store.update("configmaps", dict(first, data={"a": "3"}))
    unconditional = {"metadata": {"name": "c"}, "data": {"a": "4"}}
    assert store.update("configmaps", unconditional)["data"] == {"a": "4"}


def test_generation_bumps_on_spec_only() -> None:
    store = Store()
    store.create("deployments", deployment("web"))
    labelled = store.modify("deployments", "web", lambda o: o["metadata"]["labels"].update(x="y"))
    assert labelled["metadata"]["generation"] == 1
    status = store.modify("deployments", "web", lambda o: o.update(status={"replicas": 1}),
                          status=True)
    assert status["metadata"]["generation"] == 1 and status["status"] == {"replicas": 1}
    changed = store.modify(
        "deployments", "web", lambda o: o["spec"].update(replicas=3)
    )
    assert changed["metadata"]["generation"] == 2
    assert changed["status"] == {"replicas": 1}, "a main-resource update keeps the status"


def test_noop_update_commits_nothing() -> None:
    store = Store()
    obj = store.create("configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    rv = store.resource_version
    again = store.update("configmaps", obj)
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert store.resource_version == rv


def test_list_selectors() -> None:
    store = Store()
    for name, labels in [("a", {"app": "x", "tier": "web"}), ("b", {"app": "y"}), ("c", {})]:
        store.create("configmaps", {"metadata": {"name": name, "labels": labels}})

    def names(**kw: str) -> list[str]:
        return [o["metadata"]["name"] for o in store.list("configmaps", "default", **kw)]

    assert names(label_selector="app=x") == ["a"]
    assert names(label_selector="app==y") == ["b"]
    assert names(label_selector="app!=x") == ["b", "c"]
    assert names(label_selector="app in (x,y)") == ["a", "b"]
    assert names(label_selector="app notin (x)") == ["b", "c"]
    assert names(label_selector="tier") == ["a"]
    assert names(label_selector="!tier") == ["b", "c"]
    assert names(label_selector="app,!tier") == ["b"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    assert len(store.list("configmaps", field_selector="metadata.namespace=default")) == 3


def test_listeners_get_events_in_order_and_may_write() -> None:
    store = Store()
    seen: list[tuple[str, str, str]] = []

    def on_event(ev: Event) -> None:
        seen.append((ev.type, ev.resource.plural, ev.name))
        if ev.type == "ADDED" and ev.resource.plural == "deployments":
            store.create("replicasets", {"metadata": {"name": ev.name + "-rs"}, "spec": {}})

    remove = store.add_listener(on_event)
    store.create("deployments", deployment("web"))
    store.delete("deployments", "web")
    remove()
    store.create("configmaps", {"metadata": {"name": "after"}})
    assert seen == [
        ("ADDED", "deployments", "web"),
        ("ADDED", "replicasets", "web-rs"),
        ("DELETED", "deployments", "web"),
    ]


def test_listener_with_loop_runs_there() -> None:
    import asyncio

    store = Store()
    loop = asyncio.new_event_loop()
    got: list[str] = []
    threads: list[str] = []

    def on_event(ev: Event) -> None:
        got.append(ev.name)
        threads.append(threading.current_thread().name)
        loop.stop()

    store.add_listener(on_event, loop=loop)
    store.create("configmaps", {"metadata": {"name": "x"}})
    loop.run_forever()
    loop.close()
    assert got == ["x"] and threads == [threading.current_thread().name]


def test_watch_from_resource_version_and_compaction() -> None:
    store = Store(history=5)
    first = store.create("configmaps", {"metadata": {"name": "a"}})
    rv = int(first["metadata"]["resourceVersion"])
    store.create("configmaps", {"metadata": {"name": "b"}})
    live: list[Event] = []
    initial, cancel = store.watch("configmaps", "default", live.append, since=rv)
    assert [e.name for e in initial] == ["b"]
    store.delete("configmaps", "a")
    cancel()
    store.create("configmaps", {"metadata": {"name": "c"}})
    assert [(e.type, e.name) for e in live] == [("DELETED", "a")]
    for i in range(10):
        store.create("configmaps", {"metadata": {"name": f"x{i}"}})
    with pytest.raises(Gone):
        store.watch("configmaps", None, live.append, since=rv)


def test_namespace_deletion_removes_contents() -> None:
    store = Store()
    store.create("namespaces", {"metadata": {"name": "team"}})
    store.create("secrets", {"metadata": {"name": "s", "namespace": "team"}})
    store.create("deployments", deployment("web", ns="team"))
    store.delete("namespaces", "team")
    assert store.list("secrets", "team") == [] and store.list("deployments", "team") == []
    assert store.try_get("namespaces", "team") is None


def test_propagation_policies() -> None:
    store = Store()
    owner = store.create("deployments", deployment("web"))
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
           "uid": owner["metadata"]["uid"], "controller": True}
    store.create("replicasets", {"metadata": {"name": "web-1", "ownerReferences": [ref]}})
    assert [o["metadata"]["name"] for _, o in store.dependents(owner["metadata"]["uid"])] == [
        "web-1"
    ]
    store.delete("deployments", "web", propagation_policy="Orphan")
    assert "ownerReferences" not in store.get("replicasets", "web-1")["metadata"]

    owner = store.create("deployments", deployment("api"))
    ref = dict(ref, name="api", uid=owner["metadata"]["uid"])
    store.create("replicasets", {"metadata": {"name": "api-1", "ownerReferences": [ref]}})
    store.delete("deployments", "api", propagation_policy="Foreground")
    assert store.try_get("replicasets", "api-1") is None


def test_finalizers_delay_deletion() -> None:
    store = Store()
    store.create("configmaps", {"metadata": {"name": "f", "finalizers": ["x/y"]}})
    pending = store.delete("configmaps", "f")
    assert pending["metadata"]["deletionTimestamp"]
    assert store.try_get("configmaps", "f") is not None
    store.modify("configmaps", "f", lambda o: o["metadata"].pop("finalizers"))
    assert store.try_get("configmaps", "f") is None


def test_dry_run_changes_nothing() -> None:
    store = Store()
    rv = store.resource_version
    made = store.create("configmaps", {"metadata": {"name": "d"}}, dry_run=True)
    assert made["metadata"]["uid"]
    assert store.try_get("configmaps", "d") is None and store.resource_version == rv


def test_crd_makes_custom_resources_servable() -> None:
    store = Store()
    crd = {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    created = store.create("customresourcedefinitions", crd)
    conditions = {c["type"]: c["status"] for c in created["status"]["conditions"]}
    assert conditions["Established"] == "True"
    store.create("wd", {"metadata": {"name": "w1"}, "spec": {"size": 3}})
    assert store.get("widgets.example.com", "w1")["apiVersion"] == "example.com/v1"
    store.delete("customresourcedefinitions", "widgets.example.com")
    with pytest.raises(KeyError):
        store.resolve("widgets")


def test_snapshot_restore_roundtrip() -> None:
    store = Store()
    store.create("configmaps", {"metadata": {"name": "keep"}, "data": {"k": "v"}})
    snap = store.snapshot()
    other = Store()
    other.restore(snap)
    assert other.get("configmaps", "keep")["data"] == {"k": "v"}
    assert other.resource_version == store.resource_version
    made = other.create("configmaps", {"metadata": {"name": "new"}})
    assert int(made["metadata"]["resourceVersion"]) > store.resource_version


def test_immutable_configmap() -> None:
    store = Store()
    store.create("configmaps", {"metadata": {"name": "i"}, "data": {"a": "1"}, "immutable": True})
    with pytest.raises(Invalid):
        store.modify("configmaps", "i", lambda o: o.update(data={"a": "2"}))


def test_mutators_run_before_commit_and_can_refuse() -> None:
    store = Store()
    seen: list[tuple[str, bool]] = []

    def allocate(rt: object, obj: dict, old: dict | None) -> None:
        seen.append((obj["metadata"]["name"], old is None))
        if obj.get("kind") == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("clusterIP", (old or {}).get("spec", {}).get("clusterIP", "10.0.0.9"))
        if obj["metadata"].get("labels", {}).get("deny"):
            raise Invalid(store.resolve("services"), obj["metadata"]["name"], "denied")

    remove = store.add_mutator(allocate)
    created = store.create("services", {"metadata": {"name": "s"}, "spec": {"ports": []}})
    assert created["spec"]["clusterIP"] == "10.0.0.9"
    updated = store.update("services", {"metadata": {"name": "s"}, "spec": {"ports": []}})
    assert updated["spec"]["clusterIP"] == "10.0.0.9"
    with pytest.raises(Invalid):
        store.create("services", {"metadata": {"name": "d", "labels": {"deny": "1"}}})
    assert store.try_get("services", "d") is None
    remove()
    assert seen[:2] == [("s", True), ("s", False)]


def test_upsert_runs_listeners_outside_the_lock() -> None:
    store = Store()
    held: list[bool] = []
    store.add_listener(lambda ev: held.append(store._lock._is_owned()))  # type: ignore[attr-defined]
    store.upsert("configmaps", "u", lambda cur: {"metadata": {"name": "u"}, "data": {"a": "1"}})
    store.upsert("configmaps", "u", lambda cur: {**(cur or {}), "data": {"a": "2"}})
    assert held == [False, False]
