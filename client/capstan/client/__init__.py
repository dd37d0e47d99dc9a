"""Typed Python client for Capstan's gRPC API (releases, chart repositories, clusters).

One method per RPC, with keyword arguments mirroring the request fields; methods return the
generated messages (`capstan.v1.*_pb2`), and `to_dict` turns any of them into the JSON the REST
gateway answers with. Each call has a deadline (the client's `timeout`, or `deadline=` per
call); idempotent calls (get, list, history, watch set-up, repository sync) are retried on
UNAVAILABLE with exponential backoff, writes never are. A failed call raises a `CapstanError`
subclass carrying the gRPC `code`, the `message` and the server's structured `details`.

Example — the seed scenario, from another service::

    from capstan.client import CapstanClient, NotFound, to_dict

    with CapstanClient("127.0.0.1:50051", timeout=30, token=token) as capstan:
        capstan.create_release(
            "bitnami-new/etcd", cluster="test122", namespace="default",
            release_name="etcd-release",
        )
        page = capstan.list_releases(type="external", name="etcd-release")
        print([r.name for r in page.releases], page.total)
        release = capstan.upgrade_release(
            "etcd-release", "bitnami-new/etcd", values='image:\\n  tag: "3.5.8-debian-11-r9"\\n',
        )
        for event in capstan.watch_release("etcd-release"):   # until the release settles
            print(event.release.status, event.release.progress)
        history = capstan.get_release_history("etcd-release").revisions
        capstan.rollback_release("etcd-release", 2)
        print(to_dict(capstan.get_release("etcd-release"))["config"])
        capstan.delete_release("etcd-release")
        try:
            capstan.get_release("etcd-release")
        except NotFound as err:
            print(err.code, err.message, err.details)

`AsyncCapstanClient` has the same methods for asyncio (`await client.get_release(...)`,
`async for event in client.watch_release(...)`).
"""

from capstan.client.aio import AsyncCapstanClient
from capstan.client.errors import (
    Aborted,
    AlreadyExists,
    CapstanError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from capstan.client.messages import to_dict
from capstan.client.options import DEFAULT_MAX_MESSAGE_BYTES
from capstan.client.retry import RetryPolicy
from capstan.client.sync import CapstanClient, ServerStream

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "Aborted",
    "AlreadyExists",
    "AsyncCapstanClient",
    "CapstanClient",
    "CapstanError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RetryPolicy",
    "ServerStream",
    "Unauthenticated",
    "Unavailable",
    "to_dict",
]
