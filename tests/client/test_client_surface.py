"""The client covers every RPC of the protos, once, with keyword arguments mirroring the request
fields, in both the sync and the asyncio flavour; `to_dict` gives the REST gateway's JSON."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from google.protobuf.descriptor import MethodDescriptor

from capstan.client import AsyncCapstanClient, CapstanClient, charts, clusters, releases, to_dict
from capstan.client.calls import Rpc, RpcMethod
from capstan.v1 import chart_pb2, cluster_pb2, release_pb2

from .fake_capstan import FakeCapstan

IDEMPOTENT_PREFIXES = ("Get", "List", "Watch", "Sync")


def _all_rpcs() -> dict[str, MethodDescriptor]:
    return {
        method.full_name: method
        for module in (release_pb2, chart_pb2, cluster_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def _client_rpcs() -> dict[str, Rpc[Any]]:
    found: dict[str, Rpc[Any]] = {}
    for module in (releases, charts, clusters):
        for value in vars(module).values():
            if isinstance(value, Rpc):
                service = value.stub.__name__.removesuffix("Stub")
                found[f"capstan.v1.{service}.{value.name}"] = value
    return found


def _methods(cls: type) -> dict[str, Any]:
    return {name: value for name, value in vars(cls).items() if isinstance(value, RpcMethod)}


def test_every_rpc_is_described_once_with_its_response_type() -> None:
    protos, described = _all_rpcs(), _client_rpcs()

    assert set(described) == set(protos)
    for name, rpc in described.items():
        assert rpc.response.DESCRIPTOR.full_name == protos[name].output_type.full_name
        assert rpc.idempotent == rpc.name.startswith(IDEMPOTENT_PREFIXES), name


def test_both_clients_have_the_same_method_for_every_rpc() -> None:
    sync, aio = _methods(CapstanClient), _methods(AsyncCapstanClient)

    assert sync.keys() == aio.keys()
    assert len(sync) == len(_all_rpcs())
    for name in sync:
        # Bound from the very same builder: same parameters, same docstring.
        assert sync[name].__wrapped__ is aio[name].__wrapped__


@pytest.mark.parametrize("name", sorted(_methods(CapstanClient)))
def test_keyword_arguments_mirror_the_request_fields(name: str) -> None:
    build = _methods(CapstanClient)[name].__wrapped__
    call = build(*_positional_arguments(build))
    fields = {field.name for field in call.request.DESCRIPTOR.fields}
    params = set(inspect.signature(build).parameters) - {"deadline"}

    # Every parameter is a request field; the only fields left out are the body's echo of
    # the path (`release_name` on upgrade is still there) and `all`, which changes nothing.
    assert params <= fields
    assert fields - params <= {"all"}


def _positional_arguments(build: Any) -> list[Any]:
    samples = {"action": "rollback", "revision": 1}
    return [
        samples.get(p.name, "x")
        for p in inspect.signature(build).parameters.values()
        if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty
    ]


def test_bound_methods_show_the_builder_s_signature_and_doc(fake: FakeCapstan) -> None:
    with CapstanClient(fake.target) as client:
        method = client.create_release
        assert list(inspect.signature(method).parameters)[:2] == ["chart_name", "cluster"]
        assert method.__doc__ == releases.create_release.__doc__
        assert CapstanClient.create_release.__doc__ == releases.create_release.__doc__


def test_requests_carry_every_argument(fake: FakeCapstan) -> None:
    fake.reply("CreateRelease", release_pb2.Release(name="etcd-release", version=1))

    with CapstanClient(fake.target) as client:
        release = client.create_release(
            "bitnami-new/etcd",
            cluster="test122",
            namespace="default",
            release_name="etcd-release",
            version="8.11.1",
            values='image:\n  tag: "3.5.8-debian-11-r9"\n',
            values_json={"replicaCount": 3, "auth": {"rbac": {"create": False}}},
            dry_run=True,
            timeout=120,
            wait=True,
            atomic=True,
            description="first",
            create_namespace=True,
            details=True,
            type="external",
        )

    assert release.version == 1
    (request,) = fake.received("CreateRelease")
    assert to_dict(request) == {
        "chart_name": "bitnami-new/etcd",
        "cluster": "test122",
        "namespace": "default",
        "release_name": "etcd-release",
        "version": "8.11.1",
        "values": 'image:\n  tag: "3.5.8-debian-11-r9"\n',
        "values_json": {"replicaCount": 3.0, "auth": {"rbac": {"create": False}}},
        "dry_run": True,
        "timeout": 120,
        "wait": True,
        "atomic": True,
        "description": "first",
        "create_namespace": True,
        "details": True,
        "type": "external",
    }


def test_recovery_actions_by_name(fake: FakeCapstan) -> None:
    with CapstanClient(fake.target) as client:
        client.recover_release("etcd-release", "rollback")
        client.recover_release("etcd-release", "mark-failed", stuck_after_seconds=60)
        with pytest.raises(ValueError, match="unknown recovery action"):
            client.recover_release("etcd-release", "retry")  # type: ignore[arg-type]

    first, second = fake.received("RecoverRelease")
    assert first.action == release_pb2.RECOVERY_ACTION_ROLLBACK
    assert second.action == release_pb2.RECOVERY_ACTION_MARK_FAILED
    assert second.stuck_after_seconds == 60


def test_to_dict_is_the_rest_json_shape() -> None:
    release = release_pb2.Release(name="etcd-release", cluster_id="c1", clusterID="c1", version=1)
    release.created_at.FromSeconds(1683742419)
    release.config.update({"image": {"tag": "3.5.8-debian-11-r9"}})

    data = to_dict(release)

    assert data["name"] == "etcd-release"
    assert data["clusterID"] == data["cluster_id"] == "c1"
    assert data["created_at"] == "2023-05-10T18:13:39Z"
    assert data["config"] == {"image": {"tag": "3.5.8-debian-11-r9"}}
    # Fields left at their defaults are still there, as the gateway writes them.
    assert data["is_emulated"] is False
    assert data["progress"] == 0
    assert data["repo_id"] == ""
