"""Integers stay integers in every JSON answer (issue 9, C6): config and chart values travel as
`google.protobuf.Struct` (doubles), and the one JSON encoding of the gateway and the CLI writes
an integral number as an integer, as Helm's own JSON does."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from cli.runner import capstan

from capstan.client import to_dict
from capstan.v1 import release_pb2
from capstan_server.dev.chart_repo import ChartRepoServer
from capstan_server.threaded import ServerHandle

if TYPE_CHECKING:
    from conftest import Rest



def integral_floats(text: str) -> list[str]:
    """The numbers of a JSON text written as floats although they are whole (`2379.0`)."""
    found: list[str] = []
    json.loads(text, parse_float=lambda s: found.append(s) if float(s).is_integer() else None)
    return found


def test_integral_numbers_are_integers_over_rest_and_the_cli(
    rest: Rest, capstan_server: ServerHandle, seed_repo: ChartRepoServer, fake_kubeconfig: str
) -> None:
    assert rest.post("/api/clusters", {"name": "c", "kubeconfig": fake_kubeconfig}).status == 200
    assert rest.post("/api/repos", {"name": "bitnami-new", "url": seed_repo.url}).status == 200
    answer = rest.post("/api/releases", {
        "chart_name": "bitnami-new/etcd", "cluster": "c", "release_name": "ints",
        "values_json": {"replicaCount": 3, "service": {"ports": {"client": 2379}}, "ratio": 0.5},
        "values": "extra:\n  - 1\n  - 2.5\n",
    })
    assert answer.status == 200, answer.text
    for text in (answer.text, rest.get("/api/releases/ints").text,
                 rest.get("/api/releases?details=true").text,
                 rest.get("/api/charts/etcd?repo=bitnami-new").text):
        assert integral_floats(text) == []
    config = rest.get("/api/releases/ints").body["config"]
    assert config == {"replicaCount": 3, "service": {"ports": {"client": 2379}}, "ratio": 0.5,
                      "extra": [1, 2.5]}
    assert type(config["replicaCount"]) is int

    shown = capstan(capstan_server.grpc_target, "--output", "json", "k8s-release-show", "ints")
    assert shown.code == 0, shown.stderr
    assert shown.json()["config"] == config
    assert integral_floats(shown.stdout) == []


def test_to_dict_writes_struct_integers_as_integers() -> None:
    release = release_pb2.Release(name="r")
    release.config.update({"port": 2379, "half": 0.5, "list": [1, 2.0], "big": 2.0**60})
    data = to_dict(release)
    assert data["config"] == {"port": 2379, "half": 0.5, "list": [1, 2], "big": 2.0**60}
    assert type(data["config"]["port"]) is int
