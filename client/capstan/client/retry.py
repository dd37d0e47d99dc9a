"""When to retry a call and how long to wait: shared by the sync and the asyncio client.

Only idempotent calls (reads, watch set-up, repository sync) are retried, and only on
UNAVAILABLE, with exponential backoff and jitter. All attempts of one call share its deadline:
a retry never extends how long the caller waits.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from capstan.client.errors import CapstanError

__all__ = ["Attempts", "RetryPolicy"]

#: Never hand gRPC a zero or negative timeout: it would fail before sending anything useful.
_MIN_ATTEMPT_TIMEOUT_S = 0.001


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently an idempotent call is retried on UNAVAILABLE."""

    #: Retries after the first attempt; 0 disables retrying.
    retries: int = 3
    #: Wait before the first retry, in seconds; doubled (`multiplier`) for each next one.
    initial_backoff: float = 0.1
    #: Upper bound of a single wait, in seconds.
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def backoff(self, retry: int) -> float:
        """The wait before retry number `retry` (0-based), with jitter in its upper half."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier**retry)
        return random.uniform(ceiling / 2, ceiling)


class Attempts:
    """The retry bookkeeping of one call: its deadline and the retries it has left."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        idempotent: bool,
        timeout: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._idempotent = idempotent
        self._clock = clock
        self._deadline = None if timeout is None else clock() + timeout
        self._retries = 0

    def timeout(self) -> float | None:
        """The gRPC timeout for the next attempt: what is left of the call's deadline."""
        if self._deadline is None:
            return None
        return max(self._deadline - self._clock(), _MIN_ATTEMPT_TIMEOUT_S)

    def next_delay(self, error: CapstanError) -> float | None:
        """How long to wait before retrying after `error`, or None to give up and raise it."""
        if not self._idempotent or error.code != grpc.StatusCode.UNAVAILABLE:
            return None
        if self._retries >= self._policy.retries:
            return None
        delay = self._policy.backoff(self._retries)
        if self._deadline is not None and self._clock() + delay >= self._deadline:
            return None
        self._retries += 1
        return delay
