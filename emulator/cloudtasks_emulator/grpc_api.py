"""The gRPC adapter: decode, call the core, encode, map errors. No semantics here."""
from __future__ import annotations

import logging
from typing import Any, Callable

import grpc
from google.protobuf.message import DecodeError, Message

from .core.errors import ApiError
from .core.methods import METHODS, SERVICE_NAME, Method
from .core.service import CloudTasksService

log = logging.getLogger("cloudtasks_emulator.grpc")


class _Malformed:
    """Stands in for a request whose bytes did not parse, so the handler can answer INVALID_ARGUMENT
    (grpcio itself would answer INTERNAL for a failing deserializer)."""

    def __init__(self, error: str) -> None:
        self.error = error


def _deserializer(request_type: type[Message]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return request_type.FromString(data)
        except (DecodeError, RuntimeError, ValueError) as exc:
            return _Malformed(str(exc) or type(exc).__name__)

    return parse


def _handler(service: CloudTasksService, method: Method) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Invalid {method.request.DESCRIPTOR.name}: the request could not be parsed ({request.error}).")
        try:
            return service.invoke(method.name, request)
        except ApiError as exc:
            context.abort(exc.code, exc.message)
        except Exception as exc:  # a bug must cost one request, never the server
            log.exception("%s failed", method.name)
            context.abort(grpc.StatusCode.INTERNAL, f"Internal error in the emulator: {type(exc).__name__}: {exc}")

    return handle


def generic_handler(service: CloudTasksService) -> grpc.GenericRpcHandler:
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            _handler(service, method),
            request_deserializer=_deserializer(method.request),
            response_serializer=method.response.SerializeToString,
        )
        for name, method in METHODS.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)
