"""Settings shared by the sync and the asyncio client: default deadline, retries, metadata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from capstan.client.calls import Call, call_timeout
from capstan.client.credentials import find_token, token_metadata
from capstan.client.retry import Attempts, RetryPolicy

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_TIMEOUT_S",
    "ClientOptions",
    "Metadata",
    "message_size_options",
    "with_token",
]

#: Metadata sent with every call, e.g. `{"authorization": "Bearer ..."}` (keys lower-case).
Metadata: TypeAlias = Mapping[str, str] | Sequence[tuple[str, str | bytes]]

#: Default deadline of a call, in seconds. Calls that start an operation on the server (create,
#: upgrade, rollback, delete, watch) wait at least as long as that operation may take.
DEFAULT_TIMEOUT_S = 30.0

#: Largest gRPC message sent or received: the server's default too (`capstan-server
#: --max-message-bytes`), so that whatever the server sends, the client can read. gRPC's own
#: default (4 MiB) is too small for a release with large values or many resources.
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def message_size_options(
    max_message_bytes: int, channel_options: Sequence[tuple[str, Any]] = ()
) -> list[tuple[str, Any]]:
    """Channel options with the message size limits; `channel_options` given win."""
    given = {key for key, _ in channel_options}
    sizes = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    return [*(item for item in sizes if item[0] not in given), *channel_options]


@dataclass(frozen=True)
class ClientOptions:
    """What a client applies to every call it makes."""

    timeout: float | None
    retry: RetryPolicy
    metadata: tuple[tuple[str, str | bytes], ...]

    @classmethod
    def create(
        cls, *, timeout: float | None, retries: int | RetryPolicy, metadata: Metadata | None
    ) -> ClientOptions:
        policy = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries=retries)
        if metadata is None:
            pairs: tuple[tuple[str, str | bytes], ...] = ()
        elif isinstance(metadata, Mapping):
            pairs = tuple(metadata.items())
        else:
            pairs = tuple(metadata)
        return cls(timeout=timeout, retry=policy, metadata=pairs)

    def attempts(self, call: Call[Any]) -> Attempts:
        """Fresh retry bookkeeping for one call."""
        return Attempts(
            self.retry,
            idempotent=call.rpc.idempotent,
            timeout=call_timeout(call, self.timeout),
        )

    @property
    def grpc_metadata(self) -> tuple[tuple[str, str | bytes], ...] | None:
        return self.metadata or None


def with_token(endpoint: str, metadata: Metadata | None, token: str | None) -> Metadata | None:
    """`metadata` plus the bearer token (`credentials.find_token`), unless it already carries
    a credential."""
    pairs = list(metadata.items() if isinstance(metadata, Mapping) else metadata or ())
    if any(key.lower() in ("authorization", "x-auth-token") for key, _ in pairs):
        return metadata
    found = find_token(endpoint, token=token)
    if found is None:
        return metadata
    return [*pairs, *token_metadata(found)]
