"""Malformed input over raw gRPC gets a proper status, and the server keeps serving."""
from __future__ import annotations

import grpc
import pytest
from emu_helpers import QUEUE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudtasks_emulator.core.methods import METHODS, SERVICE_NAME
from cloudtasks_emulator.testing import run_emulator

ACCEPTABLE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
              grpc.StatusCode.FAILED_PRECONDITION}


@pytest.fixture
def channel(emulator):
    with grpc.insecure_channel(emulator.grpc_target) as ch:
        yield ch


def _call(channel: grpc.Channel, method: str, payload: bytes) -> grpc.StatusCode:
    stub = channel.unary_unary(f"/{SERVICE_NAME}/{method}")
    try:
        stub(payload, timeout=10)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x0a\x02\xff\xfe", b"\x0a\x7f"],
                         ids=["bad-varint", "bad-utf8", "truncated"])
def test_unparseable_request_is_invalid_argument(channel, method, payload):
    assert _call(channel, method, payload) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("method", sorted(METHODS))
def test_empty_request_is_invalid_argument(channel, method):
    assert _call(channel, method, b"") == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_enum_value_is_invalid_argument(channel):
    request = METHODS["GetTask"].request(name=f"{QUEUE}/tasks/x", response_view=99)
    assert _call(channel, "GetTask", request.SerializeToString()) == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_method_is_unimplemented(channel):
    assert _call(channel, "LeaseTasks", b"") == grpc.StatusCode.UNIMPLEMENTED


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=200), method=st.sampled_from(sorted(METHODS)))
def test_random_bytes_never_break_the_server(channel, payload, method):
    assert _call(channel, method, payload) in ACCEPTABLE | {grpc.StatusCode.OK}
    request = METHODS["GetQueue"].request(name=QUEUE)
    assert _call(channel, "GetQueue", request.SerializeToString()) == grpc.StatusCode.OK


def test_injected_faults_reach_the_client_as_statuses():
    from cloudtasks_emulator.core.faults import FaultInjector

    faults = FaultInjector.from_spec("GetQueue:error=1:code=UNAVAILABLE")
    with run_emulator(queues=[QUEUE], http_port=None, faults=faults) as emu, \
            grpc.insecure_channel(emu.grpc_target) as channel:
        request = METHODS["GetQueue"].request(name=QUEUE).SerializeToString()
        assert _call(channel, "GetQueue", request) == grpc.StatusCode.UNAVAILABLE
        faults.clear()
        assert _call(channel, "GetQueue", request) == grpc.StatusCode.OK
