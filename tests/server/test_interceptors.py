"""The RPC interceptor: one log line per call, CapstanErrors as rich statuses, bugs as INTERNAL."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import json_format, struct_pb2
from google.rpc import status_pb2

from capstan_server.errors import Aborted, NotFound
from capstan_server.interceptors import RpcInterceptor
from capstan_server.logs import JsonFormatter, TextFormatter

SERVICE = "test.Probe"


async def _found(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return b"ok:" + request


async def _not_found(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    raise NotFound("release 'etcd' is not there", details=[{"release": "etcd", "tried": [1, 2]}])


async def _bug(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    raise KeyError("the secret key that must not leak")


def _unimplemented(request: bytes, context: grpc.ServicerContext) -> bytes:
    # What the generated servicer base classes do (and they are not coroutines).
    context.set_code(grpc.StatusCode.UNIMPLEMENTED)
    raise NotImplementedError("Method not implemented!")


async def _aborts(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not yours")


async def _stream_then_abort(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    yield b"one"
    yield b"two"
    raise Aborted("release is pending-upgrade since 10:00")


async def _stream_by_write(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.write(b"written")


async def _endless(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    while True:
        yield b"tick"
        await asyncio.sleep(0.02)


HANDLERS: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
    "Found": grpc.unary_unary_rpc_method_handler(_found),
    "NotFound": grpc.unary_unary_rpc_method_handler(_not_found),
    "Bug": grpc.unary_unary_rpc_method_handler(_bug),
    "Unimplemented": grpc.unary_unary_rpc_method_handler(_unimplemented),
    "Aborts": grpc.unary_unary_rpc_method_handler(_aborts),
    "StreamThenAbort": grpc.unary_stream_rpc_method_handler(_stream_then_abort),
    "StreamByWrite": grpc.unary_stream_rpc_method_handler(_stream_by_write),
    "Endless": grpc.unary_stream_rpc_method_handler(_endless),
}


class Probe:
    def __init__(self, channel: grpc.aio.Channel, interceptor: RpcInterceptor) -> None:
        self.channel = channel
        self.interceptor = interceptor

    def unary(self, name: str) -> Callable[..., Any]:
        return self.channel.unary_unary(f"/{SERVICE}/{name}")

    def stream(self, name: str) -> Callable[..., Any]:
        return self.channel.unary_stream(f"/{SERVICE}/{name}")


@pytest.fixture
async def probe() -> AsyncIterator[Probe]:
    interceptor = RpcInterceptor()
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, HANDLERS)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Probe(channel, interceptor)
    await server.stop(None)


async def _rpc_lines(caplog: pytest.LogCaptureFixture, count: int = 1) -> list[dict[str, Any]]:
    """The `rpc` log lines, once there are `count` of them. A line is written when the handler
    returns, and `context.abort` sends the status before that: the caller may be first."""
    for _ in range(100):
        lines = [getattr(r, "fields", {}) for r in caplog.records
                 if r.name == "capstan.rpc" and r.msg == "rpc"]
        if len(lines) >= count:
            return lines
        await asyncio.sleep(0.01)
    pytest.fail(f"expected {count} rpc log lines, got {lines}")


async def test_a_successful_call_is_logged_once_with_method_code_duration_and_peer(
    probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "capstan.rpc")
    assert await probe.unary("Found")(b"x") == b"ok:x"
    [line] = await _rpc_lines(caplog)
    assert line["method"] == f"/{SERVICE}/Found"
    assert line["code"] == "OK"
    assert isinstance(line["duration_ms"], float)
    assert line["peer"].startswith("ipv4:127.0.0.1:")


async def test_a_capstan_error_becomes_its_status_with_struct_details(
    probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "capstan.rpc")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await probe.unary("NotFound")(b"")
    error = caught.value
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == "release 'etcd' is not there"
    [raw] = [v for k, v in error.trailing_metadata() or () if k == "grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    assert status.code == grpc.StatusCode.NOT_FOUND.value[0]
    struct = struct_pb2.Struct()
    assert status.details[0].Unpack(struct)
    assert json_format.MessageToDict(struct) == {"release": "etcd", "tried": [1, 2]}
    assert (await _rpc_lines(caplog))[0]["code"] == "NOT_FOUND"


async def test_a_bug_is_internal_without_leaking_and_is_logged_with_its_traceback(
    probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "capstan.rpc")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await probe.unary("Bug")(b"")
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    message = caught.value.details() or ""
    assert message.startswith("internal error (ref ")
    assert "secret" not in message and "Traceback" not in message
    ref = message.removeprefix("internal error (ref ").rstrip(")")
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert ref in logged.getMessage()
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], KeyError)
    assert (await _rpc_lines(caplog))[0]["code"] == "INTERNAL"


async def test_unimplemented_and_explicit_aborts_keep_their_codes(
    probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "capstan.rpc")
    for name, code in (("Unimplemented", grpc.StatusCode.UNIMPLEMENTED),
                       ("Aborts", grpc.StatusCode.PERMISSION_DENIED)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await probe.unary(name)(b"")
        assert caught.value.code() is code
    codes = {line["code"] for line in await _rpc_lines(caplog, 2)}
    assert codes == {"UNIMPLEMENTED", "PERMISSION_DENIED"}


async def test_a_stream_delivers_its_messages_then_the_error_status(
    probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "capstan.rpc")
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for message in probe.stream("StreamThenAbort")(b""):
            received.append(message)
    assert received == [b"one", b"two"]
    assert caught.value.code() is grpc.StatusCode.ABORTED
    [line] = await _rpc_lines(caplog)
    assert (line["code"], line["messages"]) == ("ABORTED", 2)


async def test_a_stream_written_with_context_write_works(probe: Probe) -> None:
    assert [m async for m in probe.stream("StreamByWrite")(b"")] == [b"written"]


async def test_draining_ends_streams_in_flight_with_unavailable(probe: Probe) -> None:
    call = probe.stream("Endless")(b"")
    assert await call.read() == b"tick"
    probe.interceptor.drain_streams()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        while True:
            await call.read()
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert caught.value.details() == "server is shutting down"


def _record(**fields: Any) -> logging.LogRecord:
    record = logging.LogRecord("capstan.rpc", logging.INFO, __file__, 1, "rpc", None, None)
    record.fields = fields
    return record


def test_json_log_lines_carry_the_fields_at_top_level() -> None:
    line = json.loads(JsonFormatter().format(_record(method="/m", code="OK", duration_ms=1.5)))
    assert line["msg"] == "rpc"
    assert (line["method"], line["code"], line["duration_ms"]) == ("/m", "OK", 1.5)
    assert line["level"] == "info" and line["logger"] == "capstan.rpc"


def test_text_log_lines_end_with_key_value_pairs() -> None:
    text = TextFormatter().format(_record(method="/m", code="NOT_FOUND", peer="a b"))
    assert text.endswith('rpc method=/m code=NOT_FOUND peer="a b"')
