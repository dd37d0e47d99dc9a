"""What every command handler gets: the parsed global options, the streams and the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TextIO

from capstan.client import DEFAULT_MAX_MESSAGE_BYTES, CapstanClient
from capstan.client.options import DEFAULT_TIMEOUT_S
from capstan.client.sync import Interceptor

__all__ = ["Context", "UsageError"]


class UsageError(Exception):
    """A mistake found on the client before anything is sent (exit code 2, like argparse's)."""


@dataclass
class Context:
    """The global options of one `capstan` invocation and the client it talks through."""

    endpoint: str
    output: Literal["json", "table"]
    #: `--timeout`: the deadline of each call in seconds; None for the client's default.
    call_timeout: float | None
    stdout: TextIO
    stderr: TextIO
    #: `--max-message-bytes`: the largest gRPC message sent or received.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    interceptors: tuple[Interceptor, ...] = ()
    #: `--token`, `--ca-cert`, `--client-cert`, `--client-key` (see cli/credentials.py).
    token: str | None = None
    tls: dict[str, str] = field(default_factory=dict)
    _client: CapstanClient | None = field(default=None, init=False, repr=False)

    @property
    def json(self) -> bool:
        return self.output == "json"

    @property
    def client(self) -> CapstanClient:
        """The client, connected on first use (so usage errors never open a channel)."""
        if self._client is None:
            timeout = DEFAULT_TIMEOUT_S if self.call_timeout is None else self.call_timeout
            self._client = CapstanClient(
                self.endpoint,
                timeout=timeout,
                interceptors=self.interceptors,
                max_message_bytes=self.max_message_bytes,
                token=self.token,
                ca_cert=self.tls.get("ca_cert"),
                client_cert=self.tls.get("client_cert"),
                client_key=self.tls.get("client_key"),
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
