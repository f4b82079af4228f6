"""The one error type of the core; adapters map it to a gRPC status or Google's JSON error body."""
from __future__ import annotations

import grpc


# A gRPC status message travels in a header; past ~8-16 KB clients drop the status itself, so an
# error quoting a huge input is shortened rather than turned into RESOURCE_EXHAUSTED.
MAX_MESSAGE_CHARS = 1024


class ApiError(Exception):
    """A Cloud Tasks API error: a canonical gRPC code and the message the real service would send."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "\u2026"
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ApiError({self.code.name}, {self.message!r})"


def invalid_argument(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str = "Requested entity was not found.") -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, message)


def already_exists(message: str = "Requested entity already exists") -> ApiError:
    return ApiError(grpc.StatusCode.ALREADY_EXISTS, message)


def failed_precondition(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.FAILED_PRECONDITION, message)
