"""Rows' JSON kept by their wire bytes (gateway/row_memo.py): the answer is byte for byte what
encoding the whole response gives, a row changed in any way is encoded anew, and the memo stays
within its bytes."""

from __future__ import annotations

import json

from google.protobuf import struct_pb2

from capstan.v1 import release_pb2
from capstan_server.gateway import capstan_services
from capstan_server.gateway.json_body import dumps
from capstan_server.gateway.routes import Route, build_routes
from capstan_server.gateway.row_memo import RowMemo
from capstan_server.gateway.transcode import response_json


def _route(method: str) -> Route:
    return next(r for r in build_routes(capstan_services()) if r.method.name == method)


def _page(count: int, *, status: str = "deployed") -> release_pb2.ListReleasesResponse:
    page = release_pb2.ListReleasesResponse(total=count * 2, limit=count, offset=0)
    for i in range(count):
        row = page.releases.add(id=f"id-{i}", name=f"r{i}", namespace="default", version=3,
                                status=status, chart="etcd", chart_version="8.11.1")
        row.config.update({"replicaCount": 3, "image": {"tag": "é"}})
    page.unreachable_clusters.add(name="far", stale_seconds=2.5)
    return page


LIST = release_pb2.ListReleasesResponse
HISTORY = release_pb2.GetReleaseHistoryResponse


def _copy(page: release_pb2.ListReleasesResponse) -> release_pb2.ListReleasesResponse:
    return LIST.FromString(page.SerializeToString())


def test_the_answer_is_what_encoding_the_whole_response_gives() -> None:
    memo, route = RowMemo(), _route("ListReleases")
    page = _page(5)
    expected = dumps(response_json(route, _copy(page)))
    wire = page.SerializeToString()
    assert dumps(memo.response_json(route, LIST, wire)) == expected  # rows encoded
    assert len(memo) == 6  # the releases, and the unreachable cluster
    assert dumps(memo.response_json(route, LIST, wire)) == expected  # rows from the memo
    body = json.loads(expected)
    assert body["releases"][0]["config"] == {"image": {"tag": "é"}, "replicaCount": 3}
    assert body["unreachable_clusters"][0]["name"] == "far" and body["total"] == 10


def test_a_changed_row_is_encoded_anew() -> None:
    memo, route = RowMemo(), _route("ListReleases")
    memo.response_json(route, LIST, _page(3).SerializeToString())
    failed = _page(3, status="failed")
    body = json.loads(dumps(memo.response_json(route, LIST, failed.SerializeToString())))
    assert [r["status"] for r in body["releases"]] == ["failed"] * 3
    assert len(memo) == 7  # 3 + 3 releases, 1 unreachable cluster


def test_a_bare_array_answer_and_json_s_fallback() -> None:
    memo, route = RowMemo(), _route("GetReleaseHistory")
    history = HISTORY()
    history.revisions.add(revision=1, status="superseded", chart="etcd-8.11.1")
    history.revisions.add(revision=2, status="deployed", description="é")
    wire = history.SerializeToString()
    expected = dumps(response_json(route, HISTORY.FromString(wire)))
    assert json.loads(expected)[1]["revision"] == 2  # the bare `revisions` array
    assert dumps(memo.response_json(route, HISTORY, wire)) == expected
    # What orjson refuses elsewhere in the answer is written by json, rows included.
    data = {"rows": memo.response_json(route, HISTORY, wire), "big": 2**64}
    assert json.loads(dumps(data)) == {"rows": json.loads(expected), "big": 2**64}


def test_the_memo_stays_within_its_bytes() -> None:
    memo, route = RowMemo(max_bytes=40_000), _route("ListReleases")
    for start in range(0, 400, 50):
        page = release_pb2.ListReleasesResponse()
        for i in range(start, start + 50):
            page.releases.add(id=f"id-{i}", name=f"r{i}", config=struct_pb2.Struct())
        memo.response_json(route, LIST, page.SerializeToString())
    assert 0 < len(memo) < 400 and memo.bytes <= 40_000  # rows and whole answers together


def test_an_empty_answer_still_has_its_rows_key() -> None:
    memo, route = RowMemo(), _route("ListReleases")
    expected = dumps(response_json(route, LIST()))
    assert dumps(memo.response_json(route, LIST, b"")) == expected
    assert json.loads(expected)["releases"] == []


def test_an_answer_asked_again_is_one_lookup_and_exact() -> None:
    memo, route = RowMemo(), _route("ListReleases")
    wire = _page(5).SerializeToString()
    first = memo.response_json(route, LIST, wire)
    held = memo.bytes
    again = memo.response_json(route, LIST, bytes(wire))  # equal bytes, another object
    assert again is first and memo.bytes == held
    other = _page(5, status="failed").SerializeToString()
    assert dumps(memo.response_json(route, LIST, other)) == dumps(
        response_json(route, LIST.FromString(other)))
    # The same bytes answered on another route are that route's answer, not this one's.
    history = _route("GetReleaseHistory")
    assert memo.response_json(history, HISTORY, b"") is not first
