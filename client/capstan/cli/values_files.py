"""`-f/--values` files: read and checked on the client, so a bad file fails before any call.

Each file must be one YAML document whose top level is a mapping (an empty file counts as no
values). The files are sent as one YAML text, their documents in command-line order, which the
server merges in that order as Helm does.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

import yaml

from capstan.cli.context import UsageError

__all__ = ["ValuesFileError", "read_values_files"]

#: `-f -` reads the values from standard input, as with helm.
STDIN = "-"


class ValuesFileError(UsageError):
    """A values file is missing, unreadable, not YAML, or not a mapping."""

    def __init__(self, path: str, problem: str, line: int | None = None) -> None:
        where = path if line is None else f"{path}, line {line}"
        super().__init__(f"values file {where}: {problem}")
        self.path = path
        self.line = line


def read_values_files(paths: Sequence[str], stdin: TextIO | None = None) -> str:
    """The YAML text to send for `paths` ("" when there are none or all are empty)."""
    documents = [_read_one(path, stdin) for path in paths]
    return _join([doc for doc in documents if doc is not None])


def _read_one(path: str, stdin: TextIO | None) -> str | None:
    """The text of one checked file, or None when it holds no values at all."""
    try:
        if path == STDIN:
            text = (stdin or sys.stdin).read()
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read()
    except FileNotFoundError:
        raise ValuesFileError(path, "no such file") from None
    except IsADirectoryError:
        raise ValuesFileError(path, "is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValuesFileError(path, f"cannot be read: {exc}") from None
    return text if _check(path, text) else None


def _check(path: str, text: str) -> bool:
    """Whether `text` holds values; raises ValuesFileError when it is not a single mapping."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return False
        if not isinstance(node, yaml.MappingNode):
            kind = _KINDS.get(type(node), "a scalar")
            raise ValuesFileError(
                path, f"top level is {kind}, not a mapping of values", node.start_mark.line + 1
            )
        loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = ", ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise ValuesFileError(path, problem, None if mark is None else mark.line + 1) from None
    except yaml.YAMLError as exc:
        raise ValuesFileError(path, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return True


_KINDS: dict[type[yaml.Node], str] = {
    yaml.SequenceNode: "a list",
    yaml.ScalarNode: "a scalar",
}


def _join(documents: Sequence[str]) -> str:
    parts: list[str] = []
    for text in documents:
        if parts and not _starts_explicitly(text):
            parts.append("---\n")
        parts.append(text if text.endswith("\n") else text + "\n")
    return "".join(parts)


def _starts_explicitly(text: str) -> bool:
    """Whether the document in `text` opens with its own `---` (then no separator is added)."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            return bool(event.explicit)
    return False
