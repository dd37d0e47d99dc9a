"""The JSON of listed rows, and of whole list answers, kept by their wire bytes.

A page of 200 releases costs ~12 us per row in `to_dict`, most of the gateway's time for a
list. The rows of one state of the server's caches come back byte for byte the same on every
page walk, so each row's JSON (by `json_body.dumps`, the one encoding) is kept against its wire
bytes and spliced into the answer as an `orjson.Fragment`. The answer is read from the wire
(`wire.split_fields`): a row found in the memo is never parsed. A whole answer with rows is
kept the same way, so a page asked again while nothing changed (a dashboard's poll, a second
walk) is one lookup. The key is always the whole of the bytes: a hit is exact, and the JSON is
a function of nothing but the bytes the caller was sent (nothing crosses from one caller to
another). Least recently used entries go first, past `max_bytes` of keys and JSON (half of it
for rows, half for whole answers).
"""

from __future__ import annotations

import builtins
from typing import Any, cast

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from capstan_server.gateway.json_body import dumps
from capstan_server.gateway.routes import Route
from capstan_server.gateway.transcode import message_class, message_json, response_json
from capstan_server.lru import ByteLRU
from capstan_server.wire import split_fields

#: Both memos together: half for rows, half for whole answers.
DEFAULT_MAX_BYTES = 32 << 20
_ENTRY_OVERHEAD = 200  # a key, a Fragment and an LRU node, beyond their bytes

#: (field, its message class, that message's full name)
_Rows = tuple[tuple[FieldDescriptor, type[Message], str], ...]
_row_fields_of: dict[Descriptor, _Rows] = {}
#: JSON by (message type or route, wire bytes).
_Memo = ByteLRU[tuple[str, bytes], orjson.Fragment]


def _row_fields(descriptor: Descriptor) -> _Rows:
    """A response's repeated message fields (its rows); their JSON key is their name."""
    found = _row_fields_of.get(descriptor)
    if found is None:
        found = _row_fields_of[descriptor] = tuple(
            (f, message_class(f.message_type), f.message_type.full_name)
            for f in descriptor.fields
            if f.is_repeated and f.message_type is not None
            and not f.message_type.GetOptions().map_entry
            and not f.message_type.full_name.startswith("google.protobuf."))
    return found


class RowMemo:
    """See the module docstring; one per gateway (one event loop: no locking)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._rows: _Memo = ByteLRU(max_bytes // 2)
        self._answers: _Memo = ByteLRU(max_bytes // 2)

    @property
    def bytes(self) -> int:
        return self._rows.used + self._answers.used

    def __len__(self) -> int:
        return len(self._rows)

    def response_json(
        self, route: Route, response_type: type[Message], wire: builtins.bytes
    ) -> Any:
        """What `transcode.response_json` answers for the `response_type` message `wire` (for
        an answer with rows, its JSON bytes as one `orjson.Fragment`), rows spliced in from
        the memo. DecodeError when `wire` is no such message."""
        fields = _row_fields(cast(Descriptor, response_type.DESCRIPTOR))
        if not fields:
            return response_json(route, response_type.FromString(wire))
        key = (route.grpc_path, wire)  # (the route says which part of the message is answered)
        whole = self._answers.get(key)
        if whole is not None:
            return whole
        rest, rows = split_fields(wire, [f.number for f, _, _ in fields])
        data = message_json(response_type.FromString(rest))
        for field, row_type, kind in fields:
            data[field.name] = [self._row(row_type, kind, row) for row in rows[field.number]]
        text = dumps(data[route.response_body] if route.response_body else data)
        return _kept(self._answers, key, text, share=4)

    def _row(self, row_type: type[Message], kind: str, wire: builtins.bytes) -> orjson.Fragment:
        key = (kind, wire)
        hit = self._rows.get(key)
        if hit is not None:
            return hit
        text = dumps(message_json(row_type.FromString(wire)))
        return _kept(self._rows, key, text, share=16)  # no one row crowds the others out


def _kept(memo: _Memo, key: tuple[str, builtins.bytes], text: builtins.bytes, *, share: int
          ) -> orjson.Fragment:
    """`text` as a Fragment, kept in `memo` under `key` (whose bytes are the wire) unless key
    and JSON together would take more than 1/`share` of its budget."""
    fragment = orjson.Fragment(text)
    size = len(key[1]) + len(text) + _ENTRY_OVERHEAD
    if size <= memo.budget // share:
        memo.put(key, fragment, size)
    return fragment
