"""Drive the SDK's own ``python -m pulumi.dynamic`` server over gRPC the way the engine does.

The engine starts the dynamic provider plugin (``python -m pulumi.dynamic``), reads the port it
prints on stdout, then calls Configure once and Check/Diff/Create/Read/Delete with property
structs in which ``__provider`` carries the pickled provider. Cloud Tasks is a small in-process
fake here (provider_helpers.FakeCloudTasks), reached through stack config ``cloudtasks:emulatorHost``.
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
from typing import Any, Iterator

import grpc
import pytest
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from provider_helpers import QUEUE, FakeCloudTasks, http_props
from pulumi_cloudtasks.provider import TaskProvider
from pulumi_cloudtasks.spec import UNKNOWN_SENTINEL

URN = "urn:pulumi:dev::proj::pulumi-python:dynamic/cloudtasks:Task::reindex"
PROVIDER = serialize_provider(TaskProvider())


def struct(props: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(props)
    return s


def plain(s: struct_pb2.Struct) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict
    return MessageToDict(s)


class Engine:
    """What the engine does to a provider plugin, minus the engine."""

    def __init__(self, stub: provider_pb2_grpc.ResourceProviderStub) -> None:
        self.stub = stub

    def check(self, olds: dict, news: dict) -> tuple[dict, dict]:
        resp = self.stub.Check(provider_pb2.CheckRequest(
            urn=URN, olds=struct(olds), news=struct({**news, "__provider": PROVIDER, "__name": "reindex"})))
        return plain(resp.inputs), {f.property: f.reason for f in resp.failures}

    def diff(self, id_: str, olds: dict, news: dict) -> provider_pb2.DiffResponse:
        return self.stub.Diff(provider_pb2.DiffRequest(id=id_, urn=URN, olds=struct(olds), news=struct(news)))

    def create(self, inputs: dict) -> tuple[str, dict]:
        resp = self.stub.Create(provider_pb2.CreateRequest(urn=URN, properties=struct(inputs)))
        return resp.id, plain(resp.properties)

    def read(self, id_: str, state: dict) -> tuple[str, dict]:
        resp = self.stub.Read(provider_pb2.ReadRequest(id=id_, urn=URN, properties=struct(state)))
        return resp.id, plain(resp.properties)

    def delete(self, id_: str, state: dict) -> None:
        self.stub.Delete(provider_pb2.DeleteRequest(id=id_, urn=URN, properties=struct(state)))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeCloudTasks]:
    server = FakeCloudTasks()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def engine(fake: FakeCloudTasks) -> Iterator[Engine]:
    env = {k: v for k, v in os.environ.items() if k != "CLOUD_TASKS_EMULATOR_HOST"}
    env.update(PULUMI_PROJECT="proj", PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "pulumi.dynamic"], stdout=subprocess.PIPE, env=env)
    try:
        port = int(proc.stdout.readline().decode().strip())  # the handshake: the port on stdout
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = provider_pb2_grpc.ResourceProviderStub(channel)
        config = {"cloudtasks:emulatorHost": fake.target}
        resp = stub.Configure(provider_pb2.ConfigureRequest(variables=config, args=struct(config)))
        assert resp.acceptSecrets is False  # so the engine re-marks outputs of secret inputs
        yield Engine(stub)
        channel.close()
    finally:
        proc.kill()
        proc.wait()


def test_serialized_provider_is_small_and_holds_no_client():
    raw = base64.b64decode(PROVIDER)
    assert len(PROVIDER) < 512
    for word in (b"CloudTasksClient", b"Credentials", b"grpc", b"Channel", b"token", b"emulator"):
        assert word not in raw
    assert b"pulumi_cloudtasks.provider" in raw and b"TaskProvider" in raw  # by reference


def test_check_autonames_validates_and_keeps_unknowns(engine: Engine):
    inputs, failures = engine.check({}, http_props())
    assert failures == {} and inputs["task_id"].startswith("reindex-")
    again, _ = engine.check(inputs, http_props())
    assert again["task_id"] == inputs["task_id"]
    _, failures = engine.check({}, http_props(url="ftp://x", headers={"X-Google-Thing": "1"}))
    assert "http_request.url" in failures and "http_request.headers" in failures
    inputs, failures = engine.check({}, http_props(queue=UNKNOWN_SENTINEL))
    assert failures == {} and inputs["queue"] == UNKNOWN_SENTINEL
    diff = engine.diff("x", {**http_props(task_id="t"), "__provider": PROVIDER},
                       {**http_props(task_id="t", queue=UNKNOWN_SENTINEL), "__provider": PROVIDER})
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and "queue" in diff.replaces


def test_lifecycle_replacement_and_refresh_after_the_task_ran(engine: Engine, fake: FakeCloudTasks):
    inputs, failures = engine.check({}, http_props(triggers=["v1"]))
    assert failures == {}
    id1, state1 = engine.create(inputs)
    assert id1 == f"{QUEUE}/tasks/{inputs['task_id']}" and id1 in fake.tasks
    assert state1["status"] == "scheduled" and state1["name"] == id1 and state1["__provider"] == PROVIDER
    assert state1["http_request"]["body"] == '{"full": true}'

    # A second run with the same program: same inputs, no diff.
    inputs_again, _ = engine.check(inputs, http_props(triggers=["v1"]))
    assert engine.diff(id1, state1, inputs_again).changes == provider_pb2.DiffResponse.DIFF_NONE

    # Changing the url replaces the task (create new, then delete old).
    new_inputs, _ = engine.check(inputs, http_props(url="https://other.example/x", triggers=["v1"]))
    diff = engine.diff(id1, state1, new_inputs)
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME
    assert set(diff.replaces) == {"http_request", "task_id"} and not diff.deleteBeforeReplace
    id2, state2 = engine.create(new_inputs)
    engine.delete(id1, state1)
    assert id1 not in fake.tasks and id2 in fake.tasks and id2 != id1

    # Refresh while scheduled, then after it was attempted once and succeeded.
    _, read = engine.read(id2, state2)
    assert read["status"] == "scheduled" and read["view"] == "FULL"
    fake.attempt(id2, code=503, succeed=False)
    _, read = engine.read(id2, read)
    assert read["status"] == "dispatched" and read["dispatch_count"] == 1
    fake.attempt(id2, code=200, succeed=True)
    rid, gone = engine.read(id2, read)
    assert rid == id2 and gone["status"] == "gone" and gone["dispatch_count"] == 1
    assert gone["last_attempt"]["dispatch_time"] == read["last_attempt"]["dispatch_time"]
    # refresh then up: the unchanged program must not re-enqueue a task that ran.
    inputs3, _ = engine.check(new_inputs, http_props(url="https://other.example/x", triggers=["v1"]))
    assert engine.diff(id2, gone, inputs3).changes == provider_pb2.DiffResponse.DIFF_NONE
    # Only triggers re-run it.
    inputs4, _ = engine.check(new_inputs, http_props(url="https://other.example/x", triggers=["v2"]))
    diff = engine.diff(id2, gone, inputs4)
    assert "triggers" in diff.replaces
    # Destroying a task that already ran succeeds.
    engine.delete(id2, gone)


def test_create_adopts_after_a_lost_reply(engine: Engine, fake: FakeCloudTasks):
    inputs, _ = engine.check({}, http_props(task_id="lost-reply"))
    fake.lose_next_create_reply = True
    id_, state = engine.create(inputs)
    assert id_ == f"{QUEUE}/tasks/lost-reply" and state["status"] == "scheduled"
    assert fake.calls[-3:] == ["CreateTask", "CreateTask", "GetTask"]  # retried, ALREADY_EXISTS, adopted


def test_create_on_a_foreign_task_fails_clearly(engine: Engine, fake: FakeCloudTasks):
    inputs, _ = engine.check({}, http_props(task_id="taken"))
    engine.create(inputs)
    other, _ = engine.check({}, http_props(task_id="taken", url="https://elsewhere.example/"))
    with pytest.raises(grpc.RpcError) as err:
        engine.create(other)
    assert "already exists with a different http_request.url" in err.value.details()
    engine.delete(f"{QUEUE}/tasks/taken", {**inputs, "__provider": PROVIDER})
    with pytest.raises(grpc.RpcError) as err:  # reserved after deletion
        engine.create(inputs)
    assert "reserves the name" in err.value.details()


def test_get_imports_by_full_name_and_missing_is_empty(engine: Engine):
    inputs, _ = engine.check({}, http_props(task_id="imported", body=None))
    id_, _ = engine.create(inputs)
    rid, props = engine.read(id_, {"__provider": PROVIDER})
    assert rid == id_ and props["task_id"] == "imported" and props["queue"] == QUEUE
    assert props["http_request"]["url"] == "https://api.example.com/reindex"
    rid, props = engine.read(f"{QUEUE}/tasks/nope", {"__provider": PROVIDER})
    assert rid == ""
