"""The `capstan` subcommands, one module per area; each module's `register` adds its parsers.

Every subcommand parser sets `run`, a handler `(ctx: Context, args: Namespace) -> None`.
"""

from __future__ import annotations

import argparse

from capstan.cli.commands import charts, clusters, releases
from capstan.cli.commands.common import Subparsers

__all__ = ["register_all"]


def register_all(subparsers: Subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """Add every subcommand, in the order `capstan --help` lists them."""
    for module in (releases, charts, clusters):
        module.register(subparsers, parents)
