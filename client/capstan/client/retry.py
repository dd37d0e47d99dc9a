"""When to retry a call and how long to wait: shared by the sync and the asyncio client.

Two kinds of failure are retried, with the same count of retries:

- UNAVAILABLE, for idempotent calls only (reads, watch set-up, repository sync), with
  exponential backoff and jitter: a write that met it may have run;
- RESOURCE_EXHAUSTED that the server marks as "retry after" (its helm queue was full:
  `reason: helm_queue_full`, `retry_after_seconds`), for every call: the server refused it
  before anything ran, so even a write is safe to send again. The wait is the server's hint
  (at least the backoff), with a little jitter so that refused callers do not return at once.

All attempts of one call share its deadline: a retry never extends how long the caller waits,
and a hint that points past the deadline is not waited for.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from capstan.client.errors import CapstanError

__all__ = ["Attempts", "RetryPolicy", "retry_after"]

#: Never hand gRPC a zero or negative timeout: it would fail before sending anything useful.
_MIN_ATTEMPT_TIMEOUT_S = 0.001
#: A retry is only made when at least this much of the call's deadline is left for it after
#: the wait: an attempt started with a few milliseconds left ends in DEADLINE_EXCEEDED, which
#: would hide the error that was being retried.
_MIN_RETRY_ATTEMPT_S = 0.1


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
        hint = retry_after(error)
        if hint is None and not (self._idempotent and error.code == grpc.StatusCode.UNAVAILABLE):
            return None
        if self._retries >= self._policy.retries:
            return None
        delay = self._policy.backoff(self._retries)
        if hint is not None:
            delay = max(delay, hint * random.uniform(1.0, 1.2))
        if (self._deadline is not None
                and self._clock() + delay + _MIN_RETRY_ATTEMPT_S > self._deadline):
            return None
        self._retries += 1
        return delay


def retry_after(error: CapstanError) -> float | None:
    """The seconds after which the server asks for `error`'s call to be sent again, when it
    refused the call before running anything (RESOURCE_EXHAUSTED with `retry_after_seconds`);
    None for any other error."""
    if error.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    for detail in error.details:
        seconds = detail.get("retry_after_seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            return float(seconds)
    return None
