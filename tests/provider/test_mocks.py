"""A program using Task under pulumi.runtime.set_mocks registers the right type and inputs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pulumi
import pytest

from provider_helpers import QUEUE
from pulumi_cloudtasks import spec
from pulumi_cloudtasks import (TASK_TYPE_TOKEN, AppEngineHttpRequestArgs, AppEngineRoutingArgs, HttpMethod,
                               HttpRequestArgs, OidcTokenArgs, Task, TaskArgs)

registered: list[pulumi.runtime.MockResourceArgs] = []


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        registered.append(args)
        outs = {k: v for k, v in args.inputs.items() if not k.startswith("__")}
        outs.update(status="scheduled", name=f"{QUEUE}/tasks/{args.inputs.get('task_id', 'x')}")
        return outs["name"], outs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


@pytest.fixture(autouse=True)
def mocks():
    registered.clear()
    pulumi.runtime.set_mocks(Mocks(), preview=False)
    yield


@pulumi.runtime.test
def test_task_registers_type_and_inputs():
    task = Task("reindex", queue=QUEUE,
                http_request=HttpRequestArgs(url="https://api.example.com/reindex", http_method=HttpMethod.POST,
                                             headers={"Content-Type": "application/json"}, body=b"\x00\x01",
                                             oidc_token=OidcTokenArgs(service_account_email="w@p.iam.gserviceaccount.com")),
                schedule_time=datetime(2026, 12, 1, 3, tzinfo=timezone.utc), dispatch_deadline=timedelta(seconds=900),
                triggers=[1])

    def check(values):
        (args,) = [r for r in registered if r.name == "reindex"]
        assert args.typ == TASK_TYPE_TOKEN == "pulumi-python:dynamic/cloudtasks:Task"
        inputs = args.inputs
        assert inputs["queue"] == QUEUE
        assert inputs["http_request"] == {
            "url": "https://api.example.com/reindex", "http_method": "POST",
            "headers": {"Content-Type": "application/json"}, "body_base64": "AAE=",
            "oidc_token": {"service_account_email": "w@p.iam.gserviceaccount.com"}}
        assert inputs["schedule_time"] == "2026-12-01T03:00:00Z"
        assert inputs["dispatch_deadline"] == "900s"
        assert inputs["triggers"] == [1]
        assert inputs["__name"] == "reindex"
        assert len(inputs["__provider"]) < 4096  # pickled by reference: no client, no credentials
        assert values[0] == "scheduled"

    return pulumi.Output.all(task.status, task.name).apply(check)


@pulumi.runtime.test
def test_args_object_and_app_engine():
    task = Task("ae", TaskArgs(queue=QUEUE, app_engine_http_request=AppEngineHttpRequestArgs(
        relative_uri="/work", http_method="put", body="x",
        app_engine_routing=AppEngineRoutingArgs(service="worker"))))

    def check(_):
        (args,) = [r for r in registered if r.name == "ae"]
        assert args.inputs["app_engine_http_request"] == {
            "relative_uri": "/work", "http_method": "put", "body": "x", "app_engine_routing": {"service": "worker"}}
        assert "http_request" not in args.inputs

    return task.status.apply(check)


@pulumi.runtime.test
def test_outputs_as_inputs_and_secrets():
    queue = pulumi.Output.from_input(QUEUE)
    token = pulumi.Output.secret("Bearer s3cret")
    task = Task("sec", queue=queue, http_request={"url": "https://x.example/", "headers": {"Authorization": token}})

    def check(_):
        (args,) = [r for r in registered if r.name == "sec"]
        assert args.inputs["queue"] == QUEUE
        # The SDK lifts secretness to the top-level property; the engine keeps http_request secret
        # in outputs too (same key), and spec.normalize reads through the wrapper.
        wrapped = args.inputs["http_request"]
        assert wrapped["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
        assert wrapped["value"]["headers"]["Authorization"] == "Bearer s3cret"
        assert spec.normalize(args.inputs)[0]["http_request"]["headers"] == {"Authorization": "Bearer s3cret"}

    return task.status.apply(check)


def test_missing_queue_and_unknown_argument_are_type_errors():
    with pytest.raises(TypeError, match="queue"):
        Task("bad", http_request=HttpRequestArgs(url="https://x"))
    with pytest.raises(TypeError, match="colour"):
        Task("bad", queue=QUEUE, colour="red")


@pulumi.runtime.test
def test_get_reads_an_existing_task_by_full_name():
    task = Task.get("existing", f"{QUEUE}/tasks/abc")

    def check(_):
        (args,) = [r for r in registered if r.name == "existing"]
        assert args.typ == TASK_TYPE_TOKEN and args.resource_id == f"{QUEUE}/tasks/abc"
        assert args.inputs.get("queue") is None and "__provider" in args.inputs

    return task.status.apply(check)
