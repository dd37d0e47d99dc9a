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
    "bounded_int",
    "seconds",
    "show_page",
]

T = TypeVar("T")

#: The object `add_subparsers` returns (only subscriptable for type checkers).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
#: Every number of the API is an int32; a bigger one could not even be sent.
INT32_MAX = 2**31 - 1
#: The server's largest page (capstan_server.limits.MAX_PAGE_LIMIT).
MAX_PAGE_LIMIT = 1000


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
    parser.add_argument(
        "--limit", type=bounded_int(0, MAX_PAGE_LIMIT), default=0,
        help=f"Page limit (at most {MAX_PAGE_LIMIT})",
    )
    parser.add_argument("--offset", type=bounded_int(0), default=0, help="Page offset")


def bounded_int(low: int, high: int = INT32_MAX) -> Any:
    """An argparse `type` for a whole number from `low` to `high`: anything else is a usage
    error (exit 2), never a traceback."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__name__ = "number"  # argparse names the type in its messages
    return parse


def seconds(text: str) -> int:
    """A timeout in seconds: `300`, or a helm-style duration such as `5m` or `1m30s`."""
    match = _DURATION.fullmatch(text)
    if not text or (match is None and not text.isdigit()):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text[:40]!r} (use e.g. 300, 300s or 5m)"
        )
    parts = [text] if match is None else [part or "0" for part in match.groups()]
    if any(len(part) > 10 for part in parts):  # never convert a huge digit string
        raise argparse.ArgumentTypeError(f"duration {text[:40]!r} is too long")
    if match is None:
        total = int(text)
    else:
        hours, minutes, secs = (int(part) for part in parts)
        total = hours * 3600 + minutes * 60 + secs
    if total > INT32_MAX:
        raise argparse.ArgumentTypeError(f"duration {text[:40]!r} is too long")
    return total


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
