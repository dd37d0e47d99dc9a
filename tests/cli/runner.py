"""Running `capstan` in-process, the way a user's shell would, capturing its output."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from capstan.cli.main import run


@dataclass
class Result:
    """Exit code and output of one `capstan` command line."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class TTY(io.StringIO):
    """A captured stream that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def capstan(endpoint: str, *argv: str, stderr: io.StringIO | None = None) -> Result:
    """`capstan --endpoint ENDPOINT ARGV...`."""
    out, err = io.StringIO(), stderr if stderr is not None else io.StringIO()
    code = run(["--endpoint", endpoint, *argv], stdout=out, stderr=err, env={})
    return Result(code, out.getvalue(), err.getvalue())
