"""The bytes of the gateway's JSON answers (gateway/json_body.py): sorted keys, UTF-8 as it is,
and what orjson refuses still written, as json writes it."""

from __future__ import annotations

import json

from capstan_server.gateway.json_body import dumps, json_response


def test_keys_sorted_utf8_raw_and_compact() -> None:
    assert dumps({"b": 1, "a": "étcd", "é": [1.5, 2.0, None, True]}) == (
        '{"a":"étcd","b":1,"é":[1.5,2.0,null,true]}'.encode())


def test_numbers_read_back_as_jsons() -> None:
    numbers = [0.1, 1.5e-7, 1e16, 1e300, 5e-324, -0.0, 2**63 - 1, -(2**63), 2**64 - 1, 3.0]
    assert json.loads(dumps(numbers)) == json.loads(json.dumps(numbers))
    assert json.loads(dumps(numbers))[-1] == 3.0 and isinstance(json.loads(dumps(3.0)), float)


def test_what_orjson_refuses_is_written_by_json() -> None:
    deep: list[object] = []
    for _ in range(300):
        deep = [deep]
    for data in ({"big": 2**64}, {"small": -(2**63) - 1}, {"deep": deep}, {"lone": "\ud800é"}):
        body = dumps(data)
        body.decode("utf-8")  # valid UTF-8, whatever it holds
        assert json.loads(body) == data


def test_a_response_carries_the_bytes_as_utf8_json() -> None:
    response = json_response({"a": "é"}, status=404)
    assert response.status == 404
    assert response.body == '{"a":"é"}'.encode()
    assert response.content_type == "application/json" and response.charset == "utf-8"
