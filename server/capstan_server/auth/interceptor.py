"""The auth interceptor: the one credential check of the server, for gRPC and REST alike.

Before a call runs it authenticates the caller (`Authenticator`), checks that the method is
within the caller's role (`methods.action_of`), and makes the caller's `Access` current for the
services; after it, it writes the audit line. A refused call is answered UNAUTHENTICATED or
PERMISSION_DENIED and never reaches its servicer. The health service stays open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio

from capstan_server.auth.access import Access, use_access
from capstan_server.auth.audit import REQUEST_ID, audit
from capstan_server.auth.authenticate import Authenticator
from capstan_server.auth.certs import identities_from_pem
from capstan_server.auth.methods import OPEN_PREFIXES, action_of, is_write
from capstan_server.errors import CapstanError
from capstan_server.handlers import messages_of, result_of, rewrap
from capstan_server.interceptors import status_for

__all__ = ["AuthInterceptor"]

if TYPE_CHECKING:
    from capstan_server.handlers import Continuation

Context = grpc.aio.ServicerContext[Any, Any]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates and authorizes each call, and audits writes and refusals."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        return rewrap(handler, unary=lambda b: self._unary(method, b),
                      stream=lambda b: self._stream(method, b), client_streaming=True)

    def _unary(
        self, method: str, behavior: Callable[[Any, Any], Any]
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        async def unary(request: Any, context: Context) -> Any:
            call = _Call(self, method, request, context)
            try:
                use_access(await call.admit())
                return await result_of(behavior, request, context)
            except BaseException as exc:
                await call.fail(exc)
                raise
            finally:
                call.audit()

        return unary

    def _stream(
        self, method: str, behavior: Callable[[Any, Any], Any]
    ) -> Callable[[Any, Context], AsyncIterator[Any]]:
        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            call = _Call(self, method, request, context)
            try:
                access = await call.admit()
                messages = messages_of(behavior(request, context))
                while True:
                    # Each step may run in a task of its own (the outer interceptor's drain
                    # logic), which would not see a context variable set in an earlier step.
                    use_access(access)
                    try:
                        message = await anext(messages)
                    except StopAsyncIteration:
                        return
                    yield message
            except BaseException as exc:
                await call.fail(exc)
                raise
            finally:
                call.audit()

        return stream


class _Call:
    """One call's admission and outcome, for its audit line."""

    def __init__(self, owner: AuthInterceptor, method: str, request: Any, context: Context):
        self.owner = owner
        self.method = method
        self.request = request
        self.context = context
        self.access: Access | None = None
        self.code = grpc.StatusCode.OK

    async def admit(self) -> Access:
        try:
            metadata = self.context.invocation_metadata() or ()
            identities = _peer_identities(self.context)
            self.access = await self.owner.authenticator.access(metadata, identities)
            # The method-level check: a viewer's write, a non-admin's cluster change.
            action = action_of(self.method)
            if not self.access.may_anywhere(action):
                self.access.refuse(action)
        except CapstanError as exc:
            # Answered here, so that the refusal is the same whatever runs around this.
            self.code = exc.code
            await self.context.abort_with_status(status_for(exc))
        assert self.access is not None
        return self.access

    async def fail(self, exc: BaseException) -> None:
        if isinstance(exc, CapstanError):
            self.code = exc.code
        elif isinstance(exc, grpc.aio.AbortError):
            code = self.context.code()
            if isinstance(code, grpc.StatusCode) and self.code is grpc.StatusCode.OK:
                self.code = code
        elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self.code = grpc.StatusCode.CANCELLED
        else:
            self.code = grpc.StatusCode.INTERNAL

    def audit(self) -> None:
        request_id = _metadata_value(self.context, REQUEST_ID)
        request = self.request if hasattr(self.request, "DESCRIPTOR") else None
        audit(self.method, request, self.access, self.code, request_id,
              write=is_write(self.method))


def _peer_identities(context: Context) -> list[str]:
    """The names of the verified client certificate of a mutual-TLS connection, if any."""
    pems = list((context.auth_context() or {}).get("x509_pem_cert") or ())
    return identities_from_pem(pems[0]) if pems else []


def _metadata_value(context: Context, key: str) -> str:
    for item in context.invocation_metadata() or ():
        if item[0] == key and isinstance(item[1], str):
            return item[1][:200]
    return ""
