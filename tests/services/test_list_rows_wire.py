"""ListReleases splices its cached rows in as wire bytes (`release_list.length_delimited`): the
bytes are what protobuf itself writes for the field, whatever the row's length."""

from __future__ import annotations

import pytest

from capstan.v1 import release_pb2
from capstan_server.services.release_list import RELEASES_FIELD, length_delimited


@pytest.mark.parametrize("size", [0, 1, 100, 127, 128, 300, 16_383, 16_384, 3_000_000])
def test_a_row_on_the_wire_is_what_protobuf_writes(size: int) -> None:
    row = release_pb2.Release(name="r", description="d" * size)
    wire = length_delimited(RELEASES_FIELD, row.SerializeToString())
    assert wire == release_pb2.ListReleasesResponse(releases=[row]).SerializeToString()
    page = release_pb2.ListReleasesResponse.FromString(wire * 3)
    assert [r.description for r in page.releases] == ["d" * size] * 3
