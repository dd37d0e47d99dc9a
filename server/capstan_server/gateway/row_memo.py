"""The JSON of listed rows, kept by their wire bytes.

A page of 200 releases costs ~12 us per row in `to_dict`, most of the gateway's time for a
list. The rows of one state of the server's caches come back byte for byte the same on every
page walk, so each row's JSON (by `json_body.dumps`, the one encoding) is kept against its
deterministic wire bytes and spliced into the answer as an `orjson.Fragment`. The key is the
whole row: a hit is exact, and the JSON is a function of nothing but the bytes the caller was
sent (nothing crosses from one caller to another). Least recently used rows go first, past
`max_bytes` of keys and JSON.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from capstan_server.gateway.json_body import dumps
from capstan_server.gateway.routes import Route
from capstan_server.gateway.transcode import message_json
from capstan_server.lru import ByteLRU

DEFAULT_MAX_BYTES = 16 << 20
_ENTRY_OVERHEAD = 200  # a key, a Fragment and an LRU node, beyond their bytes

_row_fields_of: dict[Descriptor, tuple[FieldDescriptor, ...]] = {}


def _row_fields(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    """A response's repeated message fields (its rows): their JSON key is their name."""
    found = _row_fields_of.get(descriptor)
    if found is None:
        found = _row_fields_of[descriptor] = tuple(
            f for f in descriptor.fields
            if f.is_repeated and f.message_type is not None
            and not f.message_type.GetOptions().map_entry
            and not f.message_type.full_name.startswith("google.protobuf."))
    return found


class RowMemo:
    """See the module docstring; one per gateway (one event loop: no locking)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._items: ByteLRU[tuple[str, bytes], orjson.Fragment] = ByteLRU(max_bytes)

    @property
    def bytes(self) -> int:
        return self._items.used

    def __len__(self) -> int:
        return len(self._items)

    def response_json(self, route: Route, message: Message) -> Any:
        """What `transcode.response_json` answers, rows spliced in from the memo. Consumes
        `message` (its rows are cleared once encoded)."""
        fields = _row_fields(cast(Descriptor, message.DESCRIPTOR))
        rows = {f.name: [self._row(row) for row in getattr(message, f.name)] for f in fields}
        for name in rows:
            message.ClearField(name)
        data = message_json(message)
        data.update(rows)
        return data[route.response_body] if route.response_body else data

    def _row(self, row: Message) -> orjson.Fragment:
        key = (cast(Descriptor, row.DESCRIPTOR).full_name,
               row.SerializeToString(deterministic=True))
        hit = self._items.get(key)
        if hit is not None:
            return hit
        text = dumps(message_json(row))
        fragment = orjson.Fragment(text)
        size = len(key[1]) + len(text) + _ENTRY_OVERHEAD
        if size <= self._items.budget // 16:  # no one row crowds the others out
            self._items.put(key, fragment, size)
        return fragment
