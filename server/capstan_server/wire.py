"""The protobuf wire format, the little of it Capstan writes and reads by hand: a message's
repeated rows as bytes, so that rows can be kept, spliced into an answer and looked up by their
bytes without a parse and a serialization each (`services/release_list.py` writes a page from
its rows' bytes; `gateway/row_memo.py` reads the rows of an answer by theirs).

Each top-level field on the wire is a tag (field number and wire type, a varint), then its
value: a varint, 8 or 4 bytes, or a length (varint) and that many bytes.
"""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf.message import DecodeError

__all__ = ["length_delimited", "split_fields"]

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def length_delimited(number: int, payload: bytes) -> bytes:
    """`payload` as field `number` of a message on the wire (tag, length, bytes)."""
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(len(payload)) + payload


def split_fields(wire: bytes, numbers: Collection[int]) -> tuple[bytes, dict[int, list[bytes]]]:
    """The payloads of fields `numbers` of the message `wire` (length-delimited fields: strings,
    messages), each field's in order; and the rest of `wire`, every other field as it was.
    DecodeError when `wire` is not a message's bytes."""
    found: dict[int, list[bytes]] = {number: [] for number in numbers}
    rest: list[bytes] = []
    pos, end = 0, len(wire)
    while pos < end:
        start = pos
        tag = wire[pos]
        if tag < 0x80:  # field numbers up to 15: most tags are one byte
            pos += 1
        else:
            tag, pos = _read_varint(wire, pos)
        number, kind = tag >> 3, tag & 7
        if kind == _LENGTH_DELIMITED:
            length, pos = _read_varint(wire, pos)
            start_of_value, pos = pos, pos + length
            if pos > end:
                raise DecodeError("truncated message")
            if number in found:
                found[number].append(wire[start_of_value:pos])
                continue
        elif kind == _VARINT:
            _, pos = _read_varint(wire, pos)
        elif kind == _FIXED64:
            pos += 8
        elif kind == _FIXED32:
            pos += 4
        else:
            raise DecodeError(f"unexpected wire type {kind}")
        if pos > end or number in found or number == 0:
            raise DecodeError("truncated message or a field of the wrong type")
        rest.append(wire[start:pos])
    return b"".join(rest), found


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(wire: bytes, pos: int) -> tuple[int, int]:
    """The varint at `pos`, and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(wire) or shift > 63:
            raise DecodeError("truncated varint")
        byte = wire[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
