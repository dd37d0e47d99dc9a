"""`--debug`: print each request on stderr before it is sent (climc prints its curl line).

Secrets in requests (repository passwords, kubeconfigs) are masked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

__all__ = ["DebugInterceptor"]

Req = TypeVar("Req")
Resp = TypeVar("Resp")

#: Request fields whose values are never printed.
_SECRET_FIELDS = frozenset({"password", "kubeconfig"})


class DebugInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Writes `DEBUG: grpc <endpoint> <method>` and the request as JSON to `out`."""

    def __init__(self, out: TextIO, endpoint: str) -> None:
        self._out = out
        self._endpoint = endpoint

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Req], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Req,
    ) -> Any:
        self._print(client_call_details, request)
        return continuation(client_call_details, request)

    def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Req], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Req,
    ) -> Any:
        self._print(client_call_details, request)
        return continuation(client_call_details, request)

    def _print(self, details: grpc.ClientCallDetails, request: object) -> None:
        body: object = None
        if isinstance(request, Message):
            body = json_format.MessageToDict(request, preserving_proto_field_name=True)
            for key in _SECRET_FIELDS & body.keys():
                body[key] = "***"
        timeout = "" if details.timeout is None else f" (deadline {details.timeout:.0f}s)"
        self._out.write(f"DEBUG: grpc {self._endpoint} {details.method}{timeout}\n")
        self._out.write(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
        self._out.flush()
