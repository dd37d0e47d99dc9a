"""ListReleases splices its cached rows in as wire bytes (`wire.length_delimited`), and the
gateway reads an answer's rows back by theirs (`wire.split_fields`): the bytes are what protobuf
itself writes and reads for the field, whatever the row's length."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError

from capstan.v1 import release_pb2
from capstan_server.services.release_list import RELEASES_FIELD
from capstan_server.wire import length_delimited, split_fields


@pytest.mark.parametrize("size", [0, 1, 100, 127, 128, 300, 16_383, 16_384, 3_000_000])
def test_a_row_on_the_wire_is_what_protobuf_writes(size: int) -> None:
    row = release_pb2.Release(name="r", description="d" * size)
    wire = length_delimited(RELEASES_FIELD, row.SerializeToString())
    assert wire == release_pb2.ListReleasesResponse(releases=[row]).SerializeToString()
    page = release_pb2.ListReleasesResponse.FromString(wire * 3)
    assert [r.description for r in page.releases] == ["d" * size] * 3


def _answer() -> release_pb2.ListReleasesResponse:
    page = release_pb2.ListReleasesResponse(total=300, limit=2, offset=298)
    page.releases.add(name="a", version=3, config={"k": [1, "é"]})
    page.releases.add(name="b" * 200, description="d" * 20_000)
    page.unreachable_clusters.add(name="far", stale_seconds=2.5)
    return page


def test_an_answer_s_rows_are_read_by_their_bytes_and_the_rest_kept() -> None:
    page = _answer()
    rest, rows = split_fields(page.SerializeToString(), [RELEASES_FIELD])
    assert rows[RELEASES_FIELD] == [r.SerializeToString() for r in page.releases]
    kept = release_pb2.ListReleasesResponse.FromString(rest)
    assert not kept.releases and kept.total == 300 and kept.offset == 298
    assert kept.unreachable_clusters[0].stale_seconds == 2.5
    assert split_fields(b"", [RELEASES_FIELD]) == (b"", {RELEASES_FIELD: []})


def test_bytes_that_are_no_message_are_a_decode_error_never_another() -> None:
    wire = _answer().SerializeToString()
    boundaries = 0
    for end in range(len(wire)):
        try:
            rest, _ = split_fields(wire[:end], [RELEASES_FIELD])
        except DecodeError:
            continue
        boundaries += 1  # a prefix that ends between two fields is a message of its own
        release_pb2.ListReleasesResponse.FromString(rest)
    assert 0 < boundaries < 10
    for bad in (b"\x0f", b"\x00\x01", b"\x0a\x05ab", b"\xff" * 11, b"\x08"):
        with pytest.raises(DecodeError):
            split_fields(bad, [RELEASES_FIELD])
    with pytest.raises(DecodeError):  # the rows' field with another wire type
        split_fields(b"\x08\x01", [RELEASES_FIELD])
