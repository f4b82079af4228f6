"""Hostile input on every gRPC method, through a raw channel with identity (bytes) serializers.

Three generators, each over all 16 RPCs: (1) *structured* requests built from the request type's
descriptor with hostile values in every field (out-of-range ints, NaN/inf, unknown enum values,
timestamps and durations far outside their range, control characters, oversized strings, maps,
repeated fields, nested messages) mixed with valid names so the calls get past name checks into the
semantics; (2) *proto-shaped* bytes: well-framed tag/value records with random field numbers and
wire types (wrong types for known fields, groups, nesting, truncation); (3) plain garbage.

Always a proper status: never UNKNOWN (a crash in a handler) nor INTERNAL (the adapter's catch-all
for bugs; no fault injection is on here), never a hang; and after every call the server answers a
normal GetQueue on a queue the generators never name. (tests/emulator/test_grpc_robustness.py
covers short random bytes; this is the issue-6 version.)
"""
from __future__ import annotations

import math

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_helpers import LOCATION

from cloudtasks_emulator.core.methods import METHODS, SERVICE_NAME
from cloudtasks_emulator.testing import run_emulator

FUZZ_QUEUE = f"{LOCATION}/queues/fuzz"
SENTINEL = f"{LOCATION}/queues/sentinel-never-named"
DEAD_URL = "http://127.0.0.1:1/x"  # connection refused at once, should anything ever dispatch
ACCEPTABLE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
              grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
              grpc.StatusCode.ABORTED}
GRPC_MAX_RECEIVE = 4 * 1024 * 1024  # grpcio's default limit on a server's incoming message
METHOD_NAMES = sorted(METHODS)

INTERESTING = [
    "", LOCATION, FUZZ_QUEUE, f"{FUZZ_QUEUE}/tasks/t1", f"{FUZZ_QUEUE}/tasks/new", f"{FUZZ_QUEUE}/tasks/",
    f"{LOCATION}/queues/other", "projects/p/locations/l", "projects//locations//queues/", DEAD_URL,
    "https://127.0.0.1:1/", "/relative", "POST", "state: PAUSED", "state: NOPE", "a@b.iam.gserviceaccount.com",
    "x" * 501, "\x00", "\u202e\ud7ff\U0010ffff", "../../etc/passwd", "%s%n%x", "🙂" * 50,
]


def _strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(INTERESTING),
        st.text(max_size=40),
        st.sampled_from([FUZZ_QUEUE + "/tasks/", LOCATION + "/queues/"]).flatmap(
            lambda p: st.text(alphabet="abcXYZ019_-", min_size=1, max_size=30).map(lambda s: p + s)),
        st.integers(1_000, 200_000).map(lambda n: "y" * n),  # oversized
    )


def _task_names() -> st.SearchStrategy[str]:
    return st.text(alphabet="abcXYZ019_-", min_size=1, max_size=30).map(lambda s: f"{FUZZ_QUEUE}/tasks/{s}")


# Field-aware values: mostly valid names and URLs, so requests get past the name checks into the
# semantics; the rest hostile.
FIELD_STRINGS = {
    "parent": st.sampled_from([FUZZ_QUEUE, LOCATION]),
    "resource": st.just(FUZZ_QUEUE),
    "name": st.one_of(st.sampled_from([FUZZ_QUEUE, f"{FUZZ_QUEUE}/tasks/t1", f"{LOCATION}/queues/other"]),
                      _task_names()),
    "url": st.sampled_from([DEAD_URL, "https://127.0.0.1:1/secure", "http://127.0.0.1:1"]),
    "relative_uri": st.sampled_from(["/", "/x?y=1", "/a b", "x"]),
    "audience": st.sampled_from(["aud", ""]),
    "service_account_email": st.sampled_from(["sa@p.iam.gserviceaccount.com", ""]),
}


def _field_strings(field) -> st.SearchStrategy[str]:
    specific = FIELD_STRINGS.get(field.name)
    if specific is None:
        return _strings()
    return st.one_of(specific, specific, specific, _strings())  # ~3/4 plausible


INT_RANGES = {
    F.TYPE_INT32: (-2**31, 2**31 - 1), F.TYPE_SINT32: (-2**31, 2**31 - 1), F.TYPE_SFIXED32: (-2**31, 2**31 - 1),
    F.TYPE_INT64: (-2**63, 2**63 - 1), F.TYPE_SINT64: (-2**63, 2**63 - 1), F.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}


def _int(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([lo, hi, 0, -1 if lo < 0 else 1, 1, 10**9, 86400 * 31]).filter(
        lambda v: lo <= v <= hi), st.integers(lo, hi))


def _scalar(field) -> st.SearchStrategy:
    t = field.type
    if t == F.TYPE_STRING:
        return _field_strings(field)
    if t == F.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.integers(100_000, 1_200_000).map(lambda n: b"z" * n))
    if t == F.TYPE_BOOL:
        return st.booleans()
    if t in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        special = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, 1e308, 5e-324, 500.0, 501.0])
        floats = st.floats(allow_nan=True, width=64 if t == F.TYPE_DOUBLE else 32)
        return st.one_of(special, floats)
    if t == F.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from(known), st.integers(-3, 12))  # open enums
    if t in INT_RANGES:
        return _int(*INT_RANGES[t])
    raise AssertionError(f"unhandled field type {t}")


@st.composite
def _fill(draw, message, depth: int = 0) -> None:
    """Set a random subset of ``message``'s fields to hostile values (recursively)."""
    for field in message.DESCRIPTOR.fields:
        wanted = field.name in FIELD_STRINGS or field.message_type is not None
        if not (draw(st.integers(0, 7)) != 0 if wanted else draw(st.booleans())):
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entries = draw(st.dictionaries(_strings() if field.message_type.fields_by_name["key"].type == F.TYPE_STRING
                                           else _scalar(field.message_type.fields_by_name["key"]),
                                           st.just(None), max_size=4))
            target = getattr(message, field.name)
            value_field = field.message_type.fields_by_name["value"]
            for key in entries:
                if value_field.message_type is not None:
                    if depth < 3:
                        draw(_fill(target[key], depth + 1))
                else:
                    target[key] = draw(_scalar(value_field))
            continue
        repeated = field.label == F.LABEL_REPEATED
        count = draw(st.integers(0, 3)) if repeated else 1
        for _ in range(count):
            if field.message_type is not None:
                if depth >= 3:
                    break
                child = getattr(message, field.name).add() if repeated else getattr(message, field.name)
                if not repeated:
                    child.SetInParent()
                draw(_fill(child, depth + 1))
            elif repeated:
                getattr(message, field.name).append(draw(_scalar(field)))
            else:
                setattr(message, field.name, draw(_scalar(field)))


@st.composite
def structured(draw) -> tuple[str, bytes]:
    method = draw(st.sampled_from(METHOD_NAMES))
    request = METHODS[method].request()
    draw(_fill(request))
    if draw(st.integers(0, 3)) != 0:  # mostly the right kind of parent / queue for the method
        if "parent" in request.DESCRIPTOR.fields_by_name:
            request.parent = LOCATION if method in ("ListQueues", "CreateQueue") else FUZZ_QUEUE
        if method == "UpdateQueue":
            request.queue.name = draw(st.sampled_from([FUZZ_QUEUE, f"{LOCATION}/queues/other"]))
    return method, request.SerializeToString()


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@st.composite
def _record(draw, depth: int = 0) -> bytes:
    number = draw(st.one_of(st.integers(1, 12), st.integers(13, 2**29 - 1), st.just(0)))
    wire = draw(st.integers(0, 7))
    tag = _varint((number << 3) | wire)
    if wire == 0:
        return tag + _varint(draw(st.integers(-2**63, 2**64 - 1)))
    if wire == 1:
        return tag + draw(st.binary(min_size=8, max_size=8))
    if wire == 5:
        return tag + draw(st.binary(min_size=4, max_size=4))
    if wire == 2:
        if depth < 4 and draw(st.booleans()):
            payload = b"".join(draw(st.lists(_record(depth + 1), max_size=4)))
        else:
            payload = draw(st.one_of(st.binary(max_size=64), st.text(max_size=30).map(str.encode)))
        length = len(payload)
        if draw(st.integers(0, 9)) == 0:  # a lying length
            length = draw(st.integers(0, 2**32))
        return tag + _varint(length) + payload
    if wire in (3, 4):  # group start/end, possibly unbalanced
        return tag
    return tag + draw(st.binary(max_size=4))  # wire types 6, 7: invalid


@st.composite
def proto_shaped(draw) -> tuple[str, bytes]:
    method = draw(st.sampled_from(METHOD_NAMES))
    payload = b"".join(draw(st.lists(_record(), min_size=1, max_size=8)))
    if draw(st.integers(0, 5)) == 0:
        payload = payload[: draw(st.integers(0, len(payload)))]  # truncated
    return method, payload


@st.composite
def garbage(draw) -> tuple[str, bytes]:
    return draw(st.sampled_from(METHOD_NAMES)), draw(st.binary(min_size=1, max_size=4096))


@pytest.fixture(scope="module")
def channel():
    with run_emulator(queues=[FUZZ_QUEUE, SENTINEL], http_port=None, app_engine_url="http://127.0.0.1:1") as emu:
        emu.service.pause_queue(METHODS["PauseQueue"].request(name=FUZZ_QUEUE))  # nothing dispatches by itself
        emu.service.create_task(METHODS["CreateTask"].request(
            parent=FUZZ_QUEUE, task={"name": f"{FUZZ_QUEUE}/tasks/t1", "http_request": {"url": DEAD_URL}}))
        with grpc.insecure_channel(emu.grpc_target) as ch:
            yield ch


def _call(channel: grpc.Channel, method: str, payload: bytes) -> tuple[grpc.StatusCode, str]:
    stub = channel.unary_unary(f"/{SERVICE_NAME}/{method}")  # no serializers: raw bytes both ways
    try:
        stub(payload, timeout=30)
    except grpc.RpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def _check(channel: grpc.Channel, method: str, payload: bytes) -> None:
    code, details = _call(channel, method, payload)
    allowed = ACCEPTABLE | ({grpc.StatusCode.RESOURCE_EXHAUSTED} if len(payload) > GRPC_MAX_RECEIVE else set())
    assert code in allowed, f"{method} ({len(payload)} bytes {payload[:80]!r}...) -> {code.name}: {details[:300]}"
    alive, details = _call(channel, "GetQueue", METHODS["GetQueue"].request(name=SENTINEL).SerializeToString())
    assert alive == grpc.StatusCode.OK, f"server stopped serving after {method}: {alive.name} {details}"


SETTINGS = settings(max_examples=400, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.large_base_example])


@SETTINGS
@given(case=structured())
def test_structured_hostile_requests(channel, case):
    _check(channel, *case)


@SETTINGS
@given(case=proto_shaped())
def test_proto_shaped_bytes(channel, case):
    _check(channel, *case)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(case=garbage())
def test_garbage_bytes(channel, case):
    _check(channel, *case)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_oversized_requests(channel, method):
    for size in (3 * 1024 * 1024, GRPC_MAX_RECEIVE + 1024):  # just under and just over grpcio's limit
        request = METHODS[method].request()
        message = request
        while not any(f.type == F.TYPE_STRING for f in message.DESCRIPTOR.fields):  # UpdateQueue: queue.name
            message = getattr(message, next(f for f in message.DESCRIPTOR.fields if f.message_type).name)
        field = next(f for f in message.DESCRIPTOR.fields if f.type == F.TYPE_STRING)
        setattr(message, field.name, "n" * size)
        _check(channel, method, request.SerializeToString())
    deep = b""
    for _ in range(200):  # nesting far beyond protobuf's recursion limit, in the first field
        deep = b"\x0a" + _varint(len(deep)) + deep
    _check(channel, method, deep)


@pytest.mark.parametrize("seconds", [-2**63, -62135596801, 253402300800, 10**12, 2**63 - 1])
def test_out_of_range_schedule_time_is_invalid_argument(channel, seconds):
    """Timestamps outside [0001-01-01, 9999-12-31] (protobuf's range) are an INVALID_ARGUMENT, not a
    crash: found by test_structured_hostile_requests (INTERNAL "OSError/OverflowError/ValueError")."""
    request = METHODS["CreateTask"].request(parent=FUZZ_QUEUE, task={
        "schedule_time": {"seconds": seconds}, "http_request": {"url": DEAD_URL}})
    code, details = _call(channel, "CreateTask", request.SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details}"


@pytest.mark.parametrize("method,request_fields", [
    ("ListQueues", {"parent": LOCATION, "filter": "y" * 20_000}),
    ("GetQueue", {"name": f"{LOCATION}/queues/{'q_' * 10_000}"}),
    ("CreateTask", {"parent": FUZZ_QUEUE, "task": {"name": f"{FUZZ_QUEUE}/tasks/{'t ' * 10_000}",
                                                   "http_request": {"url": DEAD_URL}}}),
], ids=["filter", "queue-id", "task-id"])
def test_error_echoing_a_huge_input_keeps_its_status(channel, method, request_fields):
    """An error message quoting a 20 KB input must stay under the client's metadata limit (8 KB soft, 16 KB hard):
    otherwise grpcio replaces INVALID_ARGUMENT by RESOURCE_EXHAUSTED "Stream removed (received
    metadata size exceeds soft limit …)". Found by test_structured_hostile_requests."""
    request = METHODS[method].request(**request_fields)
    code, details = _call(channel, method, request.SerializeToString())
    assert code == grpc.StatusCode.INVALID_ARGUMENT, f"{code.name}: {details[:300]}"
