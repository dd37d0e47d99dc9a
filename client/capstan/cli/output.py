"""Printing results: `--output json` (the REST gateway's JSON) or readable tables.

Command modules say which columns and fields a resource has; this module only lays them out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Generic, TextIO, TypeVar

import yaml
from google.protobuf import timestamp_pb2

from capstan.client.messages import whole_numbers

__all__ = [
    "Column",
    "print_fields",
    "print_json",
    "print_page_summary",
    "print_table",
    "print_text_block",
    "print_yaml_block",
    "timestamp",
]

T = TypeVar("T")

_GAP = "   "
_INDENT = "  "


@dataclass(frozen=True)
class Column(Generic[T]):
    """One table column: its header and how to get a row's cell."""

    header: str
    cell: Callable[[T], object]


def print_json(out: TextIO, value: object) -> None:
    """`value` as indented JSON, field order kept."""
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def print_table(out: TextIO, columns: Sequence[Column[T]], items: Iterable[T]) -> None:
    """Left-aligned columns under upper-case headers, like `helm list` and `kubectl get`."""
    rows = [[col.header for col in columns]]
    rows += [[_cell(col.cell(item)) for col in columns] for item in items]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        line = _GAP.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        out.write(line.rstrip() + "\n")


def print_page_summary(out: TextIO, total: int, limit: int, offset: int) -> None:
    """climc's line under a list: how many there are and which page this was."""
    out.write(f"***  Total: {total}  Limit: {limit}  Offset: {offset}  ***\n")


def print_fields(out: TextIO, fields: Sequence[tuple[str, object]]) -> None:
    """`KEY:  value` lines for one object, keys aligned."""
    width = max((len(key) for key, _ in fields), default=0) + 1
    for key, value in fields:
        out.write(f"{(key + ':').ljust(width)}  {_cell(value)}".rstrip() + "\n")


def print_yaml_block(out: TextIO, title: str, value: object) -> None:
    """`TITLE:` then `value` as indented YAML (skipped when empty)."""
    if not value:
        return
    text = yaml.safe_dump(
        whole_numbers(value), default_flow_style=False, sort_keys=True, allow_unicode=True
    )
    print_text_block(out, title, text)


def print_text_block(out: TextIO, title: str, text: str) -> None:
    """`TITLE:` then `text` indented (skipped when empty)."""
    if not text.strip():
        return
    out.write(f"{title}:\n")
    for line in text.rstrip("\n").splitlines():
        out.write(f"{_INDENT}{line}".rstrip() + "\n")


def timestamp(value: timestamp_pb2.Timestamp) -> str:
    """A timestamp as `2023-05-10 18:13:39 UTC`; empty when unset."""
    if value.seconds == 0 and value.nanos == 0:
        return ""
    return value.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(item) for item in value)
    text = str(value)
    # A table cell stays on one line.
    return " ".join(text.split()) if "\n" in text else text
