"""A failed call raises the CapstanError subclass of its status, with message and details."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from capstan.client import (
    Aborted,
    AlreadyExists,
    AsyncCapstanClient,
    CapstanClient,
    CapstanError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from capstan.v1 import release_pb2

from .fake_capstan import Failure, FakeCapstan

CANDIDATES = [{"candidates": ["test122/default/etcd", "prod/default/etcd"]}]


@pytest.fixture
def client(fake: FakeCapstan) -> Iterator[CapstanClient]:
    with CapstanClient(fake.target, retries=0) as client:
        yield client


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
        (grpc.StatusCode.ABORTED, Aborted),
        (grpc.StatusCode.UNAVAILABLE, Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceeded),
        (grpc.StatusCode.UNAUTHENTICATED, Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
    ],
)
def test_each_status_has_its_exception(
    fake: FakeCapstan,
    client: CapstanClient,
    code: grpc.StatusCode,
    error_type: type[CapstanError],
) -> None:
    fake.reply("GetRelease", Failure(code, "release name etcd is ambiguous", CANDIDATES))

    with pytest.raises(error_type) as raised:
        client.get_release("etcd")

    error = raised.value
    assert isinstance(error, CapstanError)
    assert error.code == code
    assert error.message == "release name etcd is ambiguous"
    assert error.details == CANDIDATES
    assert str(error) == f"{code.name}: release name etcd is ambiguous"


def test_other_statuses_raise_the_base_class(fake: FakeCapstan, client: CapstanClient) -> None:
    fake.reply("GetRelease", Failure(grpc.StatusCode.DATA_LOSS, "no"))

    with pytest.raises(CapstanError) as raised:
        client.get_release("etcd")

    assert type(raised.value) is CapstanError
    assert raised.value.code == grpc.StatusCode.DATA_LOSS
    assert raised.value.details == []


def test_a_status_without_rich_details_has_none(fake: FakeCapstan, client: CapstanClient) -> None:
    def plain_abort(request: object, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.NOT_FOUND, "release etcd not found")

    fake.reply("GetRelease", plain_abort)

    with pytest.raises(NotFound) as raised:
        client.get_release("etcd")

    assert raised.value.message == "release etcd not found"
    assert raised.value.details == []


def test_several_details_keep_their_order(fake: FakeCapstan, client: CapstanClient) -> None:
    details = [{"field": "release_name", "problem": "uppercase"}, {"hint": "use a-z0-9-"}]
    fake.reply("CreateRelease", Failure(grpc.StatusCode.INVALID_ARGUMENT, "bad name", details))

    with pytest.raises(InvalidArgument) as raised:
        client.create_release("bitnami-new/etcd", release_name="Etcd")

    assert raised.value.details == details


async def test_the_async_client_raises_the_same_errors(fake: FakeCapstan) -> None:
    fake.reply("GetRelease", Failure(grpc.StatusCode.NOT_FOUND, "release x not found", CANDIDATES))
    fake.reply("CreateRelease", release_pb2.Release(name="x"))

    async with AsyncCapstanClient(fake.target, retries=0) as client:
        with pytest.raises(NotFound) as raised:
            await client.get_release("x")
        created = await client.create_release("bitnami-new/etcd", release_name="x")

    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert raised.value.details == CANDIDATES
    assert created.name == "x"
