"""Arguments several commands share, with climc's help texts, and their parsing; how every
`*-list` command prints its page."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar, cast

from google.protobuf.message import Message

from capstan.cli.context import Context
from capstan.cli.output import Column, print_json, print_page_summary, print_table
from capstan.client import to_dict

__all__ = [
    "Subparsers",
    "add_cluster",
    "add_command",
    "add_namespace",
    "add_paging",
    "add_timeout",
    "seconds",
    "show_page",
]

T = TypeVar("T")

#: The object `add_subparsers` returns (only subscriptable for type checkers).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def add_command(
    subparsers: Subparsers,
    name: str,
    summary: str,
    parents: list[argparse.ArgumentParser],
    run: Any,
) -> argparse.ArgumentParser:
    """A subcommand parser whose help starts, like climc's, with the one-line summary."""
    parser = subparsers.add_parser(name, help=summary, description=summary, parents=parents)
    parser.set_defaults(run=run)
    return parser


def add_cluster(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", default="", help="Kubernetes cluster name")


def add_namespace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--namespace", default="", help="Namespace of this resource")


def add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=0,
        help="Time in seconds to wait for any individual kubernetes operation "
        "(like Jobs for hooks)",
    )


def add_paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=0, help="Page limit")
    parser.add_argument("--offset", type=int, default=0, help="Page offset")


def seconds(text: str) -> int:
    """A timeout in seconds: `300`, or a helm-style duration such as `5m` or `1m30s`."""
    if text.isdigit():
        return int(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (use e.g. 300, 300s or 5m)")
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


class Page(Protocol):
    """A List* response, as far as climc's page line needs it."""

    @property
    def total(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def offset(self) -> int: ...


def show_page(ctx: Context, page: Page, columns: Sequence[Column[T]], items: Iterable[T]) -> None:
    """A List* response: the gateway's JSON, or `items` as a table under climc's page line."""
    if ctx.json:
        print_json(ctx.stdout, to_dict(cast(Message, page)))
        return
    print_table(ctx.stdout, columns, items)
    print_page_summary(ctx.stdout, page.total, page.limit, page.offset)
